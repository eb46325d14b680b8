"""Preprocess: the collected raw history of a source → the history and feature tables of a run."""

from __future__ import annotations

import datetime as dt
import logging

from pokewatch import keys
from pokewatch.features import build_features
from pokewatch.history import load_raw_history, to_parquet_bytes
from pokewatch.price_spikes import describe_spikes, find_spikes
from pokewatch.settings import Settings
from pokewatch.steps import CollectFailure, CollectResult, Dataset, PreprocessInput
from pokewatch.store import ArtifactStore

logger = logging.getLogger(__name__)


class NoDataCollected(RuntimeError):
    """Nothing to learn from: every set failed or the source returned no prices."""


def build_dataset(request: PreprocessInput, settings: Settings, store: ArtifactStore) -> Dataset:
    """Read the source's raw history up to `as_of` (its last `history_window_days`), build the
    features and write both.

    A run that collected no price at all fails, even when earlier runs left a history: training
    again on yesterday's data would promote a model that says nothing new, and the outage would
    only show as a "partial collection" notice."""
    run = request.run
    collected = [CollectResult.model_validate(r) for r in request.collected if "key" in r]
    failed = [CollectFailure.model_validate(r) for r in request.collected if "key" not in r]
    history = load_raw_history(store, run.source, run.as_of, settings.history_window_days)
    if history.empty or not any(r.rows for r in collected):
        _check_partitions_present(run.run_id, collected, store)
        if not request.collected:  # the plan found no set with a price (or released) by as_of
            raise NoDataCollected(
                f"no prices collected in run {run.run_id}: "
                f"{run.source!r} has no prices on or before {run.as_of}"
            )
        failures = ", ".join(f.summary for f in failed) or "none"
        empty = _empty_sets([r for r in collected if not r.rows])
        raise NoDataCollected(
            f"no prices collected from {run.source!r} in run {run.run_id}; "
            f"failed sets: {failures}; empty sets: {empty}"
        )
    # The history keeps them as collected; the features (so training and serving) do not. Found
    # before the features are built, so that its working arrays never sit next to the table.
    spikes = find_spikes(history, settings.price_spike_factor)
    if not spikes.empty:
        logger.warning(
            "run %s: %s", run.run_id, describe_spikes(spikes, settings.price_spike_factor)
        )
    features = build_features(history, settings.horizon_days, settings.price_spike_factor)
    history_key = keys.features(run.as_of, f"{run.run_id}/history.parquet")
    features_key = keys.features(run.as_of, f"{run.run_id}/table.parquet")
    store.put_bytes(history_key, to_parquet_bytes(history))
    store.put_bytes(features_key, to_parquet_bytes(features))
    return Dataset(
        run=run,
        history_key=history_key,
        features_key=features_key,
        rows=len(history),
        cards=int(history["card_id"].nunique()),
        data_as_of=history["date"].max().date(),
        collected_sets=sorted(r.set_id for r in collected),
        failed_sets=failed,
        price_spikes=len(spikes),
    )


def _check_partitions_present(
    run_id: str, collected: list[CollectResult], store: ArtifactStore
) -> None:
    """Raise NoDataCollected naming the partitions collect wrote that `store` does not hold
    (an event replayed on another store, a partition removed since): the run did collect
    prices, and "failed sets: none; empty sets: none" said nothing of where they went."""
    missing = [r.key for r in collected if r.rows and not store.exists(r.key)]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise NoDataCollected(
            f"run {run_id} collected prices that are not in {store.uri}: {shown} (collected "
            "into another store, or removed since)"
        )


def _empty_sets(empty: list[CollectResult]) -> str:
    """`bp, g1 (no price dated 2024-11-24..2024-11-28)`: the sets that returned nothing, by the
    days they asked for. The days say why a window missed the data (a file that ends years
    before `--as-of`, a backfill too short for an illiquid set)."""
    by_days: dict[tuple[dt.date | None, dt.date | None], list[str]] = {}
    for result in sorted(empty, key=lambda r: r.set_id):
        by_days.setdefault((result.start, result.end), []).append(result.set_id)
    return (
        "; ".join(
            f"{', '.join(sets)} (no price dated {start}..{end})" if start else ", ".join(sets)
            for (start, end), sets in by_days.items()
        )
        or "none"
    )
