"""Validate: the quality gate between a candidate model and the model in service."""

from __future__ import annotations

import json

from pokewatch import registry
from pokewatch.backtest import BacktestMetrics
from pokewatch.model_metrics import (
    metrics_key,
    parse_model_metrics,
    read_model_metrics,
)
from pokewatch.quality_gate import GateDecision, evaluate_gate
from pokewatch.settings import Settings
from pokewatch.steps import GateResult, TrainedModel, ValidatedModel
from pokewatch.store import ArtifactNotFound, ArtifactStore, Tagged, WriteConflict

#: Reads of metrics.json when another validation of the same run writes it meanwhile: the
#: second read finds that verdict.
_ATTEMPTS = 2


class NotThisRunsModel(RuntimeError):
    """The event names a model version that its run did not train (another run's, or none)."""


def validate_model(
    candidate: TrainedModel, settings: Settings, store: ArtifactStore
) -> ValidatedModel:
    """Apply the gate to the model the candidate's run trained and write the verdict into its
    metrics.json, for the state machine's Choice.

    A verdict, once written, stands: a re-run of the step (a retry, a redriven execution) answers
    the recorded one, and the write is conditional on the file read, so two validations at once
    write one verdict. A version that another run trained is refused, its verdict untouched."""
    key = metrics_key(candidate.version)
    for _ in range(_ATTEMPTS):
        found = _read(store, key, candidate)
        metrics = parse_model_metrics(found, key)
        if (metrics.version, metrics.run.run_id) != (candidate.version, candidate.run.run_id):
            raise NotThisRunsModel(
                f"{key} is the model of run {metrics.run.run_id}, not of this run "
                f"({candidate.run.run_id}); validate judges only the model its own run trained"
            )
        if metrics.gate is not None:
            return _answer(candidate, metrics.gate)
        decision = evaluate_gate(
            metrics.backtest, _champion_backtest(store), settings, metrics.card_coverage
        )
        judged = {**json.loads(found.data), "gate": decision.model_dump(mode="json")}
        try:
            store.put_if_unchanged(key, json.dumps(judged, indent=1).encode(), found.tag)
        except WriteConflict:
            continue
        return _answer(candidate, decision)
    raise RuntimeError(f"{key} kept changing while this validation ran; run it again")


def _read(store: ArtifactStore, key: str, candidate: TrainedModel) -> Tagged:
    try:
        return store.get_tagged(key)
    except ArtifactNotFound:
        raise NotThisRunsModel(
            f"{key} not found in {store.uri}: run {candidate.run.run_id} trained no model "
            f"{candidate.version!r}"
        ) from None


def _answer(candidate: TrainedModel, decision: GateDecision) -> ValidatedModel:
    summary = "; ".join(decision.reasons) if decision.reasons else "all checks passed"
    return ValidatedModel(
        **candidate.model_dump(),
        gate=GateResult(passed=decision.passed, reasons=decision.reasons, summary=summary),
    )


def _champion_backtest(store: ArtifactStore) -> BacktestMetrics | None:
    """The backtest of the model in service; None when there is none or it has no metrics.json.
    A damaged one fails the step naming the file: judging without it would skip the check."""
    in_service = registry.current(store)
    if in_service is None:
        return None
    try:
        return read_model_metrics(store, in_service.version).backtest
    except ArtifactNotFound:
        return None
