"""End to end through `pokewatch pipeline run`: the real definition file, the real handlers,
the real model, a local store."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pokewatch import keys, registry
from pokewatch.history import load_raw_history
from pokewatch.store import LocalStore
from pokewatch_local.cli import main

AS_OF = dt.date(2026, 11, 27)
SMALL_MARKET = ["--cards", "60", "--history-days", "300"]


@pytest.fixture(scope="module", autouse=True)
def _short_backtest() -> Iterator[None]:
    """A small market's history is short: backtest over its last 12 weeks, not 26."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POKEWATCH_BACKTEST_DAYS", "84")
        yield


def _pipeline(store: Path, *extra: str) -> int:
    return main(["pipeline", "run", "--store", str(store), "--no-wait", *extra])


@pytest.fixture(scope="module")
def promoted_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store where one sample-market run promoted a model."""
    store = tmp_path_factory.mktemp("pipeline") / "store"
    assert _pipeline(store, "--as-of", AS_OF.isoformat(), *SMALL_MARKET) == 0
    return store


def test_a_run_promotes_a_model_with_every_artifact(promoted_store: Path) -> None:
    store = LocalStore(promoted_store)
    current = registry.current(store)
    assert current is not None and current.data_as_of == AS_OF
    for name in ("model.skops", "metrics.json", keys.SERVING_FILE):
        assert store.exists(keys.model_artifact(current.version, name)), name
    metrics = json.loads(store.get_bytes(keys.model_artifact(current.version, "metrics.json")))
    assert metrics["gate"]["passed"] is True
    assert metrics["backtest"]["n_pairs"] > 0
    history = load_raw_history(store, "sample", AS_OF)
    assert history["card_id"].nunique() == 60
    assert history["date"].min().date() == AS_OF - dt.timedelta(days=299)


def test_progress_is_shown_state_by_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _pipeline(tmp_path / "s", "--as-of", AS_OF.isoformat(), *SMALL_MARKET) == 0
    out = capsys.readouterr().out
    for state in (
        "Plan",
        "CollectSets",
        "Preprocess",
        "Train",
        "Validate",
        "QualityGate",
        "Promote",
    ):
        assert f"▶ {state}" in out and f"✔ {state}" in out


def test_rerun_of_a_day_is_idempotent_and_the_next_day_extends_history(
    promoted_store: Path, tmp_path: Path
) -> None:
    store = LocalStore(promoted_store)
    before = load_raw_history(store, "sample", AS_OF)
    raw_keys = store.list_keys("raw/")
    assert _pipeline(promoted_store, "--as-of", AS_OF.isoformat(), *SMALL_MARKET) == 0
    assert store.list_keys("raw/") == raw_keys
    again = load_raw_history(store, "sample", AS_OF)
    assert again.equals(before)

    next_day = AS_OF + dt.timedelta(days=1)
    in_service = registry.current(store)
    # The gate may or may not promote the next day's model; either way collection must hold.
    promoted = _pipeline(promoted_store, "--as-of", next_day.isoformat(), *SMALL_MARKET) == 0
    new_keys = sorted(set(store.list_keys("raw/")) - set(raw_keys))
    assert new_keys and all(f"dt={next_day}" in k for k in new_keys)
    extended = load_raw_history(store, "sample", next_day)
    assert len(extended) == len(before) + 60
    # Collecting D then D+1 gives one coherent history: the overlap is unchanged.
    assert extended[extended["date"] <= str(AS_OF)].reset_index(drop=True).equals(before)
    if promoted:
        assert registry.current(store).data_as_of == next_day
    else:
        assert registry.current(store) == in_service


def test_models_cli_lists_promotes_and_rolls_back(
    promoted_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its own copy with a second version (a later run's model), whatever ran before it.
    root = tmp_path / "store"
    shutil.copytree(promoted_store, root)
    store = LocalStore(root)
    first = registry.current(store).version
    second = f"{first}-later"
    shutil.copytree(root / "models" / first, root / "models" / second)
    assert main(["models", "list", "--store", str(root)]) == 0
    listing = capsys.readouterr().out
    assert first in listing and second in listing
    assert main(["models", "promote", second, "--store", str(root)]) == 0
    assert registry.current(store).version == second
    assert main(["models", "rollback", "--store", str(root)]) == 0
    assert registry.current(store).version == first


@pytest.mark.slow
def test_csv_backfill_of_the_real_history_promotes_a_model(real_csv: Path, tmp_path: Path) -> None:
    store = tmp_path / "csv"
    assert _pipeline(store, "--source", "csv", "--input", str(real_csv)) == 0
    current = registry.current(LocalStore(store))
    assert current is not None and current.data_as_of.year == 2024
