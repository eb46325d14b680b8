"""Keeps the model in service loaded across warm invocations of the API function.

Cold start: read `models/current.json`, then the serving file it names. Afterwards the pointer is
re-read at most every `ttl_seconds`, so a newly promoted model is served without a redeploy. A
broken or missing artifact never replaces a good table: the previous one keeps serving (health
says "degraded" with the reason); with nothing loaded yet, the API answers 503 with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from pokewatch import keys
from pokewatch.serving import ServingFormatError, ServingTable
from pokewatch.steps import Promotion
from pokewatch.store import ArtifactNotFound, ArtifactStore


class ModelUnavailable(RuntimeError):
    """No model can be served; the message says why."""


@dataclass(frozen=True)
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
    ) -> None:
        self._store_factory = store_factory
        self._store: ArtifactStore | None = None
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._table: ServingTable | None = None
        self._problem: str | None = None
        self._checked_at: float | None = None

    def state(self) -> ServingState:
        """The table to serve; raises ModelUnavailable when none could ever be loaded."""
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._ttl:
            with self._lock:
                if self._checked_at is None or now - self._checked_at >= self._ttl:
                    self._refresh()
                    self._checked_at = now
        if self._table is None:
            raise ModelUnavailable(self._problem or "no model is in service")
        return ServingState(self._table, self._problem)

    def _refresh(self) -> None:
        try:
            store = self._store or self._store_factory()
            self._store = store
            pointer = Promotion.model_validate_json(store.get_bytes(keys.CURRENT_MODEL))
            if self._table is not None and self._table.facts.model_version == pointer.version:
                self._problem = None
                return
            data = store.get_bytes(keys.model_artifact(pointer.version, keys.SERVING_FILE))
            table = ServingTable.from_bytes(data)
        except ArtifactNotFound as exc:
            self._problem = f"artifact not found: {exc.args[0]}"
        except (ValidationError, ServingFormatError) as exc:
            self._problem = f"model artifact is invalid: {exc}"
        except Exception as exc:  # any store failure must keep the old model serving
            self._problem = f"model store error: {type(exc).__name__}: {exc}"
        else:
            self._table, self._problem = table, None
