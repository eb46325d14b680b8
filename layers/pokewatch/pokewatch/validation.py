"""Pydantic validation errors as one line a person can act on."""

from __future__ import annotations

from pydantic import ValidationError


def problems(error: ValidationError, whole: str = "", limit: int = 5) -> str:
    """`field.path: message` for the first `limit` errors, joined with `; ` (`whole` names an
    error of the value as a whole, which has no field path). A large document can fail in
    every one of its items: the message names the first and counts the rest."""
    errors = error.errors()
    named = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}" for e in errors[:limit]
    )
    more = len(errors) - limit
    return f"{named}; and {more} more" if more > 0 else named
