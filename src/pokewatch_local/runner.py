"""`pokewatch pipeline run`: the pipeline's state machine file executed locally, each Task
calling its function's handler in process, SNS notifications kept under `notifications/`."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pokewatch import keys, registry
from pokewatch.steps import RunConfig
from pokewatch.store import ArtifactStore, LocalStore
from pokewatch_local.asl import ExecutionEvent, ExecutionResult, StateMachine, TaskContext
from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.template import SamTemplate

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
#: The handlers' INFO logs are for CloudWatch; locally the progress lines say what happens.
QUIET_LOGS = {"POWERTOOLS_LOG_LEVEL": "WARNING"}


class UnsupportedResource(RuntimeError):
    """A Task resource the local runtime has no stand-in for."""

    error_name = "States.Runtime"


class LocalServices:
    """Carries out Task resources: Lambda functions in process, SNS publish into the store."""

    def __init__(
        self,
        template: SamTemplate,
        lambdas: LocalLambda,
        store: ArtifactStore,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.template = template
        self.lambdas = lambdas
        self.store = store
        self.echo = echo

    def __call__(self, resource: str, payload: Any, context: TaskContext) -> Any:
        """The TaskInvoker of the state machine."""
        if resource == LAMBDA_INVOKE:
            spec = self.template.function_by_arn(payload["FunctionName"])
            result = self._invoke(spec.logical_id, payload.get("Payload"))
            return {"Payload": result, "StatusCode": 200, "ExecutedVersion": "$LATEST"}
        if resource.startswith("arn:aws:lambda:"):
            return self._invoke(self.template.function_by_arn(resource).logical_id, payload)
        if resource == SNS_PUBLISH:
            return self._publish(payload, context)
        raise UnsupportedResource(f"the local runtime cannot carry out Task resource {resource}")

    def _invoke(self, function: str, event: Any) -> Any:
        # Through JSON both ways, as Lambda does: what cannot cross the wire fails here too.
        result = self.lambdas.invoke(function, json.loads(json.dumps(event)))
        return json.loads(json.dumps(result))

    def _publish(self, payload: dict[str, Any], context: TaskContext) -> dict[str, str]:
        message_id = str(uuid.uuid4())
        record = {
            "MessageId": message_id,
            "TopicArn": payload.get("TopicArn"),
            "Subject": payload.get("Subject"),
            "Message": payload.get("Message"),
            "execution": context.execution_name,
            "state": context.state_name,
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        key = keys.notification(context.execution_name, dt.datetime.now(dt.UTC))
        self.store.put_bytes(key, json.dumps(record, indent=1).encode(), "application/json")
        self.echo(f"  ✉ notification: {payload.get('Subject')}\n    {payload.get('Message')}")
        return {"MessageId": message_id}


class PipelineInterrupted(KeyboardInterrupt):
    """Ctrl-C during a local run, after what it left behind was settled (`discard_run`)."""

    def __init__(
        self,
        state: str | None,
        run: RunConfig | None,
        in_service: bool | None,
        removed: list[str],
    ) -> None:
        super().__init__(state)
        #: The top-level state the run was in.
        self.state = state
        #: The run the plan made (None: interrupted before it made one).
        self.run = run
        #: Whether the run's model was put in service before the interrupt (None: the store
        #: could not be read to tell).
        self.in_service = in_service
        #: The store folders of the run that were removed.
        self.removed = removed


class RunTracker:
    """Follows an execution: the top-level state it is in, and the run its plan made."""

    def __init__(self, top_level_states: set[str]) -> None:
        self._top = top_level_states
        self.state: str | None = None
        self.run: RunConfig | None = None

    def __call__(self, event: ExecutionEvent) -> None:
        """An `on_event` callback of the state machine."""
        if event.kind == "StateEntered" and event.state in self._top:
            self.state = event.state
        output = event.detail.get("output")
        # The plan's answer names the run (as every later step's does).
        if self.run is None and event.kind == "StateExited" and isinstance(output, dict):
            run = output.get("run")
            self.run = RunConfig.model_validate(run) if isinstance(run, dict) else None


def discard_run(store: ArtifactStore, run: RunConfig) -> tuple[bool | None, list[str]]:
    """After an interrupt: whether `run`'s model is in service (None: the store cannot be read
    to tell), and, when it is not and the store is local, the run's own folders removed (its
    history and feature tables, its model files: nothing reads them but the run itself, unless
    its promotion was logged before the interrupt). An S3 store's run tables expire by the
    bucket's lifecycle rule (template.yaml)."""
    try:
        try:
            promoted = registry.current(store)
        except registry.DamagedRecord:
            promoted = None  # the run's promote would have repaired it
        if promoted is not None and promoted.version == run.run_id:
            return True, []
        keep_model = registry.logged(store, run.run_id)
    except (BotoCoreError, ClientError, OSError):
        return None, []
    if not isinstance(store, LocalStore):
        return False, []
    folders = [keys.features(run.as_of, f"{run.run_id}/")]
    if not keep_model:
        folders.append(keys.model_artifact(run.run_id, ""))
    return False, [folder for folder in folders if store.delete_folder(folder)]


class ProgressPrinter:
    """Prints the execution state by state (Map iterations are summarised, not listed)."""

    def __init__(self, top_level_states: set[str], echo: Callable[[str], None] = print) -> None:
        self.echo = echo
        self._top = top_level_states
        self._entered: dict[str, float] = {}
        self._map_done: dict[str, int] = {}

    def __call__(self, event: ExecutionEvent) -> None:
        """The `on_event` callback of the state machine."""
        kind, state, detail = event.kind, event.state, event.detail
        if kind in ("StateEntered", "StateExited") and state not in self._top:
            return  # states inside a Map iteration: summarised below
        if kind == "MapIterationSucceeded" and state:
            done = self._map_done[state] = self._map_done.get(state, 0) + 1
            self.echo(f"  · {state}: {done} item(s) done")
        elif kind == "StateEntered" and state:
            self._entered[state] = event.at
            self.echo(f"▶ {state}")
        elif kind == "StateExited" and state:
            took = event.at - self._entered.get(state, event.at)
            self.echo(f"✔ {state} ({took:.1f}s)")
        elif kind == "TaskRetry":
            self.echo(
                f"  ↻ {state}: retry {detail.get('attempt')} after {detail.get('error')}"
                f" (waiting {detail.get('delay', 0):.1f}s)"
            )
        elif kind == "MapIterationFailed":
            self.echo(f"  ✘ {state} item {detail.get('index')}: {detail.get('error')}")
        elif kind == "ErrorCaught":
            self.echo(f"  ⚠ {state}: caught {detail.get('error')}")
        elif kind == "ExecutionFailed":
            self.echo(f"✘ execution failed: {detail.get('error')}: {detail.get('cause')}")
        elif kind == "ExecutionSucceeded":
            self.echo("✔ execution succeeded")


def run_pipeline(
    template: SamTemplate,
    store: ArtifactStore,
    execution_input: dict[str, Any],
    *,
    environment: dict[str, str] | None = None,
    echo: Callable[[str], None] = print,
    sleep: Callable[[float], None] | None = None,
) -> ExecutionResult:
    """Execute the template's state machine locally against `store`. Ctrl-C raises
    `PipelineInterrupted` once the run's own partial files are removed (`discard_run`).

    The functions' environment is set in this process while the execution runs and put back
    when it ends, so that one run's settings (sets, source options) never leak into the next
    run in the same process."""
    lambdas = LocalLambda(
        template, {**QUIET_LOGS, "POKEWATCH_STORE": store.uri, **(environment or {})}
    )
    services = LocalServices(template, lambdas, store, echo)
    definition = template.state_machine()
    printer = ProgressPrinter(set(definition["States"]), echo)
    tracker = RunTracker(set(definition["States"]))

    def on_event(event: ExecutionEvent) -> None:
        printer(event)
        tracker(event)

    options: dict[str, Any] = {"on_event": on_event}
    if sleep is not None:
        options["sleep"] = sleep
    machine = StateMachine(definition, services, **options)
    name = f"local-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    try:
        return machine.run(execution_input, execution_name=name)
    except KeyboardInterrupt:
        # Tasks run in this thread, and a Map waits for its running iterations: nothing writes.
        in_service, removed = (
            discard_run(store, tracker.run) if tracker.run is not None else (False, [])
        )
        raise PipelineInterrupted(tracker.state, tracker.run, in_service, removed) from None
    finally:
        lambdas.restore_environment()
