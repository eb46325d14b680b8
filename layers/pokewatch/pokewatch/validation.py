"""Pydantic validation errors as one line a person can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def error_message(error: dict[str, Any]) -> str:
    """The message of one pydantic error; for an error our own validators raised, their words,
    without pydantic's "Value error, " in front of them."""
    if error.get("type") == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return str(error.get("msg", "invalid"))


def problems(error: ValidationError, whole: str = "", limit: int = 5) -> str:
    """`field.path: message` for the first `limit` errors, joined with `; ` (`whole` names an
    error of the value as a whole, which has no field path). A large document can fail in
    every one of its items: the message names the first and counts the rest."""
    errors = error.errors()
    named = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or whole}: {error_message(dict(e))}"
        for e in errors[:limit]
    )
    more = len(errors) - limit
    return f"{named}; and {more} more" if more > 0 else named
