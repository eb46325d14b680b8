"""Card print ids: a pokemontcg.io card id and a variant, e.g. `sv3pt5-25_holofoil`.

A module of its own: the API validates card ids without importing the collection models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

#: What a card id may contain: letters, digits, `.`, `_` and `-`, starting with a letter or digit.
CARD_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
CARD_ID_MAX_LENGTH = 128

CardId = Annotated[
    str, Field(min_length=1, max_length=CARD_ID_MAX_LENGTH, pattern=f"^{CARD_ID_PATTERN}$")
]

#: A set id names a raw partition's key (`.../set=<id>.parquet`): a `/` or `..` in it would write
#: outside its partition, over another day's or set's snapshot. Letters of any script, digits,
#: `_`, `.` and `-`, starting with a letter, digit or `_`.
SET_ID_PATTERN = r"^\w[\w.\-]*$"
SetId = Annotated[str, Field(min_length=1, max_length=CARD_ID_MAX_LENGTH, pattern=SET_ID_PATTERN)]


def set_id_of(card_id: str) -> str:
    """The set of a pokemontcg.io card id (`sv3pt5-25_holofoil` → `sv3pt5`)."""
    return card_id.split("-", 1)[0] if "-" in card_id else "unknown"
