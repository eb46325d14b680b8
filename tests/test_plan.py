"""Plan: which days of which sets a run collects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pokewatch import keys
from pokewatch.pipeline.plan import plan_run
from pokewatch.settings import Settings
from pokewatch.steps import RunRequest
from pokewatch.store import LocalStore

AS_OF = dt.date(2025, 6, 2)


def _collected(store: LocalStore, day: dt.date, set_id: str) -> None:
    store.put_bytes(keys.raw_partition("sample", day, set_id), b"")


def _starts(store: LocalStore, sets: list[str]) -> dict[str, dt.date]:
    request = RunRequest(source="sample", as_of=AS_OF, sets=sets, history_days=30)
    return {item.set_id: item.start for item in plan_run(request, Settings(), store).items}


def test_a_first_run_backfills_the_history_days(tmp_path: Path) -> None:
    assert _starts(LocalStore(tmp_path), ["a"]) == {"a": dt.date(2025, 5, 4)}


def test_each_set_resumes_after_its_own_last_collection(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _collected(store, dt.date(2025, 5, 31), "a")
    _collected(store, dt.date(2025, 5, 31), "b")
    # On June 1st set b failed: the next run must collect June 1st for it, not only June 2nd.
    _collected(store, dt.date(2025, 6, 1), "a")
    assert _starts(store, ["a", "b", "new"]) == {
        "a": AS_OF,
        "b": dt.date(2025, 6, 1),
        "new": dt.date(2025, 5, 4),
    }


def test_a_rerun_of_the_day_redoes_the_same_range(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _collected(store, dt.date(2025, 5, 31), "a")
    first = _starts(store, ["a"])
    _collected(store, AS_OF, "a")
    assert _starts(store, ["a"]) == first == {"a": dt.date(2025, 6, 1)}
