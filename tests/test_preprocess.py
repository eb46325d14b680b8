"""Preprocess's refusal of a run that collected nothing, and what it says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pokewatch.pipeline.preprocess import NoDataCollected, build_dataset
from pokewatch.settings import Settings
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
