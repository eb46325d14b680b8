"""Preprocess's refusal of a run that collected nothing, and what it says; the price spikes it
names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pokewatch import keys
from pokewatch.history import from_parquet_bytes, to_parquet_bytes
from pokewatch.pipeline import preprocess
from pokewatch.pipeline.preprocess import NoDataCollected, build_dataset
from pokewatch.settings import Settings
from pokewatch.sources.base import normalise_history
from pokewatch.steps import PreprocessInput, RunConfig
from pokewatch.store import LocalStore

AS_OF = dt.date(2026, 11, 27)


def _empty(set_id: str, start: dt.date | None) -> dict:
    """A Map result of a set that returned no price for `start..AS_OF` (None: no days)."""
    days = {"start": start.isoformat(), "end": AS_OF.isoformat()} if start else {}
    return {"set_id": set_id, "key": f"raw/{set_id}.parquet", "rows": 0, "cards": 0, **days}


def test_empty_sets_are_named_by_the_days_they_asked_for(tmp_path: Path) -> None:
    # Sets resumed after their last collection ask for other days than a backfilled one; a
    # result from before the days were recorded is named without them.
    backfill, resumed = dt.date(2025, 10, 24), AS_OF
    run = RunConfig(run_id="r1", source="csv", as_of=AS_OF)
    collected = [
        _empty("g1", resumed),
        _empty("sv1", backfill),
        _empty("bp", resumed),
        _empty("old", None),
    ]
    with pytest.raises(NoDataCollected) as raised:
        build_dataset(
            PreprocessInput(run=run, collected=collected), Settings(), LocalStore(tmp_path)
        )
    assert str(raised.value).endswith(
        f"empty sets: bp, g1 (no price dated {resumed}..{AS_OF}); old; "
        f"sv1 (no price dated {backfill}..{AS_OF})"
    )


def test_partitions_the_run_collected_that_the_store_lacks_are_named(tmp_path: Path) -> None:
    # `pokewatch invoke preprocess` with the sample event on a store of its own: the run had
    # collected 6,400 rows, and the error said "failed sets: none; empty sets: none".
    run = RunConfig(run_id="r1", source="sample", as_of=AS_OF)
    key = keys.raw_partition("sample", AS_OF, "bp")
    collected = [{"set_id": "bp", "key": key, "rows": 6400, "cards": 16}, _empty("g1", AS_OF)]
    store = LocalStore(tmp_path)
    with pytest.raises(NoDataCollected) as raised:
        build_dataset(PreprocessInput(run=run, collected=collected), Settings(), store)
    assert str(raised.value) == (
        f"run r1 collected prices that are not in {store.uri}: {key} (collected into another "
        "store, or removed since)"
    )


def test_a_typo_price_stays_in_the_history_and_is_named_and_left_out_of_the_features(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Collected by different runs, the typo and its neighbours are only seen together here.
    prices = [5.1, 5.0, 99_999.0, 5.2, 5.05, 5.1]
    days = [AS_OF - dt.timedelta(days=7 * (len(prices) - 1 - i)) for i in range(len(prices))]
    store = LocalStore(tmp_path)
    collected = []
    for day, price in zip(days, prices, strict=True):
        frame = normalise_history(
            pd.DataFrame({"card_id": ["sv1-2_normal"], "set_id": "sv1", "date": [day]}).assign(
                market_price=price
            )
        )
        key = keys.raw_partition("csv", day, "sv1")
        store.put_bytes(key, to_parquet_bytes(frame))
        collected.append({"set_id": "sv1", "key": key, "rows": 1, "cards": 1})
    run = RunConfig(run_id="r1", source="csv", as_of=AS_OF)

    dataset = build_dataset(PreprocessInput(run=run, collected=collected), Settings(), store)

    history = from_parquet_bytes(store.get_bytes(dataset.history_key))
    features = from_parquet_bytes(store.get_bytes(dataset.features_key))
    assert history["market_price"].tolist() == prices
    assert 99_999.0 not in features["market_price"].tolist() and len(features) == 5
    assert dataset.price_spikes == 1
    assert [r.getMessage() for r in caplog.records if r.name == preprocess.logger.name] == [
        "run r1: 1 isolated price spike (a price ×20 or more away from both the card's previous "
        "and next prices, which agree) left out of the features, training and backtest: "
        f"sv1-2_normal on {days[2]} priced 99999 between 5 and 5.2"
    ]
