"""Payload templates (``Parameters``, ``ResultSelector``, ``ItemSelector``) and dynamic values.

In a template, a key ending in ``.$`` takes its value from a JSONPath (``$...`` against the
state data, ``$$...`` against the context object) or from an intrinsic function call; the
``.$`` suffix is dropped from the output key. Other values are copied, nested objects and
arrays being processed recursively.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pokewatch_local.asl.errors import UnsupportedFeature
from pokewatch_local.asl.intrinsics import (
    IntrinsicSyntaxError,
    evaluate_intrinsic,
    is_intrinsic,
    parse_intrinsic,
)
from pokewatch_local.asl.paths import PathSyntaxError, read_path, validate_path

_DYNAMIC_SUFFIX = ".$"


def validate_dynamic(expression: Any, where: str) -> None:
    """Check a dynamic value (JSONPath or intrinsic call); raise ``UnsupportedFeature`` if not."""
    if not isinstance(expression, str):
        raise UnsupportedFeature(f"{where}: a dynamic value must be a string, got {expression!r}")
    try:
        if is_intrinsic(expression):
            parse_intrinsic(expression.strip())
        else:
            validate_path(expression)
    except (PathSyntaxError, IntrinsicSyntaxError) as exc:
        raise UnsupportedFeature(f"{where}: {exc}") from exc


def validate_template(template: Any, where: str) -> None:
    """Check every ``.$`` entry of a payload template, recursively."""
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(_DYNAMIC_SUFFIX):
                validate_dynamic(value, f"{where}.{key}")
            else:
                validate_template(value, f"{where}.{key}")
    elif isinstance(template, list):
        for index, item in enumerate(template):
            validate_template(item, f"{where}[{index}]")


def evaluate_dynamic(expression: str, data: Any, context: Any, random: Callable[[], float]) -> Any:
    """Value of a JSONPath or intrinsic call against the state data and context object."""
    if is_intrinsic(expression):
        return evaluate_intrinsic(expression.strip(), data, context, random)
    return read_path(expression, data, context)


def evaluate_template(template: Any, data: Any, context: Any, random: Callable[[], float]) -> Any:
    """Build the payload described by ``template`` from the state data and context object."""
    if isinstance(template, dict):
        payload: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(_DYNAMIC_SUFFIX):
                payload[key[: -len(_DYNAMIC_SUFFIX)]] = evaluate_dynamic(
                    value, data, context, random
                )
            else:
                payload[key] = evaluate_template(value, data, context, random)
        return payload
    if isinstance(template, list):
        return [evaluate_template(item, data, context, random) for item in template]
    return template
