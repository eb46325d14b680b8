"""Pydantic validation errors as one line a person can act on."""

from __future__ import annotations

from pydantic import ValidationError


def problems(error: ValidationError, whole: str = "") -> str:
    """`field.path: message` for each error, joined with `; ` (`whole` names an error of the
    value as a whole, which has no field path)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}" for e in error.errors()
    )
