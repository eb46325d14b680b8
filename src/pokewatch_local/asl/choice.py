"""Choice rules: validation and evaluation of the comparison operators and And/Or/Not."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pokewatch_local.asl.errors import UnsupportedFeature
from pokewatch_local.asl.paths import PathSyntaxError, path_exists, read_path, validate_path

_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    """The instant an RFC 3339 timestamp (``2016-08-18T17:33:00Z``) denotes, or None."""
    if not isinstance(value, str) or not (match := _TIMESTAMP.match(value)):
        return None
    base, fraction, zone = match.groups()
    # datetime only keeps microseconds; finer digits cannot change an ordering that matters here.
    text = base + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
    text += "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(
    accepts: Callable[[Any], bool], convert: Callable[[Any], Any], test: Callable[[Any, Any], bool]
) -> Callable[[Any, Any], bool]:
    """A comparison that is false whenever either side is not of the operator's type."""

    def comparison(variable: Any, operand: Any) -> bool:
        if not (accepts(variable) and accepts(operand)):
            return False
        return test(convert(variable), convert(operand))

    return comparison


def _identity(value: Any) -> Any:
    return value


def _string_matches(variable: Any, pattern: Any) -> bool:
    if not isinstance(variable, str) or not isinstance(pattern, str):
        return False
    # '*' matches any run of characters; '\*' and '\\' are a literal star and backslash.
    regex = "".join(
        ".*" if token == "*" else re.escape(token[-1])
        for token in re.findall(r"\\.|.", pattern, flags=re.DOTALL)
    )
    return re.fullmatch(regex, variable, flags=re.DOTALL) is not None


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}
_TYPES: dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any]]] = {
    "String": (lambda v: isinstance(v, str), _identity),
    "Numeric": (_is_number, _identity),
    "Timestamp": (lambda v: parse_timestamp(v) is not None, parse_timestamp),
}

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    f"{kind}{ordering}": _compare(accepts, convert, test)
    for kind, (accepts, convert) in _TYPES.items()
    for ordering, test in _ORDERINGS.items()
}
COMPARISONS["BooleanEquals"] = _compare(
    lambda v: isinstance(v, bool), _identity, _ORDERINGS["Equals"]
)
COMPARISONS["StringMatches"] = _string_matches

TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsString": lambda v: isinstance(v, str),
    "IsNumeric": _is_number,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}

_PATH_SUFFIX = "Path"
_PATH_COMPARISONS = {f"{name}{_PATH_SUFFIX}" for name in COMPARISONS if name != "StringMatches"}
_OPERATORS = set(COMPARISONS) | _PATH_COMPARISONS | set(TYPE_TESTS) | {"IsPresent"}
_COMBINATORS = {"And", "Or", "Not"}
_LITERAL_CHECKS: dict[str, Callable[[Any], bool]] = {
    "String": lambda v: isinstance(v, str),
    "Numeric": _is_number,
    "Boolean": lambda v: isinstance(v, bool),
    "Timestamp": lambda v: parse_timestamp(v) is not None,
}


def validate_rule(rule: Any, where: str, *, top_level: bool) -> None:
    """Check one Choice rule (recursively for And/Or/Not)."""
    if not isinstance(rule, dict):
        raise UnsupportedFeature(f"{where}: a choice rule must be an object")
    allowed = {"Comment", *({"Next"} if top_level else set())}
    if top_level and not isinstance(rule.get("Next"), str):
        raise UnsupportedFeature(f"{where}: a top-level choice rule needs a Next")
    operators = [key for key in rule if key in _OPERATORS | _COMBINATORS]
    if len(operators) != 1:
        raise UnsupportedFeature(f"{where}: expected exactly one operator, found {operators}")
    operator = operators[0]
    unknown = set(rule) - allowed - {operator} - ({"Variable"} if operator in _OPERATORS else set())
    if unknown:
        raise UnsupportedFeature(f"{where}: unsupported fields {sorted(unknown)}")
    operand = rule[operator]
    if operator in _COMBINATORS:
        if operator == "Not":
            validate_rule(operand, f"{where}.Not", top_level=False)
            return
        if not isinstance(operand, list) or not operand:
            raise UnsupportedFeature(f"{where}.{operator}: expected a non-empty list of rules")
        for index, nested in enumerate(operand):
            validate_rule(nested, f"{where}.{operator}[{index}]", top_level=False)
        return
    _validate_path_field(rule.get("Variable"), f"{where}.Variable")
    if operator in _PATH_COMPARISONS:
        _validate_path_field(operand, f"{where}.{operator}")
    elif operator in TYPE_TESTS or operator == "IsPresent" or operator == "BooleanEquals":
        if not isinstance(operand, bool):
            raise UnsupportedFeature(f"{where}.{operator}: expected a boolean")
    elif operator == "StringMatches":
        if not isinstance(operand, str):
            raise UnsupportedFeature(f"{where}.{operator}: expected a string")
    else:
        kind = next(k for k in _LITERAL_CHECKS if operator.startswith(k))
        if not _LITERAL_CHECKS[kind](operand):
            raise UnsupportedFeature(f"{where}.{operator}: {operand!r} is not a valid {kind}")


def _validate_path_field(path: Any, where: str) -> None:
    if not isinstance(path, str):
        raise UnsupportedFeature(f"{where}: expected a JSONPath string")
    try:
        validate_path(path)
    except PathSyntaxError as exc:
        raise UnsupportedFeature(f"{where}: {exc}") from exc


def evaluate_rule(rule: dict[str, Any], data: Any, context: Any) -> bool:
    """Whether a (validated) Choice rule holds for the state's effective input.

    A ``Variable`` that is absent is the ``States.Runtime`` error, except for ``IsPresent``.
    """
    if "And" in rule:
        return all(evaluate_rule(nested, data, context) for nested in rule["And"])
    if "Or" in rule:
        return any(evaluate_rule(nested, data, context) for nested in rule["Or"])
    if "Not" in rule:
        return not evaluate_rule(rule["Not"], data, context)
    variable_path = rule["Variable"]
    if "IsPresent" in rule:
        return path_exists(variable_path, data, context) == rule["IsPresent"]
    variable = read_path(variable_path, data, context)
    for name, test in TYPE_TESTS.items():
        if name in rule:
            return test(variable) == rule[name]
    for name, comparison in COMPARISONS.items():
        if name in rule:
            return comparison(variable, rule[name])
        if (path_name := f"{name}{_PATH_SUFFIX}") in rule:
            return comparison(variable, read_path(rule[path_name], data, context))
    raise AssertionError(f"rule was not validated: {rule!r}")
