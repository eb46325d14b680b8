"""Promote: put a model that passed the gate in service."""

from __future__ import annotations

from pokewatch import registry
from pokewatch.model_metrics import read_model_metrics
from pokewatch.promotion import Promotion
from pokewatch.settings import Settings
from pokewatch.steps import ValidatedModel
from pokewatch.store import ArtifactStore


class NotApproved(RuntimeError):
    """A model that did not pass the quality gate cannot be promoted."""


def promote_model(candidate: ValidatedModel, settings: Settings, store: ArtifactStore) -> Promotion:
    """Write `models/current.json` for the candidate, which must have passed the gate: the event
    and the verdict the validate step wrote into metrics.json must both say so, and the model
    must be the one the event's run trained (an event naming an older model that once passed
    would otherwise put it back in service; `pokewatch models promote` is the way to do that)."""
    metrics = read_model_metrics(store, candidate.version)
    if metrics.run.run_id != candidate.run.run_id:
        raise NotApproved(
            f"model {candidate.version} was trained by run {metrics.run.run_id}, "
            f"not by this run ({candidate.run.run_id})"
        )
    if not (candidate.gate.passed and metrics.gate is not None and metrics.gate.passed):
        raise NotApproved(
            f"model {candidate.version} did not pass the gate: {candidate.gate.summary}"
        )
    return registry.promote(store, candidate.version, data_as_of=candidate.dataset.data_as_of)
