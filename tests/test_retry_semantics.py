"""The Retry and Catch policies of the real definition, run by the local runtime with the real
handlers, against what the Step Functions documentation says they do:

- a retrier matches by error name (a Python Lambda's error name is its exception's class name);
  the first retrier whose ErrorEquals matches decides, and each retrier keeps its own count;
- MaxAttempts is the number of retries after the first attempt;
- the n-th retry of a retrier waits IntervalSeconds × BackoffRate^(n−1), capped at
  MaxDelaySeconds, and JitterStrategy FULL makes that a uniform draw in [0, that];
- an error no retrier matches (ValueError, NotEnoughHistory) is not retried, and Catch
  `States.ALL` takes it.

The waits are recorded with `sleep=`, and the interpreter's jitter draws come from the global
`random` generator, so seeding it lets the test replay the exact draws. Every number a test
expects is read from `statemachine/pipeline.asl.json` through the template.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

from pokewatch.sources.sample import SampleMarket
from pokewatch.store import LocalStore
from pokewatch_local.asl import ExecutionResult, StateMachine
from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.runner import QUIET_LOGS, LocalServices, run_pipeline
from pokewatch_local.template import SamTemplate

SEED = 20261127
FIXTURES = Path(__file__).parent / "fixtures" / "pokemontcg"
CARDS_URL = "https://api.pokemontcg.io/v2/cards"
#: The fixtures' snapshot day (tcgplayer.updatedAt) and set.
SNAPSHOT_DAY = dt.date(2024, 6, 1)
#: One HTTP attempt per Lambda attempt: every 5xx becomes a TransientSourceError at once.
POKEMONTCG_ENV = {
    "POKEWATCH_SETS": "sv1",
    "POKEWATCH_HTTP_MAX_ATTEMPTS": "1",
    "POKEWATCH_POKEMONTCG_API_KEY_PARAMETER": "",
}
POKEMONTCG_RUN = {"source": "pokemontcg", "as_of": SNAPSHOT_DAY.isoformat()}
LAMBDA_ERRORS = "Lambda.TooManyRequestsException"


class Throttled(Exception):
    """What the Lambda service raises when it throttles an invocation (the local runtime has no
    throttling of its own, so the tests raise it in front of the real handler)."""

    error_name = LAMBDA_ERRORS


@pytest.fixture(scope="module")
def template(repo: Path) -> SamTemplate:
    return SamTemplate(repo / "template.yaml")


@pytest.fixture(scope="module")
def definition(template: SamTemplate) -> dict[str, Any]:
    return template.state_machine()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def throttle(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """`throttle[function] = n`: the Lambda service throttles the function's next n invocations
    before they reach its handler."""
    pending: Counter[str] = Counter()
    invoke = LocalLambda.invoke

    def throttled(self: LocalLambda, function: Any, event: Any) -> Any:
        name = function if isinstance(function, str) else function.logical_id
        if pending[name] > 0:
            pending[name] -= 1
            raise Throttled(f"Rate Exceeded. (invoking {name})")
        return invoke(self, function, event)

    monkeypatch.setattr(LocalLambda, "invoke", throttled)
    return pending


def state(definition: dict[str, Any], name: str) -> dict[str, Any]:
    """A state of the definition, at the top level or inside the Map's processor."""
    if name in definition["States"]:
        return definition["States"][name]
    return definition["States"]["CollectSets"]["ItemProcessor"]["States"][name]


def retrier(definition: dict[str, Any], name: str, error: str) -> dict[str, Any]:
    """The retrier of state `name` that handles `error` (the first that matches)."""
    return next(r for r in state(definition, name)["Retry"] if error in r["ErrorEquals"])


def ceilings(rule: dict[str, Any], retries: int) -> list[float]:
    """The waits of the first `retries` retries of a retrier before jitter (ASL's defaults)."""
    interval, rate = rule.get("IntervalSeconds", 1), rule.get("BackoffRate", 2.0)
    waits = [interval * rate**n for n in range(retries)]
    return [min(w, rule.get("MaxDelaySeconds", w)) for w in waits]


def jittered(waits: list[float]) -> list[float]:
    """`waits` under FULL jitter, with the draws the seeded global generator will make."""
    draws = random.Random(SEED)
    return [w * draws.random() for w in waits]


def run(
    template: SamTemplate, store: LocalStore, request: dict[str, Any], env: dict[str, str]
) -> tuple[ExecutionResult, list[float]]:
    """One execution with the global generator seeded; the result and every Retry wait."""
    sleeps: list[float] = []
    random.seed(SEED)
    result = run_pipeline(template, store, request, environment=env, sleep=sleeps.append)
    return result, sleeps


def task_attempts(result: ExecutionResult, name: str) -> int:
    return sum(1 for e in result.events if e.kind == "TaskScheduled" and e.state == name)


def retried_errors(result: ExecutionResult, name: str) -> list[str]:
    return [e.detail["error"] for e in result.events if e.kind == "TaskRetry" and e.state == name]


def notification(store: LocalStore) -> dict[str, Any]:
    (key,) = store.list_keys("notifications/")
    return json.loads(store.get_bytes(key))


def page(number: int) -> matchers.query_param_matcher:
    return matchers.query_param_matcher({"page": str(number)}, strict_match=False)


@responses.activate
def test_a_transient_source_error_is_retried_with_backoff_and_full_jitter(
    template: SamTemplate, definition: dict[str, Any], store: LocalStore
) -> None:
    responses.get(CARDS_URL, status=503, json={"error": {"code": 503}})
    rule = retrier(definition, "Collect", "TransientSourceError")
    expected = ceilings(rule, rule["MaxAttempts"])
    # The documented numbers of issue 7: 5, 10 and 20 s, under the 60 s cap, FULL jitter.
    assert (expected, rule["MaxDelaySeconds"], rule["JitterStrategy"]) == ([5, 10, 20], 60, "FULL")

    result, sleeps = run(template, store, POKEMONTCG_RUN, POKEMONTCG_ENV)

    assert sleeps == pytest.approx(jittered(expected))
    assert all(0 <= s <= c for s, c in zip(sleeps, expected, strict=True))
    assert task_attempts(result, "Collect") == 1 + rule["MaxAttempts"] == len(responses.calls)
    assert retried_errors(result, "Collect") == ["TransientSourceError"] * rule["MaxAttempts"]
    # Out of retries, the Map iteration's Catch (States.ALL) records the set as failed.
    caught = [e.detail for e in result.events if e.kind == "ErrorCaught"]
    assert caught[0]["error"] == "TransientSourceError" and caught[0]["next"] == "CollectFailed"
    assert result.error == "NoDataCollected" and "sv1 (TransientSourceError: " in result.cause


@responses.activate
def test_plan_retries_a_transient_source_error_as_collect_does(
    template: SamTemplate, definition: dict[str, Any], store: LocalStore
) -> None:
    # With no sets configured, Plan asks the source for its sets over HTTP: the same transient
    # failures as Collect's, so the same retrier (a 503 there must not fail the whole run).
    rule = retrier(definition, "Plan", "TransientSourceError")
    assert rule == retrier(definition, "Collect", "TransientSourceError")
    sets = json.loads((FIXTURES / "sets.json").read_text())
    sv1 = [s for s in sets["data"] if s["id"] == "sv1"]
    sets_url = CARDS_URL.removesuffix("cards") + "sets"
    responses.get(sets_url, status=503, json={"error": {"code": 503}})
    responses.get(sets_url, json=sets | {"data": sv1, "count": 1, "totalCount": 1})
    for number in (1, 2):
        body = json.loads((FIXTURES / f"cards_sv1_page{number}.json").read_text())
        responses.get(CARDS_URL, json=body, match=[page(number)])
    env = {k: v for k, v in POKEMONTCG_ENV.items() if k != "POKEWATCH_SETS"}

    result, sleeps = run(template, store, POKEMONTCG_RUN, env)

    assert retried_errors(result, "Plan") == ["TransientSourceError"]
    assert task_attempts(result, "Plan") == 2
    assert sleeps == pytest.approx(jittered(ceilings(rule, 1)))
    assert store.list_keys("raw/") == ["raw/source=pokemontcg/dt=2024-06-01/set=sv1.parquet"]
    # One snapshot is no history to backtest: the run stops at Train, not at Plan.
    assert result.error == "NotEnoughHistory"


@responses.activate
def test_plan_out_of_retries_fails_the_run_with_the_source_error(
    template: SamTemplate, definition: dict[str, Any], store: LocalStore
) -> None:
    rule = retrier(definition, "Plan", "TransientSourceError")
    responses.get(CARDS_URL.removesuffix("cards") + "sets", status=502)
    env = {k: v for k, v in POKEMONTCG_ENV.items() if k != "POKEWATCH_SETS"}

    result, sleeps = run(template, store, POKEMONTCG_RUN, env)

    assert sleeps == pytest.approx(jittered(ceilings(rule, rule["MaxAttempts"])))
    assert task_attempts(result, "Plan") == 1 + rule["MaxAttempts"] == len(responses.calls)
    assert (result.status, result.error) == ("FAILED", "TransientSourceError")
    assert "TransientSourceError" in notification(store)["Message"]
    assert store.list_keys("raw/") == []


def test_max_delay_caps_the_backoff(
    template: SamTemplate, definition: dict[str, Any], store: LocalStore
) -> None:
    # The real definition with more attempts, so that the backoff reaches MaxDelaySeconds.
    longer = copy.deepcopy(definition)
    rule = retrier(longer, "Collect", "TransientSourceError")
    rule["MaxAttempts"] = 6
    expected = ceilings(rule, 6)
    assert expected[-2:] == [rule["MaxDelaySeconds"]] * 2  # 80 and 160 s capped at 60 s
    lambdas = LocalLambda(template, {**QUIET_LOGS, "POKEWATCH_STORE": store.uri, **POKEMONTCG_ENV})
    sleeps: list[float] = []
    machine = StateMachine(
        longer, LocalServices(template, lambdas, store, echo=lambda _: None), sleep=sleeps.append
    )

    with responses.RequestsMock() as api:
        api.get(CARDS_URL, status=502)
        random.seed(SEED)
        try:
            result = machine.run(POKEMONTCG_RUN, execution_name="capped")
        finally:
            lambdas.restore_environment()

    assert sleeps == pytest.approx(jittered(expected))
    assert task_attempts(result, "Collect") == 7


def test_lambda_service_errors_are_retried_then_caught(
    template: SamTemplate, definition: dict[str, Any], store: LocalStore, throttle: Counter[str]
) -> None:
    rule = retrier(definition, "Plan", LAMBDA_ERRORS)
    throttle["PlanFunction"] = 1 + rule["MaxAttempts"]  # throttled on every attempt

    result, sleeps = run(template, store, {"source": "sample", "cards": 20}, {})

    assert sleeps == pytest.approx(jittered(ceilings(rule, rule["MaxAttempts"])))
    assert retried_errors(result, "Plan") == [LAMBDA_ERRORS] * rule["MaxAttempts"]
    assert (result.status, result.error) == ("FAILED", LAMBDA_ERRORS)
    assert "Rate Exceeded" in result.cause
    assert LAMBDA_ERRORS in notification(store)["Message"]


@responses.activate
def test_each_retrier_keeps_its_own_count(
    template: SamTemplate, definition: dict[str, Any], store: LocalStore, throttle: Counter[str]
) -> None:
    transient = retrier(definition, "Collect", "TransientSourceError")
    service = retrier(definition, "Collect", LAMBDA_ERRORS)
    throttle["CollectFunction"] = 1
    for _ in range(transient["MaxAttempts"]):
        responses.get(CARDS_URL, status=500, match=[page(1)])
    for number in (1, 2):
        body = json.loads((FIXTURES / f"cards_sv1_page{number}.json").read_text())
        responses.get(CARDS_URL, json=body, match=[page(number)])

    result, sleeps = run(template, store, POKEMONTCG_RUN, POKEMONTCG_ENV)

    # One throttle, then every retry TransientSourceError allows: five attempts in all, more than
    # either retrier's MaxAttempts, and each retrier's backoff starts from its own interval.
    expected = ceilings(service, 1) + ceilings(transient, transient["MaxAttempts"])
    assert sleeps == pytest.approx(jittered(expected))
    assert retried_errors(result, "Collect") == [LAMBDA_ERRORS] + ["TransientSourceError"] * 3
    assert task_attempts(result, "Collect") == 5
    assert store.list_keys("raw/") == ["raw/source=pokemontcg/dt=2024-06-01/set=sv1.parquet"]
    # One snapshot is no history to backtest: Train's NotEnoughHistory is not retried, but caught.
    assert task_attempts(result, "Train") == 1 and retried_errors(result, "Train") == []
    assert result.error == "NotEnoughHistory"
    assert notification(store)["state"] == "NotifyFailure"


def test_a_value_error_is_not_retried_but_caught(
    template: SamTemplate,
    definition: dict[str, Any],
    store: LocalStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bug of the source, not a transient fault: a ValueError in every Collect.
    def broken(*_: object) -> None:
        raise ValueError("a bug in the source")

    monkeypatch.setattr(SampleMarket, "collect", broken)
    request = {"source": "sample", "cards": 40, "history_days": 30, "as_of": "2026-11-27"}

    result, sleeps = run(template, store, request, {})

    assert sleeps == []
    assert task_attempts(result, "Collect") == 2 and retried_errors(result, "Collect") == []
    caught = [(e.state, e.detail["error"]) for e in result.events if e.kind == "ErrorCaught"]
    assert caught == [("Collect", "ValueError")] * 2 + [("Preprocess", "NoDataCollected")]
    assert "bp (ValueError: " in result.cause and "g1 (ValueError: " in result.cause
    assert store.list_keys("raw/") == []
