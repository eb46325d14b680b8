"""The model registry: promotion is one pointer write, rollback walks back the log."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from api_fixtures import serving_bytes

from pokewatch import keys, registry
from pokewatch.promotion import Promotion
from pokewatch.store import LocalStore, S3Store


def _model(store: LocalStore | S3Store, version: str) -> None:
    store.put_bytes(keys.model_artifact(version, keys.SERVING_FILE), serving_bytes(version))
    store.put_bytes(keys.model_artifact(version, "metrics.json"), b'{"backtest": {}}')


def _promoted(store: LocalStore | S3Store, *versions: str) -> None:
    """Models `versions`, each put in service in turn."""
    for version in versions:
        _model(store, version)
        registry.promote(store, version)


def test_no_model_in_service_at_first(any_store: LocalStore | S3Store) -> None:
    assert registry.current(any_store) is None
    with pytest.raises(registry.RegistryError):
        registry.rollback(any_store)


def test_promote_then_rollback_walks_back(any_store: LocalStore | S3Store) -> None:
    _promoted(any_store, "v1", "v2", "v3")
    assert registry.current(any_store).version == "v3"
    assert registry.rollback(any_store).version == "v2"
    assert registry.rollback(any_store).version == "v1"
    with pytest.raises(registry.RegistryError, match="no earlier model"):
        registry.rollback(any_store)
    assert registry.current(any_store).version == "v1"


def test_promoting_the_model_in_service_again_keeps_the_way_back(
    any_store: LocalStore | S3Store,
) -> None:
    _promoted(any_store, "v1", "v2")
    first = registry.current(any_store)
    assert registry.promote(any_store, "v2") == first
    assert registry.current(any_store) == first
    assert registry.rollback(any_store).version == "v1"


def test_rollbacks_undo_a_manual_promotion_then_walk_back_to_the_first_model(
    any_store: LocalStore | S3Store,
) -> None:
    _promoted(any_store, "v1", "v2", "v3")
    registry.promote(any_store, "v2")  # by hand, while v3 is in service
    # Each rollback undoes one promotion: the manual one, then v3's, then v2's.
    assert [registry.rollback(any_store).version for _ in range(3)] == ["v3", "v2", "v1"]
    with pytest.raises(registry.RegistryError, match="no earlier model"):
        registry.rollback(any_store)


def test_a_rollback_after_a_rollback_and_a_promotion_walks_back_to_the_first_model(
    any_store: LocalStore | S3Store,
) -> None:
    _promoted(any_store, "v1", "v2")
    registry.rollback(any_store)
    _model(any_store, "v3")
    registry.promote(any_store, "v3")
    assert registry.rollback(any_store).version == "v1"
    with pytest.raises(registry.RegistryError, match="no earlier model"):
        registry.rollback(any_store)


def test_a_manual_promotion_records_the_data_date_of_its_serving_file(
    any_store: LocalStore | S3Store,
) -> None:
    _model(any_store, "v1")
    record = registry.promote(any_store, "v1")
    table_date = registry.ServingTable.from_bytes(serving_bytes("v1")).facts.data_as_of
    assert record.data_as_of == table_date


def test_cannot_promote_a_version_without_serving_file(any_store: LocalStore | S3Store) -> None:
    any_store.put_bytes(keys.model_artifact("partial", "metrics.json"), b'{"backtest": {}}')
    with pytest.raises(registry.RegistryError, match="'partial' has no serving file"):
        registry.promote(any_store, "partial")
    assert registry.current(any_store) is None


def test_promoting_a_version_not_in_the_store_says_there_is_no_such_model(
    any_store: LocalStore | S3Store,
) -> None:
    # A mistyped version was said to have "no serving file", as if the model were damaged.
    _model(any_store, "v1")
    with pytest.raises(registry.RegistryError) as refused:
        registry.promote(any_store, "v2")
    assert str(refused.value) == (
        f"no model 'v2' in {any_store.uri} (`pokewatch models list` names them)"
    )
    assert registry.current(any_store) is None


@pytest.mark.parametrize(
    ("serving", "reason"),
    [(b"PKWSERVING9\n....", "format b'9'"), (b"<html>", "bad magic")],
)
def test_cannot_put_in_service_a_serving_file_the_api_cannot_read(
    any_store: LocalStore | S3Store, serving: bytes, reason: str
) -> None:
    _model(any_store, "v1")
    registry.promote(any_store, "v1")
    any_store.put_bytes(keys.model_artifact("v2", keys.SERVING_FILE), serving)
    with pytest.raises(registry.RegistryError, match=reason):
        registry.promote(any_store, "v2")
    assert registry.current(any_store).version == "v1"


def test_list_marks_the_model_in_service(any_store: LocalStore | S3Store) -> None:
    _model(any_store, "v1")
    _model(any_store, "v2")
    registry.promote(any_store, "v1")
    listed = {m.version: m for m in registry.list_models(any_store)}
    assert set(listed) == {"v1", "v2"}
    assert listed["v1"].in_service and not listed["v2"].in_service
    assert listed["v2"].metrics == {"backtest": {}}


@pytest.mark.parametrize("version", ["../../etc", "v1/../v1", "", ".."])
def test_a_version_that_is_not_one_key_segment_is_refused(
    any_store: LocalStore | S3Store, version: str
) -> None:
    # A local store raised a bare ValueError (key escapes the store): a traceback in the CLI.
    _model(any_store, "v1")
    with pytest.raises(registry.RegistryError, match="not a model version"):
        registry.promote(any_store, version)
    assert registry.current(any_store) is None


@pytest.mark.parametrize("record", [b"garbage", b"{}", b'{"version": 3}'])
def test_a_damaged_pointer_is_named_and_a_promotion_replaces_it(
    local_store: LocalStore, record: bytes
) -> None:
    # A hand-edited or truncated models/current.json was a pydantic traceback in every command.
    for version in ("v1", "v2"):
        _model(local_store, version)
    registry.promote(local_store, "v1")
    local_store.put_bytes(keys.CURRENT_MODEL, record)
    for read in (registry.current, registry.list_models, registry.rollback):
        with pytest.raises(registry.RegistryError, match=f"{keys.CURRENT_MODEL} .*models promote"):
            read(local_store)
    # Promoting is the way to repair it; the log holds the model it named (v1), the way back.
    assert registry.promote(local_store, "v2").previous_version == "v1"
    assert registry.current(local_store).version == "v2"
    assert registry.rollback(local_store).version == "v1"


@pytest.mark.parametrize(
    ("version", "walked_back"), [("v3", ["v2", "v1"]), ("v4", ["v3", "v2", "v1"])]
)
def test_repairing_a_damaged_pointer_keeps_the_way_back_of_the_log(
    local_store: LocalStore, version: str, walked_back: list[str]
) -> None:
    # The repair was a promotion with no previous model: every rollback after it said
    # "no earlier model", though the log held them all.
    for made in ("v1", "v2", "v3", "v4"):
        _model(local_store, made)
    for promoted in ("v1", "v2", "v3"):
        registry.promote(local_store, promoted)
    in_service = registry.current(local_store)
    local_store.put_bytes(keys.CURRENT_MODEL, b'{"version": "v3", "promot')
    repaired = registry.promote(local_store, version)
    if version == "v3":  # the model it named is put back as it was
        assert repaired == registry.current(local_store) == in_service
    assert [registry.rollback(local_store).version for _ in walked_back] == walked_back
    with pytest.raises(registry.RegistryError, match="no earlier model"):
        registry.rollback(local_store)


def test_a_damaged_promotion_log_or_metrics_file_is_named(local_store: LocalStore) -> None:
    _promoted(local_store, "v1", "v2")
    for damaged in (
        b"{truncated",
        b"[]",
        b'"metrics"',
        b'{"backtest": []}',
        b'{"gate": 1}',
        b'{"backtest": {"mape_model": "0.1", "mape_naive": 0.2}}',
        b'{"backtest": {"mape_model": 0.1, "mape_naive": null}}',
    ):
        # JSON of another shape was a pydantic traceback, or an AttributeError in the CLI.
        local_store.put_bytes(keys.model_artifact("v1", "metrics.json"), damaged)
        assert [m.metrics for m in registry.list_models(local_store)] == [None, {"backtest": {}}]
    local_store.put_bytes(registry.PROMOTION_LOG, b"[{")
    # Every promotion fails, the pipeline's too, until it is repaired: the error says how.
    for change in (registry.rollback, lambda store: registry.promote(store, "v1")):
        with pytest.raises(registry.RegistryError, match=f"{registry.PROMOTION_LOG} .*move it"):
            change(local_store)
    local_store.delete(registry.PROMOTION_LOG)
    assert registry.promote(local_store, "v1").previous_version == "v2"


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every promotion at one moment, as a coarse clock or a log written by hand may give."""
    moment = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(registry, "dt", SimpleNamespace(datetime=Frozen, UTC=dt.UTC))


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize(
    ("by_hand", "rolled_back_to"),
    [(None, ["v2", "v1"]), ("v2", ["v3", "v2", "v1"])],
    ids=["promotions", "and a manual one"],
)
def test_rollbacks_walk_back_when_promotions_share_a_timestamp(
    local_store: LocalStore, by_hand: str | None, rolled_back_to: list[str]
) -> None:
    # The promotion in service was looked up by its timestamp alone, found at the first record
    # of that time (another version's): the way back was lost, or rollbacks bounced.
    _promoted(local_store, "v1", "v2", "v3")
    if by_hand:
        registry.promote(local_store, by_hand)
    assert [registry.rollback(local_store).version for _ in rolled_back_to] == rolled_back_to
    with pytest.raises(registry.RegistryError, match="no earlier model"):
        registry.rollback(local_store)


class _PromotedMeanwhile:
    """A store on which another writer promotes `version` just before this writer's first write
    of `key`, i.e. between its read and its write, as a promotion running at once would."""

    def __init__(self, store: LocalStore | S3Store, key: str, version: str) -> None:
        self._store, self._key, self._version = store, key, version

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def _before_write(self, key: str) -> None:
        if key == self._key and self._version:
            version, self._version = self._version, ""
            registry.promote(self._store, version)

    def put_bytes(self, key: str, *args: object, **kwargs: object) -> None:
        self._before_write(key)
        self._store.put_bytes(key, *args, **kwargs)

    def put_if_unchanged(self, key: str, *args: object, **kwargs: object) -> None:
        self._before_write(key)
        self._store.put_if_unchanged(key, *args, **kwargs)


@pytest.mark.parametrize("key", [registry.PROMOTION_LOG, keys.CURRENT_MODEL])
def test_a_promotion_made_meanwhile_is_neither_lost_nor_skipped(
    any_store: LocalStore | S3Store, key: str
) -> None:
    # Each write replaced what the other had read: the log lost one promotion's record, and the
    # pointer named as the model before v2 the one before them both (v1), skipping v3.
    _promoted(any_store, "v1")
    _model(any_store, "v2")
    _model(any_store, "v3")
    registry.promote(_PromotedMeanwhile(any_store, key, "v3"), "v2")
    in_service = registry.current(any_store)
    assert (in_service.version, in_service.previous_version) == ("v2", "v3")
    log = registry._read_log(any_store)[0]
    assert [(p.version, p.previous_version) for p in log] == [
        ("v1", None),
        ("v3", "v1"),
        ("v2", "v3"),
    ]
    assert [registry.rollback(any_store).version for _ in range(2)] == ["v3", "v1"]


def test_promotions_at_once_each_stay_on_the_way_back(local_store: LocalStore) -> None:
    racing = [f"v{n}" for n in range(2, 6)]
    _promoted(local_store, "v1")
    for version in racing:
        _model(local_store, version)
    start = threading.Barrier(len(racing))

    def promote(version: str) -> None:
        start.wait()
        registry.promote(local_store, version)

    with ThreadPoolExecutor(len(racing)) as pool:
        list(pool.map(promote, racing))
    walked_back = [registry.current(local_store).version]
    while registry.current(local_store).previous_version:
        walked_back.append(registry.rollback(local_store).version)
    assert sorted(walked_back) == ["v1", *racing]


def _first_put_of_key_retried(store: S3Store, key: str) -> None:
    """Make botocore send the first PUT of `key` again after it has landed, as its retry of a
    request whose answer timed out (3 s) does: S3 answers the repeat 412, its ETag has changed."""
    retried: list[str] = []

    def needs_retry(request_dict: dict, **_: object) -> int | None:
        if request_dict["url_path"].endswith("/" + key) and not retried:
            retried.append(key)
            return 0  # seconds to wait before the retry
        return None

    store._s3.meta.events.register_first("needs-retry.s3.PutObject", needs_retry)


@pytest.mark.parametrize("key", [registry.PROMOTION_LOG, keys.CURRENT_MODEL])
def test_a_write_that_landed_but_was_answered_as_a_conflict_is_kept(
    s3_store: S3Store, key: str
) -> None:
    # The pointer's: the record was taken out of the log while its model went in service, so a
    # rollback from the next model could not go back past it. The log's: a second record.
    _promoted(s3_store, "v1")
    _model(s3_store, "v2")
    _model(s3_store, "v3")
    _first_put_of_key_retried(s3_store, key)
    promoted = registry.promote(s3_store, "v2")
    assert registry.current(s3_store) == promoted
    assert registry._read_log(s3_store)[0][-1] == promoted
    assert [p.version for p in registry._read_log(s3_store)[0]] == ["v1", "v2"]
    registry.promote(s3_store, "v3")
    assert [registry.rollback(s3_store).version for _ in range(2)] == ["v2", "v1"]


class _AtPointerWrite:
    """A store on which `meanwhile` runs just before this writer's first write of the pointer
    after its log write: between the two writes of a promotion."""

    def __init__(self, store: LocalStore | S3Store, meanwhile: Callable[[], object]) -> None:
        self._store, self._meanwhile, self._logged = store, meanwhile, False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def put_if_unchanged(self, key: str, *args: object, **kwargs: object) -> None:
        if key == registry.PROMOTION_LOG:
            self._logged = True
        elif self._logged and self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        self._store.put_if_unchanged(key, *args, **kwargs)


@pytest.mark.parametrize("damaged", ["before", "between its writes"])
def test_a_repair_during_another_promotion_names_only_models_that_were_in_service(
    any_store: LocalStore | S3Store, damaged: str
) -> None:
    # The repair took the log's last record for what the pointer held: the other promotion's,
    # whose pointer write then lost and took it out of the log. The repair named as the model
    # before it one never in service, with no record: the way back stopped there.
    _promoted(any_store, "v1", "v2")
    _model(any_store, "v3")
    _model(any_store, "v4")

    def damage() -> None:
        any_store.put_bytes(keys.CURRENT_MODEL, b'{"version": "v2", "promot')

    if damaged == "before":
        damage()
    served = _PointerWrites(any_store)

    def repair() -> None:
        if damaged != "before":
            damage()
        registry.promote(served, "v4")

    registry.promote(_AtPointerWrite(served, repair), "v3")
    walked_back = [registry.rollback(any_store).version for _ in range(3)]
    assert (
        walked_back
        == {
            "before": ["v4", "v2", "v1"],  # v3's promotion lost to v4's and went on after it
            "between its writes": ["v3", "v2", "v1"],  # the repair put v3 in service, then v4
        }[damaged]
    )
    assert set(walked_back) <= served.versions
    with pytest.raises(registry.RegistryError, match="no earlier model"):
        registry.rollback(any_store)


class _PointerWrites:
    """A store that records each version it writes into the pointer."""

    def __init__(self, store: LocalStore | S3Store) -> None:
        self._store, self.versions = store, {"v1", "v2"}

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def put_if_unchanged(self, key: str, data: bytes, *args: object, **kwargs: object) -> None:
        self._store.put_if_unchanged(key, data, *args, **kwargs)
        if key == keys.CURRENT_MODEL:
            self.versions.add(Promotion.model_validate_json(data).version)
