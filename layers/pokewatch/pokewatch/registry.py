"""The model registry: every run's model under `models/<version>/`, one atomic pointer to the one
in service (`models/current.json`) and a log of promotions for rollback."""

from __future__ import annotations

import datetime as dt
import json

from pydantic import BaseModel, TypeAdapter, ValidationError

from pokewatch import keys
from pokewatch.promotion import Promotion
from pokewatch.serving import ServingFormatError, ServingTable
from pokewatch.store import ArtifactNotFound, ArtifactStore
from pokewatch.validation import problems

PROMOTION_LOG = "models/promotions.json"
_LOG = TypeAdapter(list[Promotion])


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


class ModelSummary(BaseModel):
    """One version in the registry, for `pokewatch models list`."""

    version: str
    in_service: bool
    has_serving_file: bool
    metrics: dict | None = None


class DamagedRecord(RegistryError):
    """A registry file that is there but cannot be read (edited by hand, truncated)."""


def current(store: ArtifactStore) -> Promotion | None:
    """The promotion record of the model in service, or None when no model is in service;
    DamagedRecord if `models/current.json` is not one."""
    try:
        data = store.get_bytes(keys.CURRENT_MODEL)
    except ArtifactNotFound:
        return None
    try:
        return Promotion.model_validate_json(data)
    except ValidationError as exc:
        raise DamagedRecord(
            f"{keys.CURRENT_MODEL} in {store.uri} is not a promotion record "
            f"({problems(exc, whole='record')}); put a model in service with "
            "`pokewatch models promote VERSION`"
        ) from None


def versions(store: ArtifactStore) -> list[str]:
    """Every model version in the store, oldest first (versions sort by time)."""
    found = {
        key.split("/")[1]
        for key in store.list_keys("models/")
        if key.count("/") == 2 and not key.startswith("models/current")
    }
    return sorted(found)


def list_models(store: ArtifactStore) -> list[ModelSummary]:
    """Every version with its metrics and whether it is in service."""
    in_service = current(store)
    summaries = []
    for version in versions(store):
        try:
            metrics = json.loads(store.get_bytes(keys.model_artifact(version, "metrics.json")))
        except (ArtifactNotFound, ValueError):  # a damaged file lists as "no metrics"
            metrics = None
        if not _is_metrics(metrics):
            metrics = None  # JSON, but not the metrics' shape (`[]`, `{"backtest": 3}`): damaged
        summaries.append(
            ModelSummary(
                version=version,
                in_service=in_service is not None and in_service.version == version,
                has_serving_file=store.exists(keys.model_artifact(version, keys.SERVING_FILE)),
                metrics=metrics,
            )
        )
    return summaries


def _is_metrics(metrics: object) -> bool:
    """Whether `metrics` has the shape of a metrics.json: an object whose sections are objects."""
    return isinstance(metrics, dict) and all(
        isinstance(metrics.get(section, {}), dict) for section in ("backtest", "gate")
    )


def promote(store: ArtifactStore, version: str, *, data_as_of: dt.date | None = None) -> Promotion:
    """Put `version` in service with one atomic write of `models/current.json`. Promoting the
    version already in service changes nothing (a retried Promote, a repeated command): it must
    not become its own predecessor, which would cut the way back to the models before it.
    A damaged pointer is replaced, keeping the way back of the log. `data_as_of` defaults to the
    serving file's."""
    try:
        previous = current(store)
    except DamagedRecord:
        # This repairs the pointer. It is written after the log, so the log's last record is what
        # it held: the way back goes on from there, and promoting its model puts it back as it was.
        log = _read_log(store)
        previous = log[-1] if log else None
        if previous is not None and previous.version == version:
            _servable(store, version)
            _write_pointer(store, previous)
            return previous
    if previous is not None and previous.version == version:
        return previous
    table = _servable(store, version)
    return _put_in_service(
        store,
        Promotion(
            version=version,
            promoted_at=dt.datetime.now(dt.UTC),
            previous_version=previous.version if previous else None,
            data_as_of=data_as_of or table.facts.data_as_of,
        ),
    )


def rollback(store: ArtifactStore) -> Promotion:
    """Undo the promotion of the model in service: put back the one in service before it, as it
    stood then. Repeated rollbacks undo one promotion each, back to the first model, also when a
    model was promoted by hand a second time (its newest promotion is not the one to go back to).
    """
    in_service = current(store)
    if in_service is None or in_service.previous_version is None:
        raise RegistryError("there is no earlier model to roll back to")
    log = _read_log(store)
    # Where the promotion in service stands in the log (an older log without it: its end), the
    # newest record of its version and time that is not a rollback: two records may share a
    # timestamp (a coarse clock, a log written by hand), another version's or a rollback's.
    undone = next(
        (
            i
            for i in reversed(range(len(log)))
            if log[i].version == in_service.version
            and log[i].promoted_at == in_service.original_promoted_at
            and log[i].restores is None
        ),
        len(log),
    )
    earlier = next(
        (p for p in reversed(log[:undone]) if p.version == in_service.previous_version), None
    )
    version = in_service.previous_version
    table = _servable(store, version)
    return _put_in_service(
        store,
        Promotion(
            version=version,
            promoted_at=dt.datetime.now(dt.UTC),
            previous_version=earlier.previous_version if earlier else None,
            data_as_of=(earlier.data_as_of if earlier else None) or table.facts.data_as_of,
            restores=earlier.original_promoted_at if earlier else None,
        ),
    )


def _servable(store: ArtifactStore, version: str) -> ServingTable:
    """The serving table of `version`, or a RegistryError saying why it cannot be put in service."""
    if version in ("", ".", "..") or "/" in version:
        # A version is one segment of `models/<version>/`; a path would name another key.
        raise RegistryError(f"not a model version: {version!r} (`pokewatch models list`)")
    try:
        return ServingTable.from_bytes(
            store.get_bytes(keys.model_artifact(version, keys.SERVING_FILE))
        )
    except ArtifactNotFound:
        raise RegistryError(
            f"model {version!r} has no serving file; it cannot be put in service"
        ) from None
    except ServingFormatError as exc:
        # The API could not load it: every new cold start would answer 503.
        raise RegistryError(f"model {version!r} cannot be put in service: {exc}") from exc


def _put_in_service(store: ArtifactStore, record: Promotion) -> Promotion:
    log = _read_log(store)
    log.append(record)
    store.put_bytes(PROMOTION_LOG, _LOG.dump_json(log, indent=1), "application/json")
    # The pointer is written last: readers see either the old model or the new one, never half.
    _write_pointer(store, record)
    return record


def _write_pointer(store: ArtifactStore, record: Promotion) -> None:
    store.put_bytes(
        keys.CURRENT_MODEL, record.model_dump_json(indent=1).encode(), "application/json"
    )


def _read_log(store: ArtifactStore) -> list[Promotion]:
    try:
        data = store.get_bytes(PROMOTION_LOG)
    except ArtifactNotFound:
        return []
    try:
        return _LOG.validate_json(data)
    except ValidationError as exc:
        raise DamagedRecord(
            f"{PROMOTION_LOG} in {store.uri} is not a promotion log "
            f"({problems(exc, whole='log')}); repair it, or move it aside to start a new one "
            "(a rollback then reaches back one model, to the one before the model in service)"
        ) from None
