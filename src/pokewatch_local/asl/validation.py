"""Load-time validation of a state machine definition (JSONPath query language only).

Anything the interpreter does not implement is rejected with ``UnsupportedFeature`` rather than
silently ignored; structurally broken definitions raise ``DefinitionError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from pokewatch_local.asl.choice import parse_timestamp, validate_rule
from pokewatch_local.asl.errors import ALL, DefinitionError, UnsupportedFeature
from pokewatch_local.asl.paths import WILDCARD, PathSyntaxError, parse_path, validate_path
from pokewatch_local.asl.payload import validate_dynamic, validate_template

_IO_FIELDS = {"InputPath", "OutputPath"}
_TRANSITION_FIELDS = {"Next", "End"}
_RESULT_FIELDS = {"ResultPath", "Parameters", "ResultSelector", "Retry", "Catch"}
STATE_FIELDS: dict[str, set[str]] = {
    "Pass": _IO_FIELDS | _TRANSITION_FIELDS | {"ResultPath", "Parameters", "Result"},
    "Task": _IO_FIELDS
    | _TRANSITION_FIELDS
    | _RESULT_FIELDS
    | {"Resource", "TimeoutSeconds", "TimeoutSecondsPath"},
    "Choice": _IO_FIELDS | {"Choices", "Default"},
    "Wait": _IO_FIELDS
    | _TRANSITION_FIELDS
    | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _IO_FIELDS,
    "Fail": {"Error", "Cause", "ErrorPath", "CausePath"},
    "Parallel": _IO_FIELDS | _TRANSITION_FIELDS | _RESULT_FIELDS | {"Branches"},
    "Map": _IO_FIELDS
    | _TRANSITION_FIELDS
    | _RESULT_FIELDS
    | {"ItemsPath", "ItemSelector", "ItemProcessor", "Iterator", "MaxConcurrency"}
    | {"MaxConcurrencyPath"},
}
_COMMON_FIELDS = {"Type", "Comment", "QueryLanguage"}
_DISTRIBUTED_MAP_FIELDS = {
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "Label",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
}
_NON_TERMINAL = {"Pass", "Task", "Wait", "Parallel", "Map"}
_RETRIER_FIELDS = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
}
_CATCHER_FIELDS = {"ErrorEquals", "Next", "ResultPath", "Comment"}


def validate_definition(definition: Any) -> None:
    """Validate a whole state machine definition; raise on the first problem found."""
    if not isinstance(definition, dict):
        raise DefinitionError("a state machine definition must be a JSON object")
    _check_query_language(definition, "definition")
    if "TimeoutSeconds" in definition:
        raise UnsupportedFeature("execution-level TimeoutSeconds is not supported")
    _validate_graph(definition, "definition", extra_fields={"Version", "QueryLanguage"})


def _check_query_language(node: dict[str, Any], where: str) -> None:
    language = node.get("QueryLanguage", "JSONPath")
    if language != "JSONPath":
        raise UnsupportedFeature(f"{where}: QueryLanguage {language!r} (only JSONPath)")


def _check_fields(node: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(node) - allowed
    if unknown:
        raise UnsupportedFeature(f"{where}: unsupported or unknown fields {sorted(unknown)}")


def _validate_graph(graph: Any, where: str, extra_fields: AbstractSet[str] = frozenset()) -> None:
    """Validate a StartAt/States graph: the top level, a Parallel branch or a Map processor."""
    if not isinstance(graph, dict):
        raise DefinitionError(f"{where}: expected an object with StartAt and States")
    _check_fields(graph, {"StartAt", "States", "Comment"} | extra_fields, where)
    states = graph.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError(f"{where}: States must be a non-empty object")
    start = graph.get("StartAt")
    if not isinstance(start, str) or start not in states:
        raise DefinitionError(f"{where}: StartAt {start!r} is not a state")
    for name, state in states.items():
        _validate_state(name, state, set(states), f"{where}.States.{name}")
    reachable = _reachable(start, states)
    if unreachable := set(states) - reachable:
        raise DefinitionError(f"{where}: unreachable states {sorted(unreachable)}")


def _successors(state: dict[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for rule in state.get("Choices", []):
        yield rule["Next"]
    for catcher in state.get("Catch", []):
        yield catcher["Next"]


def _reachable(start: str, states: dict[str, Any]) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        for successor in _successors(states[pending.pop()]):
            if successor not in seen:
                seen.add(successor)
                pending.append(successor)
    return seen


def _validate_state(name: str, state: Any, names: set[str], where: str) -> None:
    if not isinstance(state, dict):
        raise DefinitionError(f"{where}: a state must be an object")
    kind = state.get("Type")
    if kind not in STATE_FIELDS:
        raise UnsupportedFeature(f"{where}: unsupported state Type {kind!r}")
    _check_query_language(state, where)
    if kind == "Map" and (distributed := _DISTRIBUTED_MAP_FIELDS & set(state)):
        raise UnsupportedFeature(f"{where}: distributed Map fields {sorted(distributed)}")
    _check_fields(state, STATE_FIELDS[kind] | _COMMON_FIELDS, where)
    if kind in _NON_TERMINAL:
        _validate_transition(state, names, where)
    for field in ("InputPath", "OutputPath"):
        if state.get(field) is not None:
            _path(state[field], f"{where}.{field}")
    if state.get("ResultPath") is not None:
        _result_path(state["ResultPath"], f"{where}.ResultPath")
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in state:
            validate_template(state[field], f"{where}.{field}")
    for index, retrier in enumerate(state.get("Retry", [])):
        _validate_retrier(retrier, f"{where}.Retry[{index}]", last=index == len(state["Retry"]) - 1)
    for index, catcher in enumerate(state.get("Catch", [])):
        _validate_catcher(
            catcher, names, f"{where}.Catch[{index}]", last=index == len(state["Catch"]) - 1
        )
    _KIND_VALIDATORS.get(kind, _no_extra_checks)(state, names, where)


def _no_extra_checks(state: dict[str, Any], names: set[str], where: str) -> None:
    """States whose fields need no checks beyond the common ones."""


def _validate_transition(state: dict[str, Any], names: set[str], where: str) -> None:
    has_next, is_end = "Next" in state, state.get("End") is True
    if "End" in state and state["End"] is not True:
        raise DefinitionError(f"{where}: End must be true when present")
    if has_next == is_end:
        raise DefinitionError(f"{where}: exactly one of Next or End is required")
    if has_next and state["Next"] not in names:
        raise DefinitionError(f"{where}: Next {state['Next']!r} is not a state")


def _path(path: Any, where: str, *, reference: bool = False) -> None:
    if not isinstance(path, str):
        raise DefinitionError(f"{where}: expected a JSONPath string")
    try:
        validate_path(path, reference=reference)
    except PathSyntaxError as exc:
        raise UnsupportedFeature(f"{where}: {exc}") from exc


def _result_path(path: Any, where: str) -> None:
    _path(path, where, reference=True)
    if path.startswith("$$"):
        raise DefinitionError(f"{where}: ResultPath cannot write the context object")
    if any(not isinstance(s, str) or s is WILDCARD for s in parse_path(path)):
        raise UnsupportedFeature(f"{where}: ResultPath may only name object fields")


def _error_equals(node: dict[str, Any], where: str, *, last: bool) -> None:
    errors = node.get("ErrorEquals")
    if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
        raise DefinitionError(f"{where}: ErrorEquals must be a non-empty list of strings")
    if ALL in errors and (len(errors) != 1 or not last):
        raise DefinitionError(f"{where}: States.ALL must appear alone and in the last entry")


def _positive_integer(node: dict[str, Any], field: str, where: str, *, minimum: int) -> None:
    if field in node:
        value = node[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise DefinitionError(f"{where}.{field}: expected an integer >= {minimum}")


def _validate_retrier(retrier: Any, where: str, *, last: bool) -> None:
    if not isinstance(retrier, dict):
        raise DefinitionError(f"{where}: a retrier must be an object")
    _check_fields(retrier, _RETRIER_FIELDS, where)
    _error_equals(retrier, where, last=last)
    _positive_integer(retrier, "IntervalSeconds", where, minimum=1)
    _positive_integer(retrier, "MaxAttempts", where, minimum=0)
    _positive_integer(retrier, "MaxDelaySeconds", where, minimum=1)
    rate = retrier.get("BackoffRate", 2.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1.0:
        raise DefinitionError(f"{where}.BackoffRate: expected a number >= 1.0")
    if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
        raise DefinitionError(f"{where}.JitterStrategy: expected FULL or NONE")


def _validate_catcher(catcher: Any, names: set[str], where: str, *, last: bool) -> None:
    if not isinstance(catcher, dict):
        raise DefinitionError(f"{where}: a catcher must be an object")
    _check_fields(catcher, _CATCHER_FIELDS, where)
    _error_equals(catcher, where, last=last)
    if catcher.get("Next") not in names:
        raise DefinitionError(f"{where}: Next {catcher.get('Next')!r} is not a state")
    if catcher.get("ResultPath") is not None:
        _result_path(catcher["ResultPath"], f"{where}.ResultPath")


def _exclusive(
    state: dict[str, Any], fields: tuple[str, ...], where: str, *, required: bool
) -> None:
    present = [field for field in fields if field in state]
    if len(present) > 1 or (required and not present):
        requirement = "exactly" if required else "at most"
        raise DefinitionError(f"{where}: {requirement} one of {list(fields)} is allowed")


def _validate_task(state: dict[str, Any], names: set[str], where: str) -> None:
    if not isinstance(state.get("Resource"), str):
        raise DefinitionError(f"{where}: Resource must be a string")
    _exclusive(state, ("TimeoutSeconds", "TimeoutSecondsPath"), where, required=False)
    _positive_integer(state, "TimeoutSeconds", where, minimum=1)
    if "TimeoutSecondsPath" in state:
        _path(state["TimeoutSecondsPath"], f"{where}.TimeoutSecondsPath", reference=True)


def _validate_choice(state: dict[str, Any], names: set[str], where: str) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise DefinitionError(f"{where}: Choices must be a non-empty list")
    for index, rule in enumerate(choices):
        validate_rule(rule, f"{where}.Choices[{index}]", top_level=True)
        if rule["Next"] not in names:
            raise DefinitionError(f"{where}.Choices[{index}]: Next {rule['Next']!r} is not a state")
    if "Default" in state and state["Default"] not in names:
        raise DefinitionError(f"{where}: Default {state['Default']!r} is not a state")


def _validate_wait(state: dict[str, Any], names: set[str], where: str) -> None:
    fields = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")
    _exclusive(state, fields, where, required=True)
    _positive_integer(state, "Seconds", where, minimum=0)
    if "Timestamp" in state and parse_timestamp(state["Timestamp"]) is None:
        raise DefinitionError(f"{where}.Timestamp: not an RFC 3339 timestamp")
    for field in ("SecondsPath", "TimestampPath"):
        if field in state:
            _path(state[field], f"{where}.{field}", reference=True)


def _validate_fail(state: dict[str, Any], names: set[str], where: str) -> None:
    for literal, dynamic in (("Error", "ErrorPath"), ("Cause", "CausePath")):
        _exclusive(state, (literal, dynamic), where, required=False)
        if literal in state and not isinstance(state[literal], str):
            raise DefinitionError(f"{where}.{literal}: expected a string")
        if dynamic in state:
            validate_dynamic(state[dynamic], f"{where}.{dynamic}")


def _validate_parallel(state: dict[str, Any], names: set[str], where: str) -> None:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise DefinitionError(f"{where}: Branches must be a non-empty list")
    for index, branch in enumerate(branches):
        _validate_graph(branch, f"{where}.Branches[{index}]")


def _validate_map(state: dict[str, Any], names: set[str], where: str) -> None:
    _exclusive(state, ("ItemProcessor", "Iterator"), where, required=True)
    _exclusive(state, ("ItemSelector", "Parameters"), where, required=False)
    _exclusive(state, ("MaxConcurrency", "MaxConcurrencyPath"), where, required=False)
    _positive_integer(state, "MaxConcurrency", where, minimum=0)
    for field in ("ItemsPath", "MaxConcurrencyPath"):
        if field in state:
            _path(state[field], f"{where}.{field}", reference=True)
    if "Iterator" in state:
        _validate_graph(state["Iterator"], f"{where}.Iterator")
        return
    processor = state["ItemProcessor"]
    if isinstance(processor, dict):
        config = processor.get("ProcessorConfig", {})
        if not isinstance(config, dict) or set(config) - {"Mode"}:
            raise UnsupportedFeature(f"{where}.ItemProcessor.ProcessorConfig: only Mode")
        if config.get("Mode", "INLINE") != "INLINE":
            raise UnsupportedFeature(f"{where}: only the INLINE Map processor mode")
    _validate_graph(processor, f"{where}.ItemProcessor", extra_fields={"ProcessorConfig"})


_KIND_VALIDATORS = {
    "Task": _validate_task,
    "Choice": _validate_choice,
    "Wait": _validate_wait,
    "Fail": _validate_fail,
    "Parallel": _validate_parallel,
    "Map": _validate_map,
}
