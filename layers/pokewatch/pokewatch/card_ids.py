"""Card print ids: a pokemontcg.io card id and a variant, e.g. `sv3pt5-25_holofoil`.

A module of its own: the API validates card ids without importing the collection models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

#: What a card id may contain: letters, digits, `.`, `_` and `-`, starting with a letter or digit.
CARD_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
CARD_ID_MAX_LENGTH = 128
#: A valid card id, as messages and documentation show one.
CARD_ID_EXAMPLE = "sv1-25_holofoil"
#: What is wrong with a text that is not a card id (the API's answer, a csv file's bad row).
CARD_ID_PROBLEM = (
    f"must be a card print id such as {CARD_ID_EXAMPLE}: letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)


def _syntax(pattern: str, problem: str) -> BeforeValidator:
    """A validator that refuses a text not matching `pattern` (anchored) with `problem`:
    pydantic's own message is the regex alone, which does not show what an id looks like."""
    compiled = re.compile(pattern)

    def check(value: object) -> object:
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise PydanticCustomError("string_pattern_mismatch", problem, {"pattern": pattern})
        return value

    return BeforeValidator(check)


#: The pattern is checked (with the message above) before the length; `Field` documents both.
CardId = Annotated[
    str,
    Field(min_length=1, max_length=CARD_ID_MAX_LENGTH, pattern=f"^{CARD_ID_PATTERN}$"),
    _syntax(f"^{CARD_ID_PATTERN}$", CARD_ID_PROBLEM),
]

#: A set id names a raw partition's key (`.../set=<id>.parquet`): a `/` or `..` in it would write
#: outside its partition, over another day's or set's snapshot. Letters of any script, digits,
#: `_`, `.` and `-`, starting with a letter, digit or `_`.
SET_ID_PATTERN = r"^\w[\w.\-]*$"
#: What is wrong with a text that is not a set id (`--sets`, `POKEWATCH_SETS`, an event).
SET_ID_PROBLEM = (
    "must be a set id such as sv1: letters, digits, '.', '_' or '-', starting with a letter, "
    "digit or '_'"
)
SetId = Annotated[
    str,
    Field(min_length=1, max_length=CARD_ID_MAX_LENGTH, pattern=SET_ID_PATTERN),
    _syntax(SET_ID_PATTERN, SET_ID_PROBLEM),
]


def set_id_of(card_id: str) -> str:
    """The set of a pokemontcg.io card id (`sv3pt5-25_holofoil` → `sv3pt5`)."""
    return card_id.split("-", 1)[0] if "-" in card_id else "unknown"
