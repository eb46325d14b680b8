"""Plan: resolve the run's parameters and decide which sets and days to collect."""

from __future__ import annotations

import datetime as dt
import uuid

from pokewatch.history import last_collected_day_by_set, last_price_day_by_set
from pokewatch.price_limits import EARLIEST_DATE
from pokewatch.settings import Settings
from pokewatch.sources.registry import get_source
from pokewatch.steps import CollectItem, Plan, RunConfig, RunRequest
from pokewatch.store import ArtifactStore

#: Sources that are a file: a first run takes the whole file, and each later run resumes a set
#: after its latest stored price, not after the day it was collected, so that rows a later export
#: brings for days before the last run (published late) are read, not skipped.
FILE_SOURCES = frozenset({"csv"})


def plan_run(request: RunRequest, settings: Settings, store: ArtifactStore) -> Plan:
    """One Map item per set: a set's first run backfills `history_days`, later runs collect the
    days since that set was last collected (a file: since its latest stored price), at least
    `as_of` itself, so a re-run overwrites that day. Each set keeps its own calendar, so a set
    whose collection failed on a day catches up on the next run instead of losing that day."""
    now = dt.datetime.now(dt.UTC)
    as_of = request.as_of or now.date()
    run = RunConfig(
        # Sortable by time: the run id is also the version of the model the run trains.
        run_id=f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}",
        source=request.source or settings.source,
        as_of=as_of,
        input=request.input or settings.csv_input,
        cards=request.cards or settings.sample_cards,
        history_days=request.history_days or _default_history_days(request, settings),
    )
    source = get_source(run.source, settings_for_run(settings, run))
    # Once each: a set named twice (`--sets sv1,sv1`) was collected twice into the same key.
    sets = list(dict.fromkeys(request.sets or settings.sets or source.list_sets(as_of)))
    # Only days before as_of count: a re-run of the same day must redo what the first run of
    # that day did (the same range into the same keys), never overwrite a backfill with one day.
    last_by_set = last_price_day_by_set if run.source in FILE_SOURCES else last_collected_day_by_set
    collected = last_by_set(store, run.source, as_of - dt.timedelta(days=1))
    items = [
        CollectItem(
            run=run, set_id=s, start=_first_day_to_collect(run, collected.get(s)), end=as_of
        )
        for s in sets
    ]
    return Plan(run=run, items=items)


def settings_for_run(settings: Settings, run: RunConfig) -> Settings:
    """The settings with the run's overrides (source, csv input, sample size) applied."""
    update: dict[str, object] = {"source": run.source}
    if run.input:
        update["csv_input"] = run.input
    if run.cards:
        update["sample_cards"] = run.cards
    return settings.model_copy(update=update)


def _default_history_days(request: RunRequest, settings: Settings) -> int | None:
    # A file backfill takes the whole file; a live or simulated source takes the configured window.
    source = request.source or settings.source
    return None if source in FILE_SOURCES else settings.sample_history_days


def _first_day_to_collect(run: RunConfig, last_collected: dt.date | None) -> dt.date:
    if last_collected is not None:
        return last_collected + dt.timedelta(days=1)
    # No history limit (a csv backfill), or one reaching back before the earliest day a price may
    # be dated: everything the source has, from that day.
    if run.history_days is None or run.history_days > (run.as_of - EARLIEST_DATE).days:
        return EARLIEST_DATE
    return run.as_of - dt.timedelta(days=run.history_days - 1)
