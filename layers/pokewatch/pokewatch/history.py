"""Price history tables in the store: parquet bytes in and out, and the collected raw history."""

from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd

from pokewatch import keys
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
    """A table from parquet bytes."""
    return pd.read_parquet(io.BytesIO(data))


def raw_partitions(store: ArtifactStore, source: str, as_of: dt.date) -> list[str]:
    """The raw partition keys of `source` collected on or before `as_of`, oldest first."""
    found = []
    for key in store.list_keys(keys.raw_prefix(source)):
        match = _PARTITION.match(key)
        if match and dt.date.fromisoformat(match["day"]) <= as_of:
            found.append((match["day"], key))
    return [key for _, key in sorted(found)]


def load_raw_history(store: ArtifactStore, source: str, as_of: dt.date) -> pd.DataFrame:
    """Every price collected from `source` up to `as_of`, one row per card and date.

    Partitions are read oldest first and a later snapshot's row for the same card and date wins,
    so a re-collected day replaces what an earlier run saw."""
    frames = []
    for key in raw_partitions(store, source, as_of):
        try:
            frames.append(from_parquet_bytes(store.get_bytes(key)))
        except (OSError, ValueError) as exc:
            raise CorruptPartition(f"raw partition {key} cannot be read: {exc}") from exc
    if not frames:
        return normalise_history(pd.DataFrame())
    history = normalise_history(pd.concat(frames, ignore_index=True))
    history = history[history["date"] <= pd.Timestamp(as_of)]
    history = history.drop_duplicates(["card_id", "date"], keep="last")
    return history.sort_values(["card_id", "date"], kind="stable").reset_index(drop=True)
