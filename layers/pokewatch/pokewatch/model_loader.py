"""Keeps the model in service loaded across warm invocations of the API function.

Cold start: read `models/current.json`, then the serving file it names (in the background from
`preload`, so that it overlaps with the rest of the cold start). Afterwards the pointer is
re-read at most every `ttl_seconds`, so a newly promoted model is served without a redeploy;
that re-read runs in the background while the table in hand answers, so no request waits on
the store (a slow read could otherwise outlast the function's timeout). In Lambda the
environment is frozen between invocations, so the new model is served from the first request
after the re-read completed (one or two requests after the TTL). A store error is asked again
after `retry_seconds`, not a whole TTL: the read may have been cut by such a freeze. A
broken or missing artifact never replaces a good table: the previous one keeps serving (health
says "degraded" with the reason); with nothing loaded yet, the API answers 503 with the reason and
the store is asked again after `retry_seconds` (short: a first model may appear at any time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from pokewatch import keys
from pokewatch.promotion import Promotion
from pokewatch.serving import ServingFormatError, ServingTable
from pokewatch.store import ArtifactNotFound, ArtifactStore
from pokewatch.validation import problems

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No model can be served; the message says why."""


@dataclass(frozen=True, slots=True)
class ServingState:
    """What the API serves now, and why it might not be the newest model."""

    table: ServingTable
    problem: str | None = None


class ModelLoader:
    """Loads the serving table of the model in service and refreshes it after a TTL."""

    def __init__(
        self,
        store_factory: Callable[[], ArtifactStore],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = 5.0,
    ) -> None:
        self._store_factory = store_factory
        self._store: ArtifactStore | None = None
        self._ttl = ttl_seconds
        self._retry = min(retry_seconds, ttl_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._state: ServingState | None = None
        self._problem: str | None = "no model is in service"
        self._next_check = float("-inf")

    def preload(self, then: Callable[[], None] | None = None) -> threading.Thread:
        """Open the store, then load the model in a background thread; the first `state()` waits
        for it.

        Called at a cold start, so that the network waits of reading the store overlap with
        what the process does meanwhile (the rest of its setup, the first request up to here).
        The store is opened here, in the caller's thread: an S3 client is CPU work (botocore's
        imports and data files) which, run in the background while the caller goes on importing,
        slows both down (they take turns on the GIL and on import locks; measured 1.9× the cold
        start floor against 1.45×). If it fails, the background load tries again and says why.
        `then` runs in that thread once the load is over, whether it succeeded or not."""
        # Without the lock: no other thread uses this loader before the one started below.
        try:
            self._open_store()
        except Exception as exc:  # the load reports it, with the state it leaves
            log.debug("store not opened before the preload: %s", exc)

        def load() -> None:
            try:
                self._refresh_if_due()
            finally:
                if then is not None:
                    then()

        thread = threading.Thread(target=load, name="model-preload", daemon=True)
        thread.start()
        return thread

    def state(self) -> ServingState:
        """The table to serve; raises ModelUnavailable when none could be loaded yet."""
        self._refresh_if_due()
        state = self._state
        if state is None:
            raise ModelUnavailable(self._problem)
        return state

    @property
    def retry_after_seconds(self) -> int:
        """When asking again may find a model (for a `Retry-After` header)."""
        return max(1, round(self._retry))

    def _refresh_if_due(self) -> None:
        if self._clock() < self._next_check:
            return
        if self._state is not None:
            self._refresh_in_background()
            return
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            if self._clock() >= self._next_check:
                self._refresh()

    def _refresh_in_background(self) -> None:
        """Refresh in a thread of its own, unless a refresh is already under way."""
        if not self._lock.acquire(blocking=False):
            return

        def refresh() -> None:
            try:
                if self._clock() >= self._next_check:
                    self._refresh()
            finally:
                self._lock.release()

        try:
            threading.Thread(target=refresh, name="model-refresh", daemon=True).start()
        except BaseException as exc:
            self._lock.release()  # or no refresh would ever run again
            if not isinstance(exc, RuntimeError):
                raise
            # No thread to spare ("can't start new thread"): the table in hand still answers,
            # and the next request tries again.
            log.warning("model refresh not started: %s", exc)

    def _refresh(self) -> None:
        current = self._state.table if self._state else None
        table, problem, transient = current, None, False
        try:
            version = self._pointer()
            if current is None or current.facts.model_version != version:
                table = self._load(version)
        except ArtifactNotFound as exc:
            problem = f"artifact not found: {exc.args[0]}"
        except ValidationError as exc:
            # One line for /health's detail, not pydantic's several with a documentation URL.
            problem = f"{keys.CURRENT_MODEL} is not a promotion record: {problems(exc, 'record')}"
        except ServingFormatError as exc:
            problem = f"model artifact is invalid: {exc}"
        except Exception as exc:  # any store failure must keep the old model serving
            problem = f"model store error: {type(exc).__name__}: {exc}"
            # Often a connection that went stale while Lambda froze the refresh: ask again soon.
            transient = True
        if problem:
            log.warning("model refresh failed: %s", problem)
        self._problem = problem
        self._state = ServingState(table, problem) if table else None
        soon = table is None or transient
        self._next_check = self._clock() + (self._retry if soon else self._ttl)

    def _open_store(self) -> ArtifactStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def _pointer(self) -> str:
        return Promotion.model_validate_json(
            self._open_store().get_bytes(keys.CURRENT_MODEL)
        ).version

    def _load(self, version: str) -> ServingTable:
        started = time.perf_counter()
        data = self._open_store().get_bytes(keys.model_artifact(version, keys.SERVING_FILE))
        table = ServingTable.from_bytes(data)
        if table.facts.model_version != version:
            raise ServingFormatError(
                f"serving file of {version!r} says it is {table.facts.model_version!r}"
            )
        log.info(
            "model %s loaded: %d cards, %d bytes in %.0f ms",
            version,
            table.card_count,
            len(data),
            (time.perf_counter() - started) * 1000,
        )
        return table
