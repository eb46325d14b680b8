"""Faults end to end through `pokewatch pipeline run`: the real definition file, the real
handlers and model, a local store in which a sample-market run already put a model in service.

Every fault must leave the model in service and its serving file byte for byte as they were
(unless a new model passed the gate), leave every raw partition collected before the run
untouched, end the execution with an error that names the cause, and publish a notification
(kept under `notifications/` by the local SNS stand-in) whose message carries that cause.

The `pokemontcg` source is exercised against a fake pokemontcg.io v2 (`responses`) that answers
`/cards` in its documented shape, priced by the sample market on the run's day, with faults
scripted per set; its key comes from SSM Parameter Store (moto). Its raw history is seeded
with 200 days of the same market, as a backfill would have left it (pokemontcg.io itself has
no history), so that a run can train on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
import responses
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from pokewatch import keys, registry
from pokewatch.history import to_parquet_bytes
from pokewatch.sources.sample import SampleMarket
from pokewatch.sources.variants import TCGPLAYER_PRICE_KEYS, variant_name
from pokewatch.store import LocalStore
from pokewatch_local.asl import ExecutionResult
from pokewatch_local.cli import main
from pokewatch_local.runner import run_pipeline
from pokewatch_local.template import SamTemplate

AS_OF = dt.date(2026, 11, 27)
NEXT_DAY = AS_OF + dt.timedelta(days=1)
CARDS = 40
HISTORY_DAYS = 200
SETS = ("bp", "g1")  # the sets of the 40-card sample market
#: A short backtest keeps each training run to seconds, and a tolerant gate keeps these tests
#: about faults, not about how good the model (tuned elsewhere) is on a 40-card market.
SETTINGS_ENV = {
    "POKEWATCH_BACKTEST_DAYS": "28",
    "POKEWATCH_NAIVE_TOLERANCE": "1.0",
    "POKEWATCH_CHAMPION_TOLERANCE": "1.0",
    "POKEWATCH_INTERVAL_COVERAGE_TOLERANCE": "1.0",
}
API = "https://api.pokemontcg.io/v2"
KEY = "ptcg-fault-key-0c9d8e"
KEY_PARAMETER = "/pokewatch/test/pokemontcg-api-key"
#: Two HTTP attempts per Lambda attempt, no sleeping in the client: the state machine's Retry
#: is what these tests watch.
POKEMONTCG_ENV = {
    **SETTINGS_ENV,
    "POKEWATCH_SETS": ",".join(SETS),
    "POKEWATCH_POKEMONTCG_API_KEY_PARAMETER": KEY_PARAMETER,
    "POKEWATCH_HTTP_MAX_ATTEMPTS": "2",
    "POKEWATCH_HTTP_BACKOFF_SECONDS": "0",
}

Answer = tuple[int, dict[str, str], str]
#: `tcgplayer.prices` key of each variant name (`reverse_holofoil` → `reverseHolofoil`).
VARIANT_KEYS = {variant_name(k): k for k in TCGPLAYER_PRICE_KEYS}
HTTP_429: Answer = (429, {"Retry-After": "0"}, '{"error": {"code": 429}}')
HTTP_500: Answer = (500, {}, '{"error": {"message": "Internal Server Error", "code": 500}}')
MALFORMED: Answer = (200, {"Content-Type": "application/json"}, '{"data": [{"id": "bp-1", "na')


def timeouts() -> Iterator[Exception]:
    """A read timeout on every call, as requests raises it."""
    while True:
        yield requests.exceptions.ReadTimeout("Read timed out. (read timeout=10.0)")


# --- the fake pokemontcg.io ----------------------------------------------------------------


class FakePokemonTcg:
    """`GET /cards?q=set.id:<set>` of pokemontcg.io v2, priced by the sample market on `day`.

    `script[set_id]` yields the answers (or exceptions, raised as the transport would) of the
    set's first calls; once it is exhausted the set answers normally."""

    def __init__(self, market: SampleMarket, day: dt.date) -> None:
        self.market = market
        self.day = day
        self.script: dict[str, Iterator[Answer | Exception]] = {}
        self.calls: Counter[str] = Counter()

    def __call__(self, request: requests.PreparedRequest) -> Answer:
        query = parse_qs(urlparse(request.url).query)
        set_id = query["q"][0].removeprefix("set.id:")
        self.calls[set_id] += 1
        if request.headers.get("X-Api-Key") != KEY:
            return 401, {}, '{"error": {"message": "Unauthorized", "code": 401}}'
        answer = next(self.script.get(set_id, iter(())), None)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        cards = self.cards(set_id)
        page = {"data": cards, "page": 1, "pageSize": 250, "count": len(cards)}
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(page | {"totalCount": len(cards)}),
        )

    def cards(self, set_id: str) -> list[dict[str, Any]]:
        """The set's cards in the API's shape: one card, its variants under tcgplayer.prices."""
        rows = self.market.collect(set_id, self.day, self.day)
        slash = self.day.strftime("%Y/%m/%d")
        cards: dict[str, dict[str, Any]] = {}
        for row in rows.itertuples():
            card_id = row.card_id.removesuffix(f"_{row.variant}")
            card = cards.setdefault(
                card_id,
                {
                    "id": card_id,
                    "name": row.name,
                    "number": card_id.split("-", 1)[1],
                    "rarity": row.rarity,
                    "set": {
                        "id": set_id,
                        "name": row.set_name,
                        "series": row.series,
                        "releaseDate": row.release_date.strftime("%Y/%m/%d"),
                    },
                    "tcgplayer": {"url": f"https://prices.pokemontcg.io/tcgplayer/{card_id}"}
                    | {"updatedAt": slash, "prices": {}},
                },
            )
            card["tcgplayer"]["prices"][VARIANT_KEYS[row.variant]] = {
                "low": row.low_price,
                "mid": row.market_price,
                "high": row.high_price,
                "market": row.market_price,
                "directLow": None,
            }
        return list(cards.values())


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(repo: Path) -> SamTemplate:
    """The project's template: the real definition file and handlers."""
    return SamTemplate(repo / "template.yaml")


@pytest.fixture(scope="module")
def promoted(template: SamTemplate, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store in which a sample-market run on AS_OF put a model in service."""
    root = tmp_path_factory.mktemp("faults") / "store"
    request = {
        "source": "sample",
        "as_of": AS_OF.isoformat(),
        "cards": CARDS,
        "history_days": HISTORY_DAYS,
    }
    result = run(template, LocalStore(root), request, SETTINGS_ENV)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return root


@pytest.fixture
def store(promoted: Path, tmp_path: Path) -> LocalStore:
    """This test's own copy of the promoted store."""
    return LocalStore(shutil.copytree(promoted, tmp_path / "store"))


@pytest.fixture
def api_key() -> Iterator[None]:
    """The pokemontcg.io key in a mocked SSM Parameter Store, Powertools' caches forgotten."""
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=KEY_PARAMETER, Value=KEY, Type="SecureString")
        yield
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()


@pytest.fixture
def fake_api(api_key: None) -> Iterator[FakePokemonTcg]:
    """pokemontcg.io faked for NEXT_DAY; every other URL is refused."""
    fake = FakePokemonTcg(SampleMarket(n_cards=CARDS), NEXT_DAY)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, f"{API}/cards", callback=fake)
        yield fake


@pytest.fixture
def seeded(store: LocalStore) -> LocalStore:
    """The promoted store with a pokemontcg raw history up to AS_OF (see the module doc)."""
    market = SampleMarket(n_cards=CARDS)
    first = AS_OF - dt.timedelta(days=HISTORY_DAYS - 1)
    for set_id in SETS:
        frame = market.collect(set_id, first, AS_OF)
        store.put_bytes(keys.raw_partition("pokemontcg", AS_OF, set_id), to_parquet_bytes(frame))
    return store


# --- helpers --------------------------------------------------------------------------------


def run(
    template: SamTemplate, store: LocalStore, request: dict[str, Any], environment: dict[str, str]
) -> ExecutionResult:
    """One execution of the pipeline, Retry waits recorded instead of slept."""
    return run_pipeline(template, store, request, environment=environment, sleep=lambda _: None)


def pokemontcg_run(template: SamTemplate, store: LocalStore) -> ExecutionResult:
    """The daily pokemontcg run of NEXT_DAY."""
    request = {"source": "pokemontcg", "as_of": NEXT_DAY.isoformat()}
    return run(template, store, request, POKEMONTCG_ENV)


class Snapshot:
    """What a run must not change: the raw partitions and the model in service, as bytes."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.raw = {k: store.get_bytes(k) for k in store.list_keys("raw/")}
        self.current = store.get_bytes(keys.CURRENT_MODEL)
        self.version = registry.current(store).version
        self.serving = store.get_bytes(keys.model_artifact(self.version, keys.SERVING_FILE))
        self.notifications = set(store.list_keys("notifications/"))

    def assert_raw_intact(self) -> None:
        """Every partition collected before the run is still there with the same bytes."""
        for key, data in self.raw.items():
            assert self.store.get_bytes(key) == data, key

    def new_raw_keys(self) -> list[str]:
        return sorted(set(self.store.list_keys("raw/")) - set(self.raw))

    def assert_model_unchanged(self) -> None:
        assert self.store.get_bytes(keys.CURRENT_MODEL) == self.current
        serving = self.store.get_bytes(keys.model_artifact(self.version, keys.SERVING_FILE))
        assert serving == self.serving

    def assert_new_model_passed(self) -> str:
        """A new model is in service, it passed the gate, and the old one's files are intact."""
        current = registry.current(self.store)
        assert current is not None and current.version != self.version
        metrics = json.loads(
            self.store.get_bytes(keys.model_artifact(current.version, "metrics.json"))
        )
        assert metrics["gate"]["passed"] is True
        old_serving = self.store.get_bytes(keys.model_artifact(self.version, keys.SERVING_FILE))
        assert old_serving == self.serving
        return current.version

    def new_notifications(self) -> list[dict[str, Any]]:
        added = sorted(set(self.store.list_keys("notifications/")) - self.notifications)
        return [json.loads(self.store.get_bytes(k)) for k in added]

    def notification(self, subject: str, *causes: str) -> dict[str, Any]:
        """The one notification of the run: its subject, and every cause in its message."""
        (record,) = self.new_notifications()
        assert subject in record["Subject"]
        for cause in causes:
            assert cause in record["Message"], (cause, record["Message"])
        return record


def retries(result: ExecutionResult, state: str) -> list[dict[str, Any]]:
    return [e.detail for e in result.events if e.kind == "TaskRetry" and e.state == state]


# --- the pokemontcg source's faults ----------------------------------------------------------


def test_timeouts_on_every_set_are_retried_then_fail_the_run(
    template: SamTemplate, seeded: LocalStore, fake_api: FakePokemonTcg
) -> None:
    for set_id in SETS:
        fake_api.script[set_id] = timeouts()
    before = Snapshot(seeded)

    result = pokemontcg_run(template, seeded)

    assert result.status == "FAILED" and result.error == "NoDataCollected"
    for set_id in SETS:
        assert f"{set_id} (TransientSourceError: " in result.cause
        # 1 + 3 Lambda attempts (the definition's Retry), 2 HTTP attempts each.
        assert fake_api.calls[set_id] == 4 * 2
    assert len(retries(result, "Collect")) == 3 * len(SETS)
    before.notification("pipeline failed", "NoDataCollected", "TransientSourceError")
    before.assert_model_unchanged()
    before.assert_raw_intact()
    assert before.new_raw_keys() == []


def test_429_then_success_collects_every_set_and_promotes(
    template: SamTemplate, seeded: LocalStore, fake_api: FakePokemonTcg
) -> None:
    for set_id in SETS:
        # Both HTTP attempts of the first Lambda attempt are refused; the Retry cures it.
        fake_api.script[set_id] = iter([HTTP_429, HTTP_429])
    before = Snapshot(seeded)

    result = pokemontcg_run(template, seeded)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert [r["error"] for r in retries(result, "Collect")] == ["TransientSourceError"] * 2
    assert fake_api.calls == Counter({s: 3 for s in SETS})
    version = before.assert_new_model_passed()
    assert result.output["version"] == version
    assert before.new_raw_keys() == [
        keys.raw_partition("pokemontcg", NEXT_DAY, s) for s in sorted(SETS)
    ]
    before.assert_raw_intact()
    assert before.new_notifications() == []  # nothing failed: nothing to tell


def test_500_for_one_set_collects_the_others_and_names_it(
    template: SamTemplate, seeded: LocalStore, fake_api: FakePokemonTcg
) -> None:
    fake_api.script["g1"] = repeat(HTTP_500)
    before = Snapshot(seeded)

    result = pokemontcg_run(template, seeded)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert fake_api.calls["bp"] == 1 and fake_api.calls["g1"] == 4 * 2
    version = before.assert_new_model_passed()
    assert before.new_raw_keys() == [keys.raw_partition("pokemontcg", NEXT_DAY, "bp")]
    before.assert_raw_intact()
    metrics = json.loads(seeded.get_bytes(keys.model_artifact(version, "metrics.json")))
    (failed,) = metrics["data"]["failed_sets"]
    assert failed["set_id"] == "g1" and failed["error"] == "TransientSourceError"
    record = before.notification("some sets failed", version, '"set_id":"g1"', "HTTP 500")
    assert record["state"] == "NotifyPartialCollection"


def test_malformed_json_is_not_retried_and_fails_the_run(
    template: SamTemplate, seeded: LocalStore, fake_api: FakePokemonTcg
) -> None:
    for set_id in SETS:
        fake_api.script[set_id] = repeat(MALFORMED)
    before = Snapshot(seeded)

    result = pokemontcg_run(template, seeded)

    assert result.status == "FAILED" and result.error == "NoDataCollected"
    assert "bp (SourceError: " in result.cause and "g1 (SourceError: " in result.cause
    # A body that is not JSON cannot be cured by asking again: one call per set.
    assert fake_api.calls == Counter({s: 1 for s in SETS})
    assert retries(result, "Collect") == []
    before.notification("pipeline failed", "NoDataCollected", "SourceError")
    before.assert_model_unchanged()
    before.assert_raw_intact()


def test_empty_sets_fail_the_run_instead_of_retraining_on_old_data(
    template: SamTemplate, seeded: LocalStore, fake_api: FakePokemonTcg
) -> None:
    empty: Answer = (200, {}, json.dumps({"data": [], "page": 1, "pageSize": 250, "count": 0}))
    for set_id in SETS:
        fake_api.script[set_id] = iter([empty])
    before = Snapshot(seeded)

    result = pokemontcg_run(template, seeded)

    assert result.status == "FAILED" and result.error == "NoDataCollected"
    # With the days asked for: they say why a window missed the data.
    empty = f"empty sets: bp, g1 (no price dated {NEXT_DAY}..{NEXT_DAY})"
    assert empty in result.cause
    before.notification("pipeline failed", "NoDataCollected", empty)
    before.assert_model_unchanged()
    before.assert_raw_intact()


def test_a_crash_inside_train_is_notified(
    template: SamTemplate, store: LocalStore, fake_api: FakePokemonTcg
) -> None:
    # The first pokemontcg run of a store: one day of prices, nothing a backtest can use.
    before = Snapshot(store)

    result = pokemontcg_run(template, store)

    assert result.status == "FAILED" and result.error == "NotEnoughHistory"
    assert "too short" in result.cause
    caught = [e for e in result.events if e.kind == "ErrorCaught"]
    assert [(e.state, e.detail["next"]) for e in caught] == [("Train", "NotifyFailure")]
    before.notification("pipeline failed", "NotEnoughHistory", "too short")
    before.assert_model_unchanged()
    before.assert_raw_intact()


# --- the sample source's faults, through the command line ------------------------------------


def cli_run(store: LocalStore, monkeypatch: pytest.MonkeyPatch, **settings: str) -> int:
    """`pokewatch pipeline run` of the sample market on NEXT_DAY with `settings` set."""
    for name, value in {**SETTINGS_ENV, **settings}.items():
        monkeypatch.setenv(name, value)
    argv = ["pipeline", "run", "--store", store.uri, "--no-wait", "--source", "sample"]
    return main([*argv, "--as-of", NEXT_DAY.isoformat(), "--cards", str(CARDS)])


def test_a_corrupt_raw_partition_stops_the_run_naming_it(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = keys.raw_partition("sample", AS_OF, "bp")
    store.put_bytes(corrupt, b"PAR1 this is not a parquet file")
    before = Snapshot(store)

    assert cli_run(store, monkeypatch) == 1

    error = capsys.readouterr().err
    assert re.search(rf"pipeline failed: CorruptPartition: .*{re.escape(corrupt)}", error)
    before.notification("pipeline failed", "CorruptPartition", corrupt)
    before.assert_model_unchanged()
    before.assert_raw_intact()
    assert before.new_raw_keys() == [keys.raw_partition("sample", NEXT_DAY, s) for s in SETS]


def test_a_model_that_fails_the_gate_is_not_promoted(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = Snapshot(store)

    assert cli_run(store, monkeypatch, POKEWATCH_MAX_MAPE="0.0001") == 1

    assert re.search(r"pipeline failed: QualityGateFailed: .*mape", capsys.readouterr().err)
    record = before.notification("rejected by the quality gate", "mape", "unchanged")
    assert record["state"] == "NotifyRejected"
    before.assert_model_unchanged()
    before.assert_raw_intact()
    (candidate,) = set(registry.versions(store)) - {before.version}
    metrics = json.loads(store.get_bytes(keys.model_artifact(candidate, "metrics.json")))
    assert metrics["gate"]["passed"] is False
    assert store.exists(keys.model_artifact(candidate, keys.SERVING_FILE))
