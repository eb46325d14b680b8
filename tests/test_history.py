"""The raw history of a source: partitions combined in order, text as sorted categoricals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pokewatch import keys
from pokewatch.history import (
    CorruptPartition,
    from_parquet_bytes,
    load_raw_history,
    to_parquet_bytes,
)
from pokewatch.observations import TEXT_COLUMNS
from pokewatch.sources.base import normalise_history
from pokewatch.store import LocalStore

DAY = dt.date(2024, 3, 1)


def partition(set_id: str, cards: list[str], day: str, price: float) -> pd.DataFrame:
    """One set's prices of `cards` on `day`."""
    return normalise_history(
        pd.DataFrame(
            {
                "card_id": [f"{set_id}-{c}" for c in cards],
                "name": [f"Card {c}" for c in cards],
                "set_id": set_id,
                "set_name": f"Set {set_id}",
                "series": "S",
                "rarity": "Rare",
                "variant": "normal",
                "release_date": "2023-01-01",
                "date": day,
                "market_price": price,
                "volume": 1,
            }
        )
    )


def test_sets_of_different_cards_keep_text_categorical_with_sorted_categories(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    frames = {
        ("zeta", DAY): partition("zeta", ["2", "1"], "2024-02-28", 5.0),
        ("alpha", DAY): partition("alpha", ["9"], "2024-02-28", 7.0),
        # Collected a day later: re-collects zeta-1 on the 28th (it wins) and adds the 29th.
        ("zeta", DAY + dt.timedelta(days=1)): pd.concat(
            [
                partition("zeta", ["1"], "2024-02-28", 6.0),
                partition("zeta", ["1", "3"], "2024-02-29", 8.0),
            ]
        ),
    }
    for (set_id, day), frame in frames.items():
        store.put_bytes(keys.raw_partition("s", day, set_id), to_parquet_bytes(frame))

    history = load_raw_history(store, "s", DAY + dt.timedelta(days=1))

    for column in TEXT_COLUMNS:
        categories = history[column].cat.categories
        assert list(categories) == sorted(set(history[column].astype(str))), column
    assert history["card_id"].astype(str).tolist() == [
        "alpha-9",
        "zeta-1",
        "zeta-1",
        "zeta-2",
        "zeta-3",
    ]
    assert history["market_price"].tolist() == [7.0, 6.0, 8.0, 5.0, 8.0]
    # The rows of concatenating, de-duplicating and sorting the strings, and the same table
    # through the parquet round trip.
    strings = normalise_history(pd.concat(frames.values(), ignore_index=True))
    strings = strings.drop_duplicates(["card_id", "date"], keep="last")
    strings = strings.sort_values(["card_id", "date"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(history.astype({c: str for c in TEXT_COLUMNS}), strings)
    pd.testing.assert_frame_equal(from_parquet_bytes(to_parquet_bytes(history)), history)
    # Up to the first day only: the later partition is not read.
    assert load_raw_history(store, "s", DAY)["market_price"].tolist() == [7.0, 5.0, 5.0]


def test_partitions_of_other_versions_are_normalised_together(tmp_path: Path) -> None:
    """A partition without volumes and one with a float price column of another type still
    combine, and `normalise_history` sets every dtype."""
    store = LocalStore(tmp_path)
    old = partition("a", ["1"], "2024-02-27", 5.0).drop(columns=["volume", "series"])
    new = partition("a", ["1"], "2024-02-28", 6.0).astype({"volume": "float64"})
    store.put_bytes(keys.raw_partition("s", DAY - dt.timedelta(days=1), "a"), to_parquet_bytes(old))
    store.put_bytes(keys.raw_partition("s", DAY, "a"), to_parquet_bytes(new))

    history = load_raw_history(store, "s", DAY)

    assert history["volume"].dtype == "Int64"
    assert history["volume"].isna().tolist() == [True, False]
    assert history["series"].astype(str).tolist() == ["", "S"]
    assert history["card_id"].dtype == "category"


def test_a_window_reads_only_the_last_days_up_to_the_latest_price(tmp_path: Path) -> None:
    backfill = pd.concat(
        [partition("a", ["1"], str(DAY - dt.timedelta(days=d)), 1.0 + d) for d in (400, 100, 20)]
    )
    store = LocalStore(tmp_path / "daily")
    store.put_bytes(keys.raw_partition("s", DAY, "a"), to_parquet_bytes(backfill))
    # Collected before the window: never read (reading it would fail).
    store.put_bytes(keys.raw_partition("s", DAY - dt.timedelta(days=200), "b"), b"corrupt")
    with pytest.raises(CorruptPartition):
        load_raw_history(store, "s", DAY)
    windowed = load_raw_history(store, "s", DAY, window_days=150)
    assert windowed["market_price"].tolist() == [101.0, 21.0]

    # A file's history may end long before the run: the window ends at its latest price.
    file_store = LocalStore(tmp_path / "file")
    later = DAY + dt.timedelta(days=1000)
    file_store.put_bytes(keys.raw_partition("s", later, "a"), to_parquet_bytes(backfill))
    windowed = load_raw_history(file_store, "s", later, window_days=150)
    assert windowed["market_price"].tolist() == [101.0, 21.0]


def test_a_window_ending_long_before_the_run_reads_the_earlier_runs_partitions_too(
    tmp_path: Path,
) -> None:
    # A file backfilled up to DAY by a first run (`--as-of DAY`), the rest of it collected by a
    # run years later: its prices end long before that run, and the window (up to the latest
    # price) still covers what the first run collected, so that partition must be read.
    store = LocalStore(tmp_path / "file")
    first = pd.concat(
        [partition("a", ["1"], str(DAY - dt.timedelta(days=d)), 1.0 + d) for d in (700, 20)]
    )
    store.put_bytes(keys.raw_partition("s", DAY, "a"), to_parquet_bytes(first))
    later = DAY + dt.timedelta(days=1000)
    rest = partition("a", ["1"], str(DAY + dt.timedelta(days=50)), 0.5)
    store.put_bytes(keys.raw_partition("s", later, "a"), to_parquet_bytes(rest))

    windowed = load_raw_history(store, "s", later, window_days=365)

    assert windowed["market_price"].tolist() == [21.0, 0.5]


def test_a_live_source_stalled_for_years_reads_a_bounded_number_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A live source whose prices stopped at `last` while the daily runs went on: every run since
    # collected the same stale price again. The window ends at `last`, so the partitions of the
    # days before as_of's window are read too; their stale repeats must not all be held at once,
    # or a run's memory grows with every day of the stall.
    from pokewatch import history as history_module

    store = LocalStore(tmp_path)
    cards, window, stall = ["1", "2", "3"], 10, 400
    last = DAY + dt.timedelta(days=30)
    for d in range(31):
        day = DAY + dt.timedelta(days=d)
        store.put_bytes(
            keys.raw_partition("s", day, "a"), to_parquet_bytes(partition("a", cards, str(day), d))
        )
    for d in range(1, stall + 1):
        stale = partition("a", cards, str(last), 30.0 + d)  # a re-collection: the latest wins
        store.put_bytes(
            keys.raw_partition("s", last + dt.timedelta(days=d), "a"), to_parquet_bytes(stale)
        )
    held: list[int] = []
    concat = history_module._concat_tables
    monkeypatch.setattr(
        history_module,
        "_concat_tables",
        lambda tables: held.append(sum(t.num_rows for t in tables)) or concat(tables),
    )

    windowed = load_raw_history(store, "s", last + dt.timedelta(days=stall), window_days=window)

    days = windowed.groupby("card_id", observed=True)["market_price"].apply(list)
    assert days.tolist() == [[*map(float, range(21, 30)), 30.0 + stall]] * len(cards)
    # The window's days and the run's own window of partitions, not every day of the stall.
    assert held and max(held) <= 3 * (window + 1) * len(cards)
