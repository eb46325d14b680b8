"""Promote: put a model that passed the gate in service."""

from __future__ import annotations

import json

from pokewatch import keys, registry
from pokewatch.promotion import Promotion
from pokewatch.settings import Settings
from pokewatch.steps import ValidatedModel
from pokewatch.store import ArtifactStore


class NotApproved(RuntimeError):
    """A model that did not pass the quality gate cannot be promoted."""


def promote_model(candidate: ValidatedModel, settings: Settings, store: ArtifactStore) -> Promotion:
    """Write `models/current.json` for the candidate, which must have passed the gate: both the
    event and the verdict the validate step wrote into metrics.json must say so."""
    metrics = json.loads(store.get_bytes(keys.model_artifact(candidate.version, "metrics.json")))
    if not (candidate.gate.passed and metrics.get("gate", {}).get("passed")):
        raise NotApproved(
            f"model {candidate.version} did not pass the gate: {candidate.gate.summary}"
        )
    return registry.promote(store, candidate.version, data_as_of=candidate.dataset.data_as_of)
