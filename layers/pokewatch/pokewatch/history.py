"""Price history tables in the store: parquet bytes in and out, and the collected raw history."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pokewatch import keys
from pokewatch.card_day import epoch_days, last_per_card_day
from pokewatch.observations import TEXT_COLUMNS
from pokewatch.sources.base import normalise_history
from pokewatch.store import ArtifactStore

_PARTITION = re.compile(
    r"raw/source=(?P<source>[^/]+)/dt=(?P<day>\d{4}-\d{2}-\d{2})/set=(?P<set>[^/]+)\.parquet$"
)


class CorruptPartition(RuntimeError):
    """A raw partition that cannot be read; named so that it can be inspected or removed."""


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A table as parquet (zstd) bytes."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def from_parquet_bytes(data: bytes) -> pd.DataFrame:
    """A table from parquet bytes (of `to_parquet_bytes`), read one column at a time: converting
    a whole large table holds arrow's copy of it next to the pandas one, twice its memory."""
    columns = pq.read_schema(io.BytesIO(data)).names
    return pd.DataFrame(
        {c: pd.read_parquet(io.BytesIO(data), columns=[c])[c] for c in columns}, copy=False
    )


class RawPartition(NamedTuple):
    """One set's prices as collected on one day."""

    day: dt.date
    set_id: str
    key: str


def collected_partitions(store: ArtifactStore, source: str, as_of: dt.date) -> list[RawPartition]:
    """The raw partitions of `source` collected on or before `as_of`, oldest first."""
    found = []
    for key in store.list_keys(keys.raw_prefix(source)):
        match = _PARTITION.match(key)
        if match and (day := dt.date.fromisoformat(match["day"])) <= as_of:
            found.append(RawPartition(day, match["set"], key))
    return sorted(found)


def last_collected_day_by_set(
    store: ArtifactStore, source: str, as_of: dt.date
) -> dict[str, dt.date]:
    """The latest collection day on or before `as_of` of each set collected from `source`."""
    return {p.set_id: p.day for p in collected_partitions(store, source, as_of)}


def last_price_day_by_set(store: ArtifactStore, source: str, as_of: dt.date) -> dict[str, dt.date]:
    """The latest price date, on or before `as_of`, of each set in the partitions collected from
    `source` on or before `as_of`; a set whose partitions hold no such price is left out. Each
    set's partitions are read newest first, and only until one holds a price."""
    by_set: dict[str, list[RawPartition]] = {}
    for partition in collected_partitions(store, source, as_of):
        by_set.setdefault(partition.set_id, []).append(partition)
    found = {}
    for set_id, partitions in by_set.items():
        for partition in reversed(partitions):
            day = _latest_price_day([_read_partition(store, partition.key)], as_of)
            if day is not None:
                found[set_id] = day
                break
    return found


def load_raw_history(
    store: ArtifactStore, source: str, as_of: dt.date, window_days: int | None = None
) -> pd.DataFrame:
    """Every price collected from `source` up to `as_of` (with `window_days`, only those of the
    last `window_days` up to the latest price), one row per card and date, sorted by card then
    date.

    Partitions are read oldest first and a later snapshot's row for the same card and date wins,
    so a re-collected day replaces what an earlier run saw. A partition holds no price dated
    after the day it was collected, so one collected before the window holds only older prices
    and is not read at all: a run's memory stays bounded however many years the store holds.
    The window is first taken to end at as_of (where a live source's latest price is); when the
    prices read end earlier (a file whose history ended long before the run, collected in part
    by an earlier run), the partitions collected between that window's start and as_of's are
    read as well, so that no price of the window is left out. The text columns are read
    dictionary-encoded and stay categoricals (see `normalise_history`): a small integer per row
    instead of a string is most of the memory of a daily history of many cards."""
    partitions = collected_partitions(store, source, as_of)
    oldest = dt.date.min if window_days is None else as_of - dt.timedelta(days=window_days)
    tables = [_read_partition(store, p.key) for p in partitions if p.day >= oldest]
    if window_days is not None and tables:
        latest = _latest_price_day(tables, as_of)
        start = latest - dt.timedelta(days=window_days) if latest else oldest
        # Older first: their rows are the earlier snapshots, which the later ones replace.
        older = [p.key for p in partitions if start < p.day < oldest]
        tables = _window_rows(store, older, start, sum(t.num_rows for t in tables)) + tables
    if not tables:
        return normalise_history(pd.DataFrame())
    history = normalise_history(_concat_tables(tables))
    dates = history["date"]
    in_window = dates <= pd.Timestamp(as_of)
    if window_days is not None and in_window.any():
        # From the latest price, not from as_of: a file's history may end long before the run.
        in_window &= dates > dates[in_window].max() - pd.Timedelta(days=window_days)
    known = np.flatnonzero(in_window.to_numpy())
    card_codes = history["card_id"].cat.codes.to_numpy()[known]
    rows = known[last_per_card_day(card_codes, epoch_days(dates.take(known)))]
    return history.take(rows).reset_index(drop=True)


def _window_rows(
    store: ArtifactStore, partitions: list[str], start: dt.date, batch_rows: int
) -> list[pa.Table]:
    """The rows of `partitions` (oldest first) dated after `start`, in order. Whenever more than
    `batch_rows` rows wait, those read so far are folded to the last row of each card and date
    (the latest snapshot's): a live source that stalled collected its last prices again every
    day of the stall, and holding every repeat would grow a run's memory with each day of it."""
    kept: list[pa.Table] = []
    waiting = 0
    for key in partitions:
        table = _dated_after(_read_partition(store, key), start)
        kept.append(table)
        waiting += table.num_rows
        if waiting > batch_rows:
            kept, waiting = [_last_per_card_date(kept)], 0
    return kept


def _price_dates(table: pa.Table) -> pa.ChunkedArray | None:
    """The dates of a raw partition's rows as timestamps; None when it has none, or dates of a
    kind only `normalise_history` reads (and reports)."""
    if "date" not in table.column_names:
        return None
    try:
        return pc.cast(table["date"], pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _dated_after(table: pa.Table, start: dt.date) -> pa.Table:
    """The rows of a raw partition dated after `start` (all of them when `_price_dates` cannot
    read its dates)."""
    dates = _price_dates(table)
    if dates is None:
        return table
    return table.filter(pc.greater(dates, pa.scalar(pd.Timestamp(start))))


def _last_per_card_date(tables: list[pa.Table]) -> pa.Table:
    """`tables` in one, with only the last row of each (card_id, date)."""
    combined = pa.concat_tables(tables, promote_options="permissive")
    if not {"card_id", "date"} <= set(combined.column_names):
        return combined
    rows = pa.array(np.arange(combined.num_rows))
    keyed = combined.select(["card_id", "date"]).append_column("row", rows)
    last = keyed.group_by(["card_id", "date"], use_threads=False).aggregate([("row", "max")])
    return combined.take(pc.sort_indices(last["row_max"]))


def _latest_price_day(tables: list[pa.Table], as_of: dt.date) -> dt.date | None:
    """The day of the latest price on or before `as_of` in `tables` (None when they hold none)."""
    limit = pa.scalar(pd.Timestamp(as_of))
    latest = None
    for table in tables:
        dates = _price_dates(table)
        if dates is None or table.num_rows == 0:
            continue
        day = pc.max(pc.filter(dates, pc.less_equal(dates, limit))).as_py()
        if day is not None and (latest is None or day > latest):
            latest = day
    return None if latest is None else pd.Timestamp(latest).date()


def _concat_tables(tables: list[pa.Table]) -> pd.DataFrame:
    """The rows of raw partitions' `tables` in order, to be normalised; `tables` is emptied, so
    that the converted columns' buffers are freed as they go. Arrow concatenates them without
    copying and unifies the text columns' dictionaries (categoricals of different categories
    would not concatenate in pandas: it silently makes them strings); partitions written by
    other versions may differ in a column's type or lack a column, hence the permissive
    promotion, and `normalise_history`, not one partition's pandas metadata, sets the dtypes."""
    combined = pa.concat_tables(tables, promote_options="permissive")
    tables.clear()
    frame = combined.to_pandas(self_destruct=True, split_blocks=True)
    del combined
    # Arrow's allocator keeps the pages it freed for itself; numpy, which allocates everything
    # from here on, cannot use them. On a large history that is hundreds of megabytes.
    pa.default_memory_pool().release_unused()
    return frame


def _read_partition(store: ArtifactStore, key: str) -> pa.Table:
    """One raw partition, its text columns dictionary-encoded, without its pandas metadata."""
    try:
        table = pq.read_table(io.BytesIO(store.get_bytes(key)), read_dictionary=TEXT_COLUMNS)
    except (OSError, ValueError) as exc:
        raise CorruptPartition(f"raw partition {key} cannot be read: {exc}") from exc
    return table.replace_schema_metadata()
