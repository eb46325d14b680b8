"""Pydantic validation errors as one line a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

#: The longest field name a message repeats.
MAX_FIELD_CHARS = 100
#: How a message names a key that is the empty string (`?=x`, `{"": 1}`): `query.` read as
#: a message cut short.
EMPTY_NAME = "(empty name)"


def error_message(error: dict[str, Any]) -> str:
    """The message of one pydantic error; for an error our own validators raised, their words,
    without pydantic's "Value error, " in front of them."""
    if error.get("type") == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return str(error.get("msg", "invalid"))


def field_name(parts: Sequence[object]) -> str:
    """A field path as a message names it, `items.3.card_id`: cut after MAX_FIELD_CHARS, as an
    unknown key can be of any size and the message would repeat it whole."""
    name = ".".join(str(p) if p != "" else EMPTY_NAME for p in parts)
    return name if len(name) <= MAX_FIELD_CHARS else f"{name[:MAX_FIELD_CHARS]}…"


def problems(error: ValidationError, whole: str = "", limit: int = 5) -> str:
    """`field.path: message` for the first `limit` errors, joined with `; ` (`whole` names an
    error of the value as a whole, which has no field path). A large document can fail in
    every one of its items: the message names the first and counts the rest."""
    errors = error.errors()
    named = "; ".join(
        f"{field_name(e['loc']) or whole}: {error_message(dict(e))}" for e in errors[:limit]
    )
    more = len(errors) - limit
    return f"{named}; and {more} more" if more > 0 else named
