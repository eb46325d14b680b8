"""Collect: one set's prices for a range of days, written as one raw parquet partition."""

from __future__ import annotations

from pokewatch import keys
from pokewatch.history import to_parquet_bytes
from pokewatch.pipeline.plan import settings_for_run
from pokewatch.settings import Settings
from pokewatch.sources.registry import get_source
from pokewatch.steps import CollectItem, CollectResult
from pokewatch.store import ArtifactStore


def collect_set(item: CollectItem, settings: Settings, store: ArtifactStore) -> CollectResult:
    """Fetch the set's prices and write `raw/source=<s>/dt=<end>/set=<set>.parquet`.

    The partition is written in one put after the whole set was fetched, so a failed set never
    leaves a partial file, and a re-run of the same day overwrites the same key."""
    source = get_source(item.run.source, settings_for_run(settings, item.run))
    frame = source.collect(item.set_id, item.start, item.end)
    key = keys.raw_partition(item.run.source, item.end, item.set_id)
    store.put_bytes(key, to_parquet_bytes(frame))
    return CollectResult(
        set_id=item.set_id,
        key=key,
        rows=len(frame),
        cards=int(frame["card_id"].nunique()),
        start=item.start,
        end=item.end,
    )
