"""Execution of a validated ASL state machine with the semantics AWS Step Functions documents."""

from __future__ import annotations

import json
import random as random_module
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pokewatch_local.asl.choice import evaluate_rule, parse_timestamp
from pokewatch_local.asl.errors import (
    NO_CHOICE_MATCHED,
    RUNTIME,
    TIMEOUT,
    StatesError,
    error_matches,
)
from pokewatch_local.asl.paths import read_path, write_path
from pokewatch_local.asl.payload import evaluate_dynamic, evaluate_template
from pokewatch_local.asl.validation import validate_definition

# AWS runs at most 40 iterations of an inline Map at once, whatever MaxConcurrency says.
MAX_INLINE_MAP_CONCURRENCY = 40
_ACCOUNT_ARN = "arn:aws:states:local:000000000000"


@dataclass(frozen=True)
class TaskContext:
    """What a task invoker learns about the call besides resource and payload."""

    execution_name: str
    state_name: str
    attempt: int


class TaskInvoker(Protocol):
    """Carries out a Task state's ``Resource`` with the payload; returns the result or raises.

    An exception becomes the ASL error named by its ``error_name`` attribute, else by its class
    name (as a Python Lambda function's ``errorType``).
    """

    def __call__(self, resource: str, payload: Any, context: TaskContext) -> Any: ...


@dataclass(frozen=True)
class ExecutionEvent:
    """One entry of the execution history."""

    kind: str
    state: str | None
    detail: dict[str, Any]
    at: float


@dataclass
class ExecutionResult:
    """The outcome of one execution."""

    status: Literal["SUCCEEDED", "FAILED"]
    output: Any
    error: str | None
    cause: str | None
    events: list[ExecutionEvent]


class _Cancelled(Exception):
    """A sibling branch or iteration failed, so this one stops (never matched by Catch)."""


@dataclass
class _Scope:
    """Cancellation scope of a Parallel branch or Map iteration, nested in its parent's."""

    parent: _Scope | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        scope: _Scope | None = self
        while scope is not None:
            if scope.cancelled.is_set():
                raise _Cancelled
            scope = scope.parent


@dataclass
class _Run:
    """Per-execution bookkeeping shared by all the threads of the execution."""

    execution_name: str
    base_context: dict[str, Any]
    events: list[ExecutionEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _iso(instant: float) -> str:
    moment = datetime.fromtimestamp(instant, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_copy(value: Any, what: str) -> Any:
    """A deep copy that is also proof ``value`` is JSON (as a payload crossing AWS would be)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StatesError(RUNTIME, f"{what} is not JSON serializable: {exc}") from exc


def _error_from_exception(exc: Exception) -> StatesError:
    """The ASL error for an exception raised by a task, with a Lambda-style JSON cause."""
    if isinstance(exc, StatesError):
        return exc
    name = getattr(exc, "error_name", None) or type(exc).__name__
    cause = json.dumps({"errorMessage": str(exc), "errorType": name})
    return StatesError(name, cause)


class StateMachine:
    """An ASL (JSONPath) state machine that runs locally, calling ``invoke`` for Task states."""

    def __init__(
        self,
        definition: dict[str, Any],
        invoke: TaskInvoker,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[ExecutionEvent], None] | None = None,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.time,
        name: str = "StateMachine",
    ) -> None:
        """Validate ``definition``; raises ``DefinitionError``/``UnsupportedFeature``."""
        validate_definition(definition)
        self.definition = definition
        self.name = name
        self._invoke = invoke
        self._sleep = sleep
        self._on_event = on_event
        self._random = random
        self._clock = clock

    def run(self, execution_input: Any, *, execution_name: str = "local") -> ExecutionResult:
        """Execute the state machine on ``execution_input`` and report how it ended."""
        started = self._clock()
        execution_input = _json_copy(execution_input, "the execution input")
        run = _Run(
            execution_name=execution_name,
            base_context={
                "Execution": {
                    "Id": f"{_ACCOUNT_ARN}:execution:{self.name}:{execution_name}",
                    "Name": execution_name,
                    "Input": execution_input,
                    "StartTime": _iso(started),
                },
                "StateMachine": {
                    "Id": f"{_ACCOUNT_ARN}:stateMachine:{self.name}",
                    "Name": self.name,
                },
            },
        )
        self._emit(run, "ExecutionStarted", None, {"input": execution_input})
        try:
            output = self._run_graph(self.definition, execution_input, run, _Scope())
        except StatesError as failure:
            detail = {"error": failure.error, "cause": failure.cause}
            self._emit(run, "ExecutionFailed", None, detail)
            return ExecutionResult("FAILED", None, failure.error, failure.cause, run.events)
        self._emit(run, "ExecutionSucceeded", None, {"output": output})
        return ExecutionResult("SUCCEEDED", output, None, None, run.events)

    def _emit(self, run: _Run, kind: str, state: str | None, detail: dict[str, Any]) -> None:
        event = ExecutionEvent(kind, state, detail, self._clock())
        with run.lock:
            run.events.append(event)
            if self._on_event is not None:
                self._on_event(event)

    def _run_graph(self, graph: dict[str, Any], data: Any, run: _Run, scope: _Scope) -> Any:
        """Run a StartAt/States graph from its start to a terminal state; return its output."""
        name: str | None = graph["StartAt"]
        while name is not None:
            scope.check()
            state = graph["States"][name]
            self._emit(run, "StateEntered", name, {"input": data})
            data, name_next = self._run_state(name, state, data, run, scope)
            self._emit(run, "StateExited", name, {"output": data})
            name = name_next
        return data

    def _context(self, run: _Run, name: str, entered: str, retry_count: int) -> dict[str, Any]:
        state = {"Name": name, "EnteredTime": entered, "RetryCount": retry_count}
        return {**run.base_context, "State": state}

    def _run_state(
        self, name: str, state: dict[str, Any], raw: Any, run: _Run, scope: _Scope
    ) -> tuple[Any, str | None]:
        """Run one state on its raw input; returns (output, next state name or None at the end)."""
        entered = _iso(self._clock())
        kind = state["Type"]
        if kind in ("Task", "Parallel", "Map"):
            return self._run_with_error_handling(name, state, raw, run, scope, entered)
        context = self._context(run, name, entered, 0)
        if kind == "Fail":
            raise self._fail_error(state, raw, context)
        effective = self._effective_input(state, raw, context, with_parameters=kind == "Pass")
        if kind == "Choice":
            return self._output(state, effective, context), self._choose(state, effective, context)
        if kind == "Wait":
            self._wait(state, effective, context, scope)
            return self._output(state, effective, context), state.get("Next")
        if kind == "Pass":
            result = state.get("Result", effective)
            merged = self._apply_result_path(state, raw, result)
            return self._output(state, merged, context), state.get("Next")
        return self._output(state, effective, context), None  # Succeed

    def _effective_input(
        self, state: dict[str, Any], raw: Any, context: Any, *, with_parameters: bool
    ) -> Any:
        input_path = state.get("InputPath", "$")
        effective = {} if input_path is None else read_path(input_path, raw, context)
        if with_parameters and "Parameters" in state:
            effective = evaluate_template(state["Parameters"], effective, context, self._random)
        return effective

    def _output(self, state: dict[str, Any], data: Any, context: Any) -> Any:
        output_path = state.get("OutputPath", "$")
        return {} if output_path is None else read_path(output_path, data, context)

    @staticmethod
    def _apply_result_path(node: dict[str, Any], raw: Any, result: Any) -> Any:
        result_path = node.get("ResultPath", "$")
        return raw if result_path is None else write_path(result_path, raw, result)

    def _fail_error(self, state: dict[str, Any], raw: Any, context: Any) -> StatesError:
        values: dict[str, str | None] = {}
        for literal, dynamic in (("Error", "ErrorPath"), ("Cause", "CausePath")):
            value = state.get(literal)
            if dynamic in state:
                value = evaluate_dynamic(state[dynamic], raw, context, self._random)
                if not isinstance(value, str):
                    raise StatesError(RUNTIME, f"{dynamic} must resolve to a string: {value!r}")
            values[literal] = value
        return StatesError(values["Error"] or "States.Fail", values["Cause"])

    @staticmethod
    def _choose(state: dict[str, Any], effective: Any, context: Any) -> str:
        for rule in state["Choices"]:
            if evaluate_rule(rule, effective, context):
                return rule["Next"]
        if "Default" in state:
            return state["Default"]
        raise StatesError(NO_CHOICE_MATCHED, "No Choice rule matched and there is no Default")

    def _wait(self, state: dict[str, Any], effective: Any, context: Any, scope: _Scope) -> None:
        if "Seconds" in state or "SecondsPath" in state:
            seconds = state.get("Seconds")
            if "SecondsPath" in state:
                seconds = read_path(state["SecondsPath"], effective, context)
            if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
                raise StatesError(
                    RUNTIME, f"Wait seconds must be a non-negative integer: {seconds!r}"
                )
            delay = float(seconds)
        else:
            text = state.get("Timestamp")
            if "TimestampPath" in state:
                text = read_path(state["TimestampPath"], effective, context)
            instant = parse_timestamp(text)
            if instant is None:
                raise StatesError(RUNTIME, f"Wait timestamp is not RFC 3339: {text!r}")
            delay = max(0.0, instant.timestamp() - self._clock())
        scope.check()
        self._sleep(delay)

    def _run_with_error_handling(
        self, name: str, state: dict[str, Any], raw: Any, run: _Run, scope: _Scope, entered: str
    ) -> tuple[Any, str | None]:
        """Run a Task/Parallel/Map state, applying its Retry and Catch policies."""
        retriers = state.get("Retry", [])
        retries_by_retrier = [0] * len(retriers)
        attempt = 0
        while True:
            context = self._context(run, name, entered, attempt)
            try:
                output = self._attempt(name, state, raw, run, scope, context, attempt)
                return output, state.get("Next")
            except StatesError as failure:
                self._emit(
                    run,
                    f"{state['Type']}Failed",
                    name,
                    {"error": failure.error, "cause": failure.cause},
                )
                delay = self._retry_delay(retriers, retries_by_retrier, failure)
                if delay is None:
                    return self._catch(name, state, raw, run, failure)
                attempt += 1
                detail = {"error": failure.error, "attempt": attempt, "delay": delay}
                self._emit(run, "TaskRetry", name, detail)
                scope.check()
                self._sleep(delay)

    def _retry_delay(
        self, retriers: list[dict[str, Any]], retries_by_retrier: list[int], failure: StatesError
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when no retrier allows one.

        The first retrier whose ErrorEquals matches decides; each keeps its own count.
        """
        for index, retrier in enumerate(retriers):
            if not error_matches(retrier["ErrorEquals"], failure.error):
                continue
            retries = retries_by_retrier[index]
            if retries >= retrier.get("MaxAttempts", 3):
                return None
            retries_by_retrier[index] = retries + 1
            delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** retries
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, retrier["MaxDelaySeconds"])
            if retrier.get("JitterStrategy", "NONE") == "FULL":
                delay *= self._random()
            return float(delay)
        return None

    def _catch(
        self, name: str, state: dict[str, Any], raw: Any, run: _Run, failure: StatesError
    ) -> tuple[Any, str]:
        for catcher in state.get("Catch", []):
            if error_matches(catcher["ErrorEquals"], failure.error):
                error_output = {"Error": failure.error, "Cause": failure.cause}
                output = self._apply_result_path(catcher, raw, error_output)
                detail = {"error": failure.error, "cause": failure.cause, "next": catcher["Next"]}
                self._emit(run, "ErrorCaught", name, detail)
                return output, catcher["Next"]
        raise failure

    def _attempt(
        self,
        name: str,
        state: dict[str, Any],
        raw: Any,
        run: _Run,
        scope: _Scope,
        context: dict[str, Any],
        attempt: int,
    ) -> Any:
        """One attempt of a Task/Parallel/Map state, from InputPath to OutputPath."""
        kind = state["Type"]
        effective = self._effective_input(state, raw, context, with_parameters=kind != "Map")
        if kind == "Task":
            result = self._run_task(name, state, effective, run, context, attempt)
        elif kind == "Parallel":
            jobs = [
                _bind_graph(self._run_graph, branch, effective, run) for branch in state["Branches"]
            ]
            result = self._run_all(jobs, len(jobs), scope)
        else:
            result = self._run_map(name, state, effective, run, scope, context)
        if "ResultSelector" in state:
            result = evaluate_template(state["ResultSelector"], result, context, self._random)
        return self._output(state, self._apply_result_path(state, raw, result), context)

    def _run_task(
        self,
        name: str,
        state: dict[str, Any],
        payload: Any,
        run: _Run,
        context: dict[str, Any],
        attempt: int,
    ) -> Any:
        timeout = state.get("TimeoutSeconds")
        if "TimeoutSecondsPath" in state:
            timeout = read_path(state["TimeoutSecondsPath"], payload, context)
            if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
                raise StatesError(RUNTIME, f"TimeoutSecondsPath gave {timeout!r}")
        task_context = TaskContext(run.execution_name, name, attempt)
        resource = state["Resource"]
        payload = _json_copy(payload, "the task payload")
        self._emit(run, "TaskScheduled", name, {"resource": resource, "attempt": attempt})
        try:
            result = self._call_with_timeout(resource, payload, task_context, timeout)
        except Exception as exc:
            raise _error_from_exception(exc) from exc
        return _json_copy(result, f"the result of {resource}")

    def _call_with_timeout(
        self, resource: str, payload: Any, task_context: TaskContext, timeout: int | None
    ) -> Any:
        if timeout is None:
            return self._invoke(resource, payload, task_context)
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def call() -> None:
            try:
                outcome["result"] = self._invoke(resource, payload, task_context)
            except BaseException as exc:  # handed over to the waiting thread below
                outcome["error"] = exc
            finally:
                finished.set()

        # A daemon thread: a task that overruns is abandoned, as Step Functions abandons it.
        threading.Thread(target=call, name=f"task-{task_context.state_name}", daemon=True).start()
        if not finished.wait(timeout):
            raise StatesError(
                TIMEOUT, f"Task {task_context.state_name} timed out after {timeout} s"
            )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def _run_map(
        self,
        name: str,
        state: dict[str, Any],
        effective: Any,
        run: _Run,
        scope: _Scope,
        context: dict[str, Any],
    ) -> list[Any]:
        items = read_path(state.get("ItemsPath", "$"), effective, context)
        if not isinstance(items, list):
            raise StatesError(RUNTIME, f"Map {name}: ItemsPath must select an array")
        concurrency = state.get("MaxConcurrency", 0)
        if "MaxConcurrencyPath" in state:
            concurrency = read_path(state["MaxConcurrencyPath"], effective, context)
            if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
                raise StatesError(RUNTIME, f"Map {name}: MaxConcurrencyPath gave {concurrency!r}")
        bound = min(concurrency or MAX_INLINE_MAP_CONCURRENCY, MAX_INLINE_MAP_CONCURRENCY)
        processor = state.get("ItemProcessor") or state["Iterator"]
        selector = state.get("ItemSelector", state.get("Parameters"))

        def iteration(index: int, item: Any, iteration_scope: _Scope) -> Any:
            self._emit(run, "MapIterationStarted", name, {"index": index})
            iteration_input = item
            if selector is not None:
                item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
                iteration_input = evaluate_template(selector, effective, item_context, self._random)
            try:
                output = self._run_graph(processor, iteration_input, run, iteration_scope)
            except StatesError as failure:
                detail = {"index": index, "error": failure.error, "cause": failure.cause}
                self._emit(run, "MapIterationFailed", name, detail)
                raise
            self._emit(run, "MapIterationSucceeded", name, {"index": index})
            return output

        jobs = [_bind_iteration(iteration, index, item) for index, item in enumerate(items)]
        return self._run_all(jobs, bound, scope)

    @staticmethod
    def _run_all(jobs: list[Callable[[_Scope], Any]], workers: int, scope: _Scope) -> list[Any]:
        """Run ``jobs`` on at most ``workers`` threads; results in job order.

        The first job to fail stops the others (as a failing branch or iteration stops its
        Parallel or inline Map state in AWS) and its error is raised.
        """
        if not jobs:
            return []
        child = _Scope(parent=scope)
        first_failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            futures = [pool.submit(job, child) for job in jobs]
            try:
                for future in as_completed(futures):
                    if future.cancelled() or first_failure is not None:
                        continue
                    if (failure := future.exception()) is not None:
                        first_failure = failure
                        _cancel(child, futures)
            except BaseException:
                # Ctrl-C while waiting: the pool's exit would run every queued job first (a
                # Map of 100 sets collected them all before the run stopped).
                _cancel(child, futures)
                raise
        if first_failure is not None:
            raise first_failure
        return [future.result() for future in futures]


def _cancel(scope: _Scope, futures: list[Future[Any]]) -> None:
    """Stop the jobs of `scope`: the running ones at their next state, the queued ones now."""
    scope.cancelled.set()
    for pending in futures:
        pending.cancel()


def _bind_graph(
    run_graph: Callable[[dict[str, Any], Any, _Run, _Scope], Any],
    graph: dict[str, Any],
    data: Any,
    run: _Run,
) -> Callable[[_Scope], Any]:
    return lambda scope: run_graph(graph, data, run, scope)


def _bind_iteration(
    iteration: Callable[[int, Any, _Scope], Any], index: int, item: Any
) -> Callable[[_Scope], Any]:
    return lambda scope: iteration(index, item, scope)
