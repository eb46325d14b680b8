"""The artifact store: the same keys in S3 (`s3://bucket/prefix`) or in a local directory."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.session import Session as BotocoreSession


class ArtifactNotFound(KeyError):
    """The key does not exist in the store."""


class WriteConflict(RuntimeError):
    """A conditional write found its key changed since it was read (another writer at once)."""


class Tagged(NamedTuple):
    """An object's bytes with the tag that a conditional write of it compares."""

    data: bytes
    tag: str


class ArtifactStore(Protocol):
    """Bytes by key; every put replaces the whole object atomically."""

    uri: str

    def get_bytes(self, key: str) -> bytes: ...

    def get_tagged(self, key: str) -> Tagged: ...

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    def put_if_unchanged(
        self, key: str, data: bytes, tag: str | None, content_type: str = "application/json"
    ) -> None:
        """Replace `key` only if it still has `tag` (None: only if it does not exist), else
        WriteConflict: a read-modify-write that loses no other writer's change."""
        ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


class LocalStore:
    """A directory on disk; writes go to a temporary file and are renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.uri = str(self.root)
        # The directory is made on the first write; a file in its place fails every read.
        existing = next(p for p in (self.root, *self.root.parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"store {self.uri}: {existing} is not a directory")

    def check_writable(self) -> None:
        """Make the directory and write (then remove) a file in it; OSError when that fails. A
        run on a read-only store failed every set's collection, then its own failure notice."""
        probe = self.root / ".write-check"
        self.root.mkdir(parents=True, exist_ok=True)
        self._replace(probe, b"")
        # Another run's check (two runs started at once) may have removed it already.
        probe.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(key) from None

    def get_tagged(self, key: str) -> Tagged:
        data = self.get_bytes(key)
        return Tagged(data, _digest(data))

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._replace(path, data)

    def put_if_unchanged(
        self, key: str, data: bytes, tag: str | None, content_type: str = "application/json"
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Conditional writers of a key take turns on a lock file beside it (other processes, and
        # other threads: each open file has its own lock); readers need none, renames are atomic.
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                found: str | None = _digest(path.read_bytes())
            except FileNotFoundError:
                found = None
            if found != tag:
                raise WriteConflict(key)
            self._replace(path, data)

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        """Write `data` to a temporary file beside `path` and rename it into place."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not base.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_folder(self, prefix: str) -> bool:
        """Remove the folder `prefix` (`features/dt=.../<run_id>/`) with all it holds, and its
        parent when that is left empty; whether it was there."""
        folder = self._path(prefix)
        if not prefix.endswith("/") or folder == self.root:
            raise ValueError(f"not a folder of the store: {prefix!r}")
        if not folder.is_dir():
            return False
        shutil.rmtree(folder)
        if folder.parent != self.root and not any(folder.parent.iterdir()):
            folder.parent.rmdir()
        return True


class S3Store:
    """An S3 bucket and optional prefix (botocore honours `AWS_ENDPOINT_URL`)."""

    #: Seconds to connect and of silence within a read before a retry (botocore waits 60): the
    #: API (10 s timeout) reads its model in a thread that a frozen Lambda environment can
    #: suspend mid-read, and must fail over to a new connection well within one request.
    TIMEOUT_SECONDS: ClassVar[float] = 3.0
    MAX_ATTEMPTS: ClassVar[int] = 3

    def __init__(self, bucket: str, prefix: str = "", client: BaseClient | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if client is None:
            from botocore.config import Config  # here: local use and injected clients never pay

            config = Config(
                connect_timeout=self.TIMEOUT_SECONDS,
                read_timeout=self.TIMEOUT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": self.MAX_ATTEMPTS},
            )
            with _CLIENT_CREATION:  # a botocore session is not safe to share while creating
                client = _aws_session().create_client("s3", config=config)
        self._s3 = client
        self._missing = self._s3.exceptions.NoSuchKey

    def get_bytes(self, key: str) -> bytes:
        return self.get_tagged(key).data

    def get_tagged(self, key: str) -> Tagged:
        try:
            found = self._s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self._missing:
            raise ArtifactNotFound(key) from None
        return Tagged(found["Body"].read(), found["ETag"])

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self._s3.put_object(
            Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type
        )

    def put_if_unchanged(
        self, key: str, data: bytes, tag: str | None, content_type: str = "application/json"
    ) -> None:
        # S3 conditional writes: 412 when the ETag differs (or the key exists, for "*"), 409 when
        # another conditional write of the key is in flight, 404 when it was deleted meanwhile.
        condition = {"IfMatch": tag} if tag is not None else {"IfNoneMatch": "*"}
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ContentType=content_type,
                **condition,
            )
        except self._s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                raise WriteConflict(key) from None
            raise

    def exists(self, key: str) -> bool:
        found = self._s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + key, MaxKeys=1)
        return any(o["Key"] == self.prefix + key for o in found.get("Contents", []))

    def list_keys(self, prefix: str) -> list[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        n = len(self.prefix)
        return sorted(o["Key"][n:] for page in pages for o in page.get("Contents", []))

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)


_CLIENT_CREATION = threading.Lock()


def _digest(data: bytes) -> str:
    """A local object's tag: its content's hash (what an S3 ETag is for a single-part upload)."""
    return hashlib.sha256(data).hexdigest()


@functools.cache
def _aws_session() -> BotocoreSession:
    """One botocore session per process, as boto3's default session is: its clients share the
    service models it has loaded. botocore rather than boto3, whose resources and transfer
    manager PokeWatch does not use and whose import costs the API's cold start ~25 ms."""
    import botocore.session

    return botocore.session.get_session()


def open_store(uri: str) -> ArtifactStore:
    """The store named by a URI: `s3://bucket[/prefix]` or a local directory path.

    ValueError for an empty URI or another scheme: read as a directory, "" is the working
    directory and `file:///x` a folder `file:` in it, each an empty store that runs write into."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise ValueError(f"store URI has no bucket: {uri!r}")
        return S3Store(parsed.netloc, parsed.path)
    if not uri.strip() or "://" in uri:
        raise ValueError(f"store {uri!r}: give a directory or s3://bucket[/prefix]")
    return LocalStore(uri)
