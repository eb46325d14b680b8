"""Promote: put a model that passed the gate in service."""

from __future__ import annotations

from pokewatch import registry
from pokewatch.settings import Settings
from pokewatch.steps import Promotion, ValidatedModel
from pokewatch.store import ArtifactStore


class NotApproved(RuntimeError):
    """A model that did not pass the quality gate cannot be promoted."""


def promote_model(candidate: ValidatedModel, settings: Settings, store: ArtifactStore) -> Promotion:
    """Write `models/current.json` for the candidate, which must have passed the gate."""
    if not candidate.gate.passed:
        raise NotApproved(f"model {candidate.version} failed the gate: {candidate.gate.summary}")
    return registry.promote(store, candidate.version, data_as_of=candidate.dataset.data_as_of)
