"""Tests of the local ASL interpreter against the Step Functions semantics."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pokewatch_local.asl import (
    DefinitionError,
    ExecutionEvent,
    ExecutionResult,
    StateMachine,
    TaskContext,
    UnsupportedFeature,
)
from pokewatch_local.asl.intrinsics import evaluate_intrinsic
from pokewatch_local.asl.paths import read_path, write_path


class Recorder:
    """A fake task invoker: answers per resource, records every call."""

    def __init__(self, **handlers: Any) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, Any, TaskContext]] = []
        self.lock = threading.Lock()

    def __call__(self, resource: str, payload: Any, context: TaskContext) -> Any:
        with self.lock:
            self.calls.append((resource, payload, context))
        handler = self.handlers[resource]
        return handler(payload) if callable(handler) else handler


class Transient(Exception):
    """Stands for a Python Lambda exception class."""


class Renamed(Exception):
    error_name = "Lambda.ServiceException"


def failing(times: int, error: type[Exception] = Transient, result: Any = "ok") -> Any:
    """A handler that raises ``error`` on its first ``times`` calls, then returns ``result``."""
    remaining = [times]

    def handler(payload: Any) -> Any:
        if remaining[0] > 0:
            remaining[0] -= 1
            raise error(f"failure {remaining[0]}")
        return result

    return handler


def machine(states: dict[str, Any], start: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states, **kwargs}


def task(resource: str = "fn", **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, "End": True, **fields}


def run_timed(
    definition: dict[str, Any], data: Any = None, invoke: Any = None, **kwargs: Any
) -> tuple[ExecutionResult, list[float]]:
    """Run ``definition`` on ``data`` (default ``{}``); returns the result and every sleep."""
    sleeps: list[float] = []
    sm = StateMachine(definition, invoke or Recorder(), sleep=sleeps.append, **kwargs)
    return sm.run({} if data is None else data, execution_name="exec-1"), sleeps


def run(
    definition: dict[str, Any], data: Any = None, invoke: Any = None, **kwargs: Any
) -> ExecutionResult:
    """Run ``definition`` on ``data`` (default ``{}``) with sleeps skipped."""
    return run_timed(definition, data, invoke, **kwargs)[0]


# --- data flow -------------------------------------------------------------------------------


def test_pass_result_and_result_path_merge_into_nested_objects() -> None:
    definition = machine(
        {"P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.a.b", "End": True}}
    )
    result = run(definition, {"a": {"keep": True}, "other": 2})
    assert result.status == "SUCCEEDED"
    assert result.output == {"a": {"keep": True, "b": {"x": 1}}, "other": 2}


def test_result_path_null_discards_result_and_default_replaces_input() -> None:
    invoke = Recorder(fn={"r": 1})
    assert run(machine({"T": task(ResultPath=None)}), {"in": 1}, invoke).output == {"in": 1}
    assert run(machine({"T": task()}), {"in": 1}, invoke).output == {"r": 1}


def test_input_path_parameters_result_selector_output_path() -> None:
    invoke = Recorder(fn=lambda payload: {"Payload": {"n": payload["value"] * 10}, "Meta": 1})
    state = task(
        InputPath="$.inner",
        Parameters={"value.$": "$.v", "const": "c", "nested": {"name.$": "$$.State.Name"}},
        ResultSelector={"n.$": "$.Payload.n"},
        ResultPath="$.out",
        OutputPath="$.out",
    )
    result = run(machine({"T": state}), {"inner": {"v": 4}}, invoke)
    assert result.output == {"n": 40}
    assert invoke.calls[0][1] == {"value": 4, "const": "c", "nested": {"name": "T"}}


def test_null_input_and_output_paths_give_empty_objects() -> None:
    invoke = Recorder(fn="r")
    result = run(machine({"T": task(InputPath=None, OutputPath=None)}), {"a": 1}, invoke)
    assert invoke.calls[0][1] == {}
    assert result.output == {}


def test_missing_input_path_is_a_runtime_error_not_caught_by_states_all() -> None:
    state = task(InputPath="$.missing", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "F"}])
    definition = machine({"T": state, "F": {"Type": "Pass", "End": True}})
    result = run(definition, {"a": 1}, Recorder(fn=1))
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_result_path_into_a_non_object_is_a_runtime_error() -> None:
    definition = machine({"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.a.b", "End": True}})
    assert run(definition, {"a": "text"}).error == "States.Runtime"


@given(
    data=st.dictionaries(
        st.sampled_from("abc"),
        st.integers() | st.dictionaries(st.sampled_from("abc"), st.integers()),
    ),
    keys=st.lists(st.sampled_from("abc"), min_size=1, max_size=3),
    value=st.integers(),
)
def test_write_path_never_mutates_its_input(
    data: dict[str, Any], keys: list[str], value: int
) -> None:
    snapshot = json.loads(json.dumps(data))
    path = "$." + ".".join(keys)
    try:
        written = write_path(path, data, value)
    except Exception:
        written = None
    assert data == snapshot
    if written is not None:
        assert read_path(path, written) == value


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_pass_state_is_identity_on_any_json(data: Any) -> None:
    sm = StateMachine(machine({"P": {"Type": "Pass", "End": True}}), Recorder())
    assert sm.run(data).output == data


def test_jsonpath_subset() -> None:
    data = {"a": [{"b": 1}, {"b": 2}, {"c": 3}], "x y": {"z": True}}
    assert read_path("$.a[1].b", data) == 2
    assert read_path("$['x y'].z", data) is True
    assert read_path("$.a[*].b", data) == [1, 2]
    assert read_path("$$.Execution.Name", None, {"Execution": {"Name": "n"}}) == "n"


# --- retry and catch -------------------------------------------------------------------------


def test_retry_sleeps_interval_times_backoff_power_then_succeeds() -> None:
    invoke = Recorder(fn=failing(3))
    retry = [
        {"ErrorEquals": ["Transient"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}
    ]
    result, sleeps = run_timed(machine({"T": task(Retry=retry)}), invoke=invoke)
    assert result.status == "SUCCEEDED"
    assert sleeps == [2.0, 6.0, 18.0]
    assert [call[2].attempt for call in invoke.calls] == [0, 1, 2, 3]


def test_retry_defaults_are_one_second_backoff_two_three_attempts() -> None:
    invoke = Recorder(fn=failing(10))
    result, sleeps = run_timed(
        machine({"T": task(Retry=[{"ErrorEquals": ["States.ALL"]}])}), invoke=invoke
    )
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(invoke.calls) == 4
    assert result.error == "Transient"
    assert json.loads(result.cause) == {"errorMessage": "failure 6", "errorType": "Transient"}


def test_max_attempts_zero_never_retries() -> None:
    invoke = Recorder(fn=failing(1))
    result, sleeps = run_timed(
        machine({"T": task(Retry=[{"ErrorEquals": ["Transient"], "MaxAttempts": 0}])}),
        invoke=invoke,
    )
    assert result.status == "FAILED" and len(invoke.calls) == 1 and sleeps == []


def test_max_delay_caps_and_full_jitter_scales_by_random() -> None:
    retry = [
        {
            "ErrorEquals": ["Transient"],
            "IntervalSeconds": 3,
            "MaxAttempts": 4,
            "MaxDelaySeconds": 10,
        }
    ]
    _, sleeps = run_timed(machine({"T": task(Retry=retry)}), invoke=Recorder(fn=failing(4)))
    assert sleeps == [
        3,
        6,
        10,
        10,
    ]
    jittered = [{**retry[0], "JitterStrategy": "FULL"}]
    _, sleeps = run_timed(
        machine({"T": task(Retry=jittered)}), invoke=Recorder(fn=failing(2)), random=lambda: 0.5
    )
    assert sleeps == [1.5, 3.0]


def test_each_retrier_keeps_its_own_attempt_count() -> None:
    errors = iter([Transient, Renamed, Transient, Renamed])

    def handler(payload: Any) -> str:
        if (error := next(errors, None)) is not None:
            raise error("x")
        return "done"

    retry = [
        {"ErrorEquals": ["Transient"], "MaxAttempts": 2, "IntervalSeconds": 1},
        {"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2, "IntervalSeconds": 5},
    ]
    result, sleeps = run_timed(machine({"T": task(Retry=retry)}), invoke=Recorder(fn=handler))
    assert result.output == "done"
    assert sleeps == [1.0, 5.0, 2.0, 10.0]


def test_error_name_attribute_overrides_class_name() -> None:
    result = run(machine({"T": task()}), invoke=Recorder(fn=failing(1, Renamed)))
    assert result.error == "Lambda.ServiceException"


def test_task_failed_matches_everything_but_timeout() -> None:
    def slow(payload: Any) -> str:
        time.sleep(1.5)
        return "late"

    catch = [{"ErrorEquals": ["States.TaskFailed"], "Next": "Fallback"}]
    states = {"T": task(Catch=catch), "Fallback": {"Type": "Pass", "Result": "caught", "End": True}}
    assert run(machine(states), invoke=Recorder(fn=failing(1))).output == "caught"
    states["T"] = task(Catch=catch, TimeoutSeconds=1)
    result = run(machine(states), invoke=Recorder(fn=slow))
    assert (result.status, result.error) == ("FAILED", "States.Timeout")


def test_catch_into_fallback_with_result_path_keeps_input() -> None:
    catch = [
        {"ErrorEquals": ["Other"], "Next": "Wrong"},
        {"ErrorEquals": ["Transient"], "Next": "Fallback", "ResultPath": "$.error"},
    ]
    states = {
        "T": task(Catch=catch, Retry=[{"ErrorEquals": ["Transient"], "MaxAttempts": 1}]),
        "Wrong": {"Type": "Fail", "Error": "Wrong"},
        "Fallback": {"Type": "Pass", "End": True},
    }
    result = run(machine(states), {"keep": 1}, Recorder(fn=failing(2)))
    assert result.output["keep"] == 1
    assert result.output["error"]["Error"] == "Transient"
    assert json.loads(result.output["error"]["Cause"])["errorType"] == "Transient"
    assert [e.kind for e in result.events].count("TaskRetry") == 1


def test_context_object_fields() -> None:
    parameters = {
        "id.$": "$$.Execution.Id",
        "name.$": "$$.Execution.Name",
        "input.$": "$$.Execution.Input",
        "start.$": "$$.Execution.StartTime",
        "sm.$": "$$.StateMachine.Name",
        "state.$": "$$.State.Name",
        "entered.$": "$$.State.EnteredTime",
        "retry.$": "$$.State.RetryCount",
    }
    invoke = Recorder(fn=failing(1, result="ok"))
    state = task(Parameters=parameters, Retry=[{"ErrorEquals": ["States.ALL"]}])
    run(machine({"T": state}), {"a": 1}, invoke, name="pipe", clock=lambda: 0.0)
    first, second = invoke.calls[0][1], invoke.calls[1][1]
    assert first["id"].endswith(":execution:pipe:exec-1")
    assert (first["name"], first["input"], first["sm"], first["state"]) == (
        "exec-1",
        {"a": 1},
        "pipe",
        "T",
    )
    assert first["start"] == first["entered"] == "1970-01-01T00:00:00.000Z"
    assert (first["retry"], second["retry"]) == (0, 1)


# --- choice, wait, fail, succeed -------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.s", "StringEquals": "abc"}, True),
        ({"Variable": "$.s", "StringEqualsPath": "$.s2"}, False),
        ({"Variable": "$.s", "StringLessThan": "abd"}, True),
        ({"Variable": "$.s", "StringGreaterThanEquals": "abc"}, True),
        ({"Variable": "$.s", "StringMatches": "a*c"}, True),
        ({"Variable": "$.star", "StringMatches": r"a\*"}, True),
        ({"Variable": "$.s", "StringMatches": r"a\*"}, False),
        ({"Variable": "$.n", "NumericEquals": 5}, True),
        ({"Variable": "$.n", "NumericLessThan": 5}, False),
        ({"Variable": "$.n", "NumericGreaterThanPath": "$.small"}, True),
        ({"Variable": "$.n", "NumericLessThanEquals": 5.0}, True),
        ({"Variable": "$.s", "NumericEquals": 5}, False),
        ({"Variable": "$.b", "BooleanEquals": True}, True),
        ({"Variable": "$.n", "BooleanEquals": True}, False),
        ({"Variable": "$.t", "TimestampEquals": "2024-01-01T01:00:00+01:00"}, True),
        ({"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:00.5Z"}, True),
        ({"Variable": "$.t", "TimestampGreaterThanPath": "$.s"}, False),
        ({"Variable": "$.missing", "IsPresent": False}, True),
        ({"Variable": "$.nothing", "IsNull": True}, True),
        ({"Variable": "$.s", "IsString": True}, True),
        ({"Variable": "$.b", "IsNumeric": True}, False),
        ({"Variable": "$.b", "IsBoolean": True}, True),
        ({"Variable": "$.t", "IsTimestamp": True}, True),
        ({"Variable": "$.s", "IsTimestamp": True}, False),
        (
            {
                "And": [
                    {"Variable": "$.b", "BooleanEquals": True},
                    {"Variable": "$.n", "NumericEquals": 5},
                ]
            },
            True,
        ),
        (
            {
                "Or": [
                    {"Variable": "$.b", "BooleanEquals": False},
                    {"Variable": "$.n", "NumericEquals": 4},
                ]
            },
            False,
        ),
        ({"Not": {"Variable": "$.s", "StringEquals": "x"}}, True),
    ],
)
def test_choice_operators(rule: dict[str, Any], expected: bool) -> None:
    data = {
        "s": "abc",
        "s2": "abd",
        "star": "a*",
        "n": 5,
        "small": 1,
        "b": True,
        "nothing": None,
        "t": "2024-01-01T00:00:00Z",
    }
    states = {
        "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
        "Yes": {"Type": "Pass", "Result": True, "End": True},
        "No": {"Type": "Pass", "Result": False, "End": True},
    }
    assert run(machine(states), data).output is expected


def test_choice_without_match_or_default_fails_and_missing_variable_is_runtime_error() -> None:
    states = {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "S"}]},
        "S": {"Type": "Succeed"},
    }
    assert run(machine(states), {"n": 2}).error == "States.NoChoiceMatched"
    assert run(machine(states), {}).error == "States.Runtime"


def test_fail_state_with_literal_and_path_error_and_cause() -> None:
    assert (run(machine({"F": {"Type": "Fail", "Error": "E", "Cause": "C"}})).error) == "E"
    fail = {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('bad {}', $.n)"}
    result = run(machine({"F": fail}), {"e": "QualityGateFailed", "n": 3})
    assert (result.status, result.error, result.cause) == ("FAILED", "QualityGateFailed", "bad 3")


def test_wait_variants_sleep_through_the_injected_sleep() -> None:
    def wait_for(state: dict[str, Any], data: Any) -> list[float]:
        definition = machine({"W": {"Type": "Wait", "End": True, **state}})
        return run_timed(definition, data, clock=lambda: 100.0)[1]

    assert wait_for({"Seconds": 3}, {}) == [3.0]
    assert wait_for({"SecondsPath": "$.s"}, {"s": 7}) == [7.0]
    assert wait_for({"Timestamp": "1970-01-01T00:02:00Z"}, {}) == [20.0]
    assert wait_for({"TimestampPath": "$.t"}, {"t": "1970-01-01T00:00:00Z"}) == [0.0]


def test_succeed_applies_paths() -> None:
    assert run(machine({"S": {"Type": "Succeed", "InputPath": "$.a"}}), {"a": [1]}).output == [1]


# --- parallel and map ------------------------------------------------------------------------


def test_parallel_runs_every_branch_and_collects_results_in_order() -> None:
    branch = lambda resource: {"StartAt": "T", "States": {"T": task(resource)}}  # noqa: E731
    state = {
        "Type": "Parallel",
        "Branches": [branch("a"), branch("b")],
        "ResultPath": "$.r",
        "End": True,
    }
    invoke = Recorder(a=lambda p: p["x"] + 1, b=lambda p: p["x"] + 2)
    assert run(machine({"P": state}), {"x": 1}, invoke).output == {"x": 1, "r": [2, 3]}


def test_failing_branch_fails_parallel_with_its_error_and_can_be_caught() -> None:
    branches = [
        {"StartAt": "T", "States": {"T": task("bad")}},
        {"StartAt": "T", "States": {"T": task("ok")}},
    ]
    states = {
        "P": {
            "Type": "Parallel",
            "Branches": branches,
            "End": True,
            "Catch": [{"ErrorEquals": ["Transient"], "Next": "Caught"}],
        },
        "Caught": {"Type": "Pass", "End": True},
    }
    result = run(machine(states), {}, Recorder(bad=failing(1), ok="fine"))
    assert result.output["Error"] == "Transient"


def map_state(**fields: Any) -> dict[str, Any]:
    processor = {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "T", "States": {"T": task()}}
    return {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}


def test_map_respects_max_concurrency_and_keeps_order() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(payload: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02 * (5 - payload % 5))
        with lock:
            active[0] -= 1
        return payload * 2

    result = run(machine({"M": map_state(MaxConcurrency=3)}), list(range(12)), Recorder(fn=work))
    assert result.output == [n * 2 for n in range(12)]
    assert peak[0] == 3


def test_map_concurrency_from_path_and_item_selector_with_context() -> None:
    state = map_state(
        ItemsPath="$.items",
        MaxConcurrencyPath="$.limit",
        ItemSelector={
            "item.$": "$$.Map.Item.Value",
            "index.$": "$$.Map.Item.Index",
            "tag.$": "$.tag",
        },
    )
    invoke = Recorder(fn=lambda p: f"{p['tag']}{p['index']}{p['item']}")
    result = run(machine({"M": state}), {"items": ["a", "b"], "limit": 1, "tag": "t"}, invoke)
    assert result.output == ["t0a", "t1b"]


def test_legacy_iterator_and_parameters() -> None:
    state = {
        "Type": "Map",
        "Parameters": {"v.$": "$$.Map.Item.Value"},
        "End": True,
        "Iterator": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
    }
    assert run(machine({"M": state}), [1, 2]).output == [{"v": 1}, {"v": 2}]


def test_failing_iteration_fails_the_map_and_stops_pending_iterations() -> None:
    def work(payload: int) -> int:
        if payload == 0:
            raise Transient("item 0")
        time.sleep(0.01)
        return payload

    invoke = Recorder(fn=work)
    result = run(machine({"M": map_state(MaxConcurrency=1)}), list(range(50)), invoke)
    assert (result.status, result.error) == ("FAILED", "Transient")
    assert len(invoke.calls) < 50


def test_map_over_a_non_array_is_a_runtime_error() -> None:
    assert run(machine({"M": map_state()}), {"a": 1}).error == "States.Runtime"


# --- intrinsics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (r"States.Format('Hi {}, {} \{\} it\'s', $.name, $.n)", "Hi Ann, 3 {} it's"),
        ("States.StringToJson($.json)", {"a": [1]}),
        ("States.JsonToString($.obj)", '{"k":"v"}'),
        ("States.Array($.n, 'x', null, true, 1.5, States.Array())", [3, "x", None, True, 1.5, []]),
        ("States.ArrayPartition(States.ArrayRange(1, 5, 1), 2)", [[1, 2], [3, 4], [5]]),
        ("States.ArrayContains($.list, 2)", True),
        ("States.ArrayContains($.flags, 1)", False),
        ("States.ArrayRange(10, 0, -5)", [10, 5, 0]),
        ("States.ArrayGetItem($.list, 1)", 2),
        ("States.ArrayLength($.list)", 3),
        ("States.ArrayUnique(States.Array(1, 1, true, '1'))", [1, True, "1"]),
        ("States.Base64Encode('hello')", "aGVsbG8="),
        ("States.Base64Decode(States.Base64Encode($.name))", "Ann"),
        ("States.Hash('abc', 'MD5')", "900150983cd24fb0d6963f7d28e17f72"),
        ("States.JsonMerge($.obj, States.StringToJson('\\{\"k\": 1\\}'), false)", {"k": 1}),
        ("States.MathAdd($.n, -4)", -1),
        ("States.MathRandom(10, 20)", 15),
        ("States.StringSplit('a.b+c,,d', '.+,')", ["a", "b", "c", "d"]),
        ("States.ArrayGetItem(States.StringSplit($$.Execution.Name, '-'), 1)", "1"),
    ],
)
def test_intrinsic_functions(expression: str, expected: Any) -> None:
    data = {
        "name": "Ann",
        "n": 3,
        "json": '{"a": [1]}',
        "obj": {"k": "v"},
        "list": [1, 2, 3],
        "flags": [True],
    }
    context = {"Execution": {"Name": "exec-1"}}
    assert evaluate_intrinsic(expression, data, context, random=lambda: 0.5) == expected


def test_intrinsics_uuid_seeded_random_and_use_in_parameters() -> None:
    state = {
        "Type": "Pass",
        "End": True,
        "Parameters": {
            "id.$": "States.UUID()",
            "r1.$": "States.MathRandom(0, 1000, 7)",
            "r2.$": "States.MathRandom(0, 1000, 7)",
        },
    }
    output = run(machine({"P": state})).output
    assert len(output["id"]) == 36 and output["r1"] == output["r2"]


@pytest.mark.parametrize(
    "expression",
    [
        "States.ArrayGetItem($.list, 9)",
        "States.Format('{} {}', 1)",
        "States.JsonMerge($.obj, $.obj, true)",
        "States.MathAdd(1.5, 1)",
        "States.Hash('x', 'CRC32')",
        "States.ArrayLength($.absent)",
    ],
)
def test_intrinsic_failures_are_runtime_errors(expression: str) -> None:
    state = {"Type": "Pass", "End": True, "Parameters": {"v.$": expression}}
    assert run(machine({"P": state}), {"list": [], "obj": {}}).error == "States.Runtime"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "definition",
    [
        machine({"P": {"Type": "Pass", "End": True}}, QueryLanguage="JSONata"),
        machine({"P": {"Type": "Pass", "End": True, "QueryLanguage": "JSONata"}}),
        machine({"P": {"Type": "Foo", "End": True}}),
        machine({"P": {"Type": "Pass", "End": True, "Bogus": 1}}),
        machine({"T": task(HeartbeatSeconds=10)}),
        machine({"M": map_state(ItemReader={"Resource": "arn:aws:states:::s3:getObject"})}),
        machine({"M": map_state(ToleratedFailurePercentage=5)}),
        machine(
            {
                "M": {
                    **map_state(),
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                        "StartAt": "T",
                        "States": {"T": task()},
                    },
                }
            }
        ),
        machine({"P": {"Type": "Pass", "End": True, "Parameters": {"x.$": "States.Nope($)"}}}),
        machine({"P": {"Type": "Pass", "End": True, "InputPath": "$.a[1:2]"}}),
        machine({"P": {"Type": "Pass", "End": True, "Assign": {"x": 1}}}),
    ],
)
def test_unsupported_features_are_rejected_at_load(definition: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedFeature):
        StateMachine(definition, Recorder())


@pytest.mark.parametrize(
    "definition",
    [
        machine({"P": {"Type": "Pass", "Next": "Nowhere"}}),
        machine({"P": {"Type": "Pass"}}),
        machine({"P": {"Type": "Pass", "End": True}, "Orphan": {"Type": "Succeed"}}),
        machine({"T": task(Retry=[{"ErrorEquals": ["States.ALL", "X"]}])}),
        machine({"T": task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])}),
        machine({"T": task(Retry=[{"ErrorEquals": ["X"], "BackoffRate": 0.5}])}),
        machine({"W": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True}}),
        {"StartAt": "Missing", "States": {"P": {"Type": "Pass", "End": True}}},
    ],
)
def test_malformed_definitions_are_rejected(definition: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        StateMachine(definition, Recorder())


def test_events_reach_the_callback_in_order() -> None:
    seen: list[ExecutionEvent] = []
    run(machine({"P": {"Type": "Pass", "End": True}}), on_event=seen.append)
    assert [(e.kind, e.state) for e in seen] == [
        ("ExecutionStarted", None),
        ("StateEntered", "P"),
        ("StateExited", "P"),
        ("ExecutionSucceeded", None),
    ]


def test_ctrl_c_while_a_map_runs_stops_its_pending_iterations() -> None:
    main = threading.main_thread().ident
    assert main is not None

    def work(payload: int) -> int:
        time.sleep(0.1)
        if payload == 0:  # once the Map waits for its iterations: Ctrl-C, where Python takes it
            time.sleep(0.2)
            signal.pthread_kill(main, signal.SIGINT)
        return payload

    invoke = Recorder(fn=work)
    with pytest.raises(KeyboardInterrupt):
        run(machine({"M": map_state(MaxConcurrency=2)}), list(range(50)), invoke)
    # The iterations running at the time end; the 40-odd queued ones never start.
    assert len(invoke.calls) < 10, len(invoke.calls)
