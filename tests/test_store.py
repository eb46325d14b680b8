"""The artifact store: the same keys and behaviour in a directory and in S3."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pokewatch.store import ArtifactNotFound, LocalStore, S3Store, WriteConflict, open_store


def test_put_get_list_delete(any_store: LocalStore | S3Store) -> None:
    any_store.put_bytes("raw/source=sample/dt=2026-01-01/set=a.parquet", b"a")
    any_store.put_bytes("raw/source=sample/dt=2026-01-02/set=a.parquet", b"b")
    any_store.put_bytes("models/current.json", b"{}")
    assert any_store.get_bytes("raw/source=sample/dt=2026-01-02/set=a.parquet") == b"b"
    assert any_store.list_keys("raw/source=sample/") == [
        "raw/source=sample/dt=2026-01-01/set=a.parquet",
        "raw/source=sample/dt=2026-01-02/set=a.parquet",
    ]
    assert any_store.exists("models/current.json")
    assert not any_store.exists("models/current")
    any_store.delete("models/current.json")
    assert not any_store.exists("models/current.json")


def test_overwrite_replaces_whole_object(any_store: LocalStore | S3Store) -> None:
    any_store.put_bytes("k/x.bin", b"long first version")
    any_store.put_bytes("k/x.bin", b"short")
    assert any_store.get_bytes("k/x.bin") == b"short"


def test_missing_key_is_artifact_not_found(any_store: LocalStore | S3Store) -> None:
    with pytest.raises(ArtifactNotFound):
        any_store.get_bytes("models/nope/metrics.json")
    assert any_store.list_keys("nothing/") == []


def test_local_store_leaves_no_temporary_files(local_store: LocalStore) -> None:
    local_store.put_bytes("a/b.json", b"1")
    files = [p.name for p in local_store.root.rglob("*") if p.is_file()]
    assert files == ["b.json"]


def test_a_writable_local_store_is_made_and_left_empty_by_its_check(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "new" / "store")
    store.check_writable()
    assert store.root.is_dir() and not any(store.root.iterdir())


def test_the_checks_of_two_runs_started_at_once_both_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other run's check falls between this one's write and its removal of the same probe:
    # this one failed with "cannot write there (No such file or directory)".
    store = LocalStore(tmp_path)
    other = LocalStore(tmp_path)
    write = LocalStore._replace
    interleaved: list[Path] = []

    def then_the_other_check(path: Path, data: bytes) -> None:
        write(path, data)
        if not interleaved:
            interleaved.append(path)
            other.check_writable()

    monkeypatch.setattr(LocalStore, "_replace", staticmethod(then_the_other_check))
    store.check_writable()
    assert interleaved and not any(tmp_path.iterdir())


def test_local_store_rejects_keys_outside_it(local_store: LocalStore) -> None:
    with pytest.raises(ValueError, match="escapes"):
        local_store.put_bytes("../outside.txt", b"x")


def test_open_store_by_uri(tmp_path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    with pytest.raises(ValueError, match="no bucket"):
        open_store("s3://")


@pytest.mark.parametrize("uri", ["", "  ", "file:///tmp/store", "S3://bucket", "gs://bucket"])
def test_a_store_uri_that_names_no_directory_or_bucket_is_refused(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Taken as a directory, "" was the working directory (a run wrote raw/, models/ into the
    # checkout) and "file:///tmp/store" a folder "file:" under it: both read as an empty store.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"a directory or s3://bucket\[/prefix\]"):
        open_store(uri)
    assert list(tmp_path.iterdir()) == []


def test_s3_store_fails_over_quickly_on_a_silent_connection(s3_store: S3Store) -> None:
    # The API reads its model in a thread a frozen Lambda environment can suspend mid-read.
    config = s3_store._s3.meta.config
    assert config.read_timeout == config.connect_timeout == S3Store.TIMEOUT_SECONDS <= 5
    assert config.retries == {"mode": "standard", "total_max_attempts": S3Store.MAX_ATTEMPTS}


def test_a_conditional_write_replaces_only_what_it_read(any_store: LocalStore | S3Store) -> None:
    any_store.put_if_unchanged("models/current.json", b"first", None)
    with pytest.raises(WriteConflict):  # "only if absent", but it is there
        any_store.put_if_unchanged("models/current.json", b"again", None)
    read = any_store.get_tagged("models/current.json")
    assert read.data == b"first"
    any_store.put_bytes("models/current.json", b"by another writer")
    with pytest.raises(WriteConflict):
        any_store.put_if_unchanged("models/current.json", b"second", read.tag)
    assert any_store.get_bytes("models/current.json") == b"by another writer"
    any_store.put_if_unchanged(
        "models/current.json", b"second", any_store.get_tagged("models/current.json").tag
    )
    assert any_store.get_bytes("models/current.json") == b"second"
    any_store.delete("models/current.json")
    with pytest.raises(WriteConflict):  # deleted since it was read
        any_store.put_if_unchanged("models/current.json", b"third", read.tag)


def test_local_conditional_writes_list_no_lock_file(local_store: LocalStore) -> None:
    local_store.put_if_unchanged("models/current.json", b"{}", None)
    assert local_store.list_keys("models/") == ["models/current.json"]


@pytest.mark.parametrize(
    ("code", "status", "conflict"),
    [
        ("PreconditionFailed", 412, True),  # the ETag changed, or "*" and the key exists
        ("ConditionalRequestConflict", 409, True),  # another conditional write in flight
        ("NoSuchKey", 404, True),  # deleted since it was read
        ("AccessDenied", 403, False),  # not a conflict: retrying would not help
    ],
)
def test_s3_conditional_write_errors_that_are_conflicts(
    s3_store: S3Store, code: str, status: int, conflict: bool
) -> None:
    # moto answers only 412 and 404; S3 also answers 409 when two conditional writes meet.
    with Stubber(s3_store._s3) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        expected = WriteConflict if conflict else ClientError
        with pytest.raises(expected):
            s3_store.put_if_unchanged("models/current.json", b"{}", '"etag"')
