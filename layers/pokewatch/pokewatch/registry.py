"""The model registry: every run's model under `models/<version>/`, one atomic pointer to the one
in service (`models/current.json`) and a log of promotions for rollback."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from pydantic import BaseModel, TypeAdapter, ValidationError

from pokewatch import keys
from pokewatch.promotion import Promotion
from pokewatch.serving import ServingFormatError, ServingTable
from pokewatch.store import ArtifactNotFound, ArtifactStore, Tagged, WriteConflict
from pokewatch.validation import problems

PROMOTION_LOG = "models/promotions.json"
_LOG = TypeAdapter(list[Promotion])
#: Tries of a promotion whose pointer or log another promotion changed between read and write.
WRITE_ATTEMPTS = 10


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
    return _pointer_record(store, _read(store, keys.CURRENT_MODEL))


def _pointer_record(store: ArtifactStore, pointer: Tagged | None) -> Promotion | None:
    if pointer is None:
        return None
    try:
        return Promotion.model_validate_json(pointer.data)
    except ValidationError as exc:
        raise DamagedRecord(
            f"{keys.CURRENT_MODEL} in {store.uri} is not a promotion record "
            f"({problems(exc, whole='record')}); put a model in service with "
            "`pokewatch models promote VERSION`"
        ) from None


def logged(store: ArtifactStore, version: str) -> bool:
    """Whether the promotion log records a promotion of `version` (True when the log cannot be
    read). A promotion stopped between its two writes leaves its record without the pointer: a
    repair of a damaged pointer may put that model in service, so its files must stay."""
    try:
        return any(record.version == version for record in _read_log(store)[0])
    except DamagedRecord:
        return True


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
            metrics = json.loads(store.get_bytes(keys.model_artifact(version, keys.METRICS_FILE)))
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
    """Whether `metrics` has the shape of a metrics.json: an object whose sections are objects,
    with the scores a listing shows, where given, numbers."""
    if not isinstance(metrics, dict) or not all(
        isinstance(metrics.get(section, {}), dict) for section in ("backtest", "gate")
    ):
        return False
    backtest = metrics.get("backtest", {})
    return all(
        isinstance(score, int | float) and not isinstance(score, bool)
        for score in (backtest.get(key, 0.0) for key in ("mape_model", "mape_naive"))
    )


def promote(store: ArtifactStore, version: str, *, data_as_of: dt.date | None = None) -> Promotion:
    """Put `version` in service with one atomic write of `models/current.json`. Promoting the
    version already in service changes nothing (a retried Promote, a repeated command): it must
    not become its own predecessor, which would cut the way back to the models before it.
    A damaged pointer is repaired first, keeping the way back of the log. `data_as_of` defaults
    to the serving file's."""

    def change(pointer: Tagged | None, log: list[Promotion]) -> _Change:
        try:
            previous = _pointer_record(store, pointer)
        except DamagedRecord:
            # The pointer is written after the log, so the log's last record is what it held, or
            # that of a promotion between its two writes (or stopped there). Putting it back
            # first makes it the model in service either way: the promotion asked for then goes
            # on from a model that was, and the other one's record is not taken out of the log
            # from under it (its pointer write lost, but its model went in service).
            if log and _can_serve(store, log[-1].version):
                return _Change(log[-1], logged=False, repairs=True)
            previous = log[-1] if log else None  # none to put back: the way back is cut there
        else:
            if previous is not None and previous.version == version:
                return _Change(previous, logged=False, unchanged=True)
        table = _servable(store, version)
        record = Promotion(
            version=version,
            promoted_at=dt.datetime.now(dt.UTC),
            previous_version=previous.version if previous else None,
            data_as_of=data_as_of or table.facts.data_as_of,
        )
        return _Change(record, logged=True)

    return _change_service(store, change)


def rollback(store: ArtifactStore) -> Promotion:
    """Undo the promotion of the model in service: put back the one in service before it, as it
    stood then. Repeated rollbacks undo one promotion each, back to the first model, also when a
    model was promoted by hand a second time (its newest promotion is not the one to go back to).
    """

    def change(pointer: Tagged | None, log: list[Promotion]) -> _Change:
        in_service = _pointer_record(store, pointer)
        if in_service is None or in_service.previous_version is None:
            raise RegistryError("there is no earlier model to roll back to")
        # Where the promotion in service stands in the log (an older log without it: its end),
        # the newest record of its version and time that is not a rollback: two records may share
        # a timestamp (a coarse clock, a log written by hand), another version's or a rollback's.
        # A rollback record names a previous model only with `restores`, so it is never taken for
        # a promotion. One written before `restores` existed can be: its fields are those of a
        # promotion by hand (v1, v2, v1, then v2 rolled back or promoted by hand: v2 after v1 both
        # ways), which is undone one promotion at a time, so its next rollbacks visit v1, v2, v1.
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
        record = Promotion(
            version=version,
            promoted_at=dt.datetime.now(dt.UTC),
            previous_version=earlier.previous_version if earlier else None,
            data_as_of=(earlier.data_as_of if earlier else None) or table.facts.data_as_of,
            restores=earlier.original_promoted_at if earlier else None,
        )
        return _Change(record, logged=True)

    return _change_service(store, change)


class _Change(NamedTuple):
    """What a promotion or rollback puts in the pointer, and whether it is a new log record."""

    record: Promotion
    logged: bool
    #: The record is the pointer's own: nothing is written.
    unchanged: bool = False
    #: The record puts back what a damaged pointer held; the change asked for follows it.
    repairs: bool = False


def _change_service(
    store: ArtifactStore, change: Callable[[Tagged | None, list[Promotion]], _Change]
) -> Promotion:
    """Log and write the pointer that `change` makes of the pointer and the log it read, each
    only if still as read, else read both again and retry. Two promotions at once (the daily run
    and a command, two runs) would otherwise both name the same model as the one before theirs,
    and one record would be lost from the log. The log is written first and the pointer last:
    readers see the old model or the new one, and the model in service has its record in the log
    (the last one, unless another promotion is between its two writes or stopped there)."""
    for _ in _attempts():
        pointer = _read(store, keys.CURRENT_MODEL)
        log, log_tag = _read_log(store)
        made = change(pointer, log)
        if made.unchanged:
            return made.record
        # A conflict may be this write's own: a request whose answer timed out is sent again
        # (botocore retries it), and S3 answers the repeat 412, the first having changed the tag.
        # Whether the record is there says which: retrying it would log it twice, and taking it
        # out of the log would cut the way back past a model that is in service.
        if made.logged:
            try:
                store.put_if_unchanged(
                    PROMOTION_LOG, _LOG.dump_json([*log, made.record], indent=1), log_tag
                )
            except WriteConflict:
                if made.record not in _read_log(store)[0]:
                    continue
        try:
            store.put_if_unchanged(
                keys.CURRENT_MODEL,
                made.record.model_dump_json(indent=1).encode(),
                pointer.tag if pointer else None,
            )
        except WriteConflict:
            if not made.repairs and not _took_effect(store, made):
                continue
        if made.repairs:
            continue  # the pointer is sound again (this repair's or another's): now the change
        return made.record
    raise RegistryError(
        f"{keys.CURRENT_MODEL} in {store.uri} changed {WRITE_ATTEMPTS} times while this ran "
        "(other promotions at once); run it again"
    )


def _attempts() -> Iterator[int]:
    """`WRITE_ATTEMPTS` tries, apart by a short random pause (full jitter, doubling up to a
    second): promoters that collided do not collide again in step (S3's advice on a 409)."""
    for attempt in range(WRITE_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
        yield attempt


def _took_effect(store: ArtifactStore, made: _Change) -> bool:
    """Whether the change whose pointer write found the pointer changed is made all the same:
    the pointer holds its record (its own write landed, answered as a conflict), or a later
    promotion went on from it (a repair of a damaged pointer put it in service). If not, its log
    record is taken back, unless the pointer is damaged: the retry's repair may put it back."""
    try:
        in_service = current(store)
    except DamagedRecord:
        return False
    if in_service == made.record:
        return True
    return made.logged and not _unlog(store, made.record)


def _went_on_from(log: list[Promotion], record: Promotion) -> bool:
    """Whether a promotion logged after `record` named its model as the one before it (before
    another promotion of that model, which the later ones would go on from instead)."""
    if record not in log:
        return False
    for later in log[log.index(record) + 1 :]:
        if later.previous_version == record.version:
            return True
        if later.version == record.version:
            return False
    return False


def _unlog(store: ArtifactStore, record: Promotion) -> bool:
    """Take back the log record of a promotion whose pointer write lost to another promotion;
    False, keeping it, when a later promotion went on from its model (it was in service)."""
    for _ in _attempts():
        log, tag = _read_log(store)
        if _went_on_from(log, record):
            return False
        try:
            store.put_if_unchanged(
                PROMOTION_LOG, _LOG.dump_json([p for p in log if p != record], indent=1), tag
            )
            return True
        except WriteConflict:
            continue
    raise RegistryError(
        f"{PROMOTION_LOG} in {store.uri} kept changing: it still records a promotion of "
        f"{record.version!r} at {record.promoted_at.isoformat()} that did not happen"
    )


def _can_serve(store: ArtifactStore, version: str) -> bool:
    """Whether `version` can be put in service (`_servable` without the reason)."""
    try:
        _servable(store, version)
    except RegistryError:
        return False
    return True


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
        if version not in versions(store):
            # A mistyped version: "has no serving file" sent the user looking for a file.
            raise RegistryError(
                f"no model {version!r} in {store.uri} (`pokewatch models list` names them)"
            ) from None
        raise RegistryError(
            f"model {version!r} has no serving file; it cannot be put in service"
        ) from None
    except ServingFormatError as exc:
        # The API could not load it: every new cold start would answer 503.
        raise RegistryError(f"model {version!r} cannot be put in service: {exc}") from exc


def _read(store: ArtifactStore, key: str) -> Tagged | None:
    try:
        return store.get_tagged(key)
    except ArtifactNotFound:
        return None


def _read_log(store: ArtifactStore) -> tuple[list[Promotion], str | None]:
    """The promotion log and its tag (None: there is no log yet)."""
    found = _read(store, PROMOTION_LOG)
    if found is None:
        return [], None
    try:
        return _LOG.validate_json(found.data), found.tag
    except ValidationError as exc:
        raise DamagedRecord(
            f"{PROMOTION_LOG} in {store.uri} is not a promotion log "
            f"({problems(exc, whole='log')}); repair it, or move it aside to start a new one "
            "(a rollback then reaches back one model, to the one before the model in service)"
        ) from None
