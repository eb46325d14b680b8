"""Plan: which days of which sets a run collects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from pokewatch import keys, steps
from pokewatch.history import load_raw_history
from pokewatch.pipeline.collect import collect_set
from pokewatch.pipeline.plan import plan_run
from pokewatch.price_limits import EARLIEST_DATE
from pokewatch.settings import MAX_BACKFILL_DAYS, Settings
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


def test_a_backfill_longer_than_the_earliest_history_starts_there(tmp_path: Path) -> None:
    # A backfill reaching before 1990 gave days pandas cannot hold (`--history-days 99999999`,
    # now refused, was an OverflowError 'date value out of range' in the plan).
    as_of = EARLIEST_DATE + dt.timedelta(days=MAX_BACKFILL_DAYS // 2)
    request = RunRequest(source="sample", as_of=as_of, sets=["a"], history_days=MAX_BACKFILL_DAYS)
    [item] = plan_run(request, Settings(), LocalStore(tmp_path)).items
    assert item.start == EARLIEST_DATE


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_an_as_of_out_of_range_is_an_invalid_request(as_of: str) -> None:
    # Started by hand (`aws stepfunctions start-execution`, `pokewatch invoke plan`), it failed
    # in the plan or in every collect with an overflow, not as an input error naming the field.
    with pytest.raises(ValidationError, match=r"as_of\n.*from 1990-01-01 to 2100-12-31"):
        RunRequest.model_validate({"as_of": as_of})


def test_an_as_of_after_tomorrow_is_an_invalid_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run dated 2031 simulated five years of sample prices that have not happened and put a
    # model "as of 2031" in service; tomorrow is allowed, as it is already today east of UTC.
    # The day is fixed: read from the clock, a midnight between the test's reading and the
    # validator's moved the boundary under it.
    monkeypatch.setattr(steps, "utc_today", lambda: dt.date(2026, 12, 31))
    assert RunRequest(as_of=dt.date(2027, 1, 1)).as_of == dt.date(2027, 1, 1)
    with pytest.raises(ValidationError, match=r"as_of\n.*must not be after 2027-01-01"):
        RunRequest(as_of=dt.date(2027, 1, 2))


def test_today_is_the_date_in_utc() -> None:
    before = dt.datetime.now(dt.UTC).date()
    assert before <= steps.utc_today() <= dt.datetime.now(dt.UTC).date()
    with pytest.raises(ValidationError, match="must not be after"):
        RunRequest(as_of=before + dt.timedelta(days=3))


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


def test_a_set_named_twice_is_collected_once(tmp_path: Path) -> None:
    request = RunRequest(source="sample", as_of=AS_OF, sets=["b", "a", "b"], history_days=30)
    items = plan_run(request, Settings(), LocalStore(tmp_path)).items
    assert [item.set_id for item in items] == ["b", "a"]


def test_a_rerun_of_the_day_redoes_the_same_range(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _collected(store, dt.date(2025, 5, 31), "a")
    first = _starts(store, ["a"])
    _collected(store, AS_OF, "a")
    assert _starts(store, ["a"]) == first == {"a": dt.date(2025, 6, 1)}


def _export(path: Path, days: list[str]) -> Path:
    rows = [f"s1-{card}_normal,{day},{10 + card}" for day in days for card in (1, 2)]
    path.write_text("card_id,date,market_price\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_file_run_resumes_after_the_last_price_so_late_rows_of_a_later_export_are_read(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    first = _export(tmp_path / "first.csv", ["2026-01-01", "2026-01-07"])
    request = RunRequest(source="csv", input=str(first), as_of=dt.date(2026, 1, 12))
    for item in plan_run(request, Settings(), store).items:
        collect_set(item, Settings(), store)
    # The next export brings a row dated before the first run (published late) and a new week.
    later = _export(
        tmp_path / "later.csv", ["2026-01-01", "2026-01-07", "2026-01-10", "2026-01-17"]
    )
    request = RunRequest(source="csv", input=str(later), as_of=dt.date(2026, 1, 19))
    (item,) = plan_run(request, Settings(), store).items
    assert item.start == dt.date(2026, 1, 8)
    collect_set(item, Settings(), store)
    history = load_raw_history(store, "csv", dt.date(2026, 1, 19))
    assert sorted(history["date"].dt.strftime("%m-%d").unique()) == [
        "01-01",
        "01-07",
        "01-10",
        "01-17",
    ]


def test_a_file_run_after_a_run_that_found_nothing_new_resumes_after_the_last_price(
    tmp_path: Path,
) -> None:
    # The set's newest partition is empty (that export brought nothing new): the resume is
    # after the latest price of an older partition, not after the empty one's day, nor a new
    # backfill of the whole file.
    store = LocalStore(tmp_path / "store")
    export = _export(tmp_path / "first.csv", ["2026-01-01", "2026-01-07"])
    for as_of in (dt.date(2026, 1, 12), dt.date(2026, 1, 19)):
        request = RunRequest(source="csv", input=str(export), as_of=as_of)
        for item in plan_run(request, Settings(), store).items:
            collect_set(item, Settings(), store)
    later = _export(tmp_path / "later.csv", ["2026-01-07", "2026-01-10", "2026-01-24"])
    request = RunRequest(source="csv", input=str(later), as_of=dt.date(2026, 1, 26))
    (item,) = plan_run(request, Settings(), store).items
    assert item.start == dt.date(2026, 1, 8)
