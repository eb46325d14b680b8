"""Validate: the quality gate between a candidate model and the model in service."""

from __future__ import annotations

import json

from pokewatch import keys, registry
from pokewatch.backtest import BacktestMetrics
from pokewatch.quality_gate import evaluate_gate
from pokewatch.settings import Settings
from pokewatch.steps import GateResult, TrainedModel, ValidatedModel
from pokewatch.store import ArtifactNotFound, ArtifactStore


def validate_model(
    candidate: TrainedModel, settings: Settings, store: ArtifactStore
) -> ValidatedModel:
    """Apply the gate; the verdict and its reasons are written into the candidate's metrics.json
    and returned for the state machine's Choice."""
    metrics_key = keys.model_artifact(candidate.version, "metrics.json")
    metrics = json.loads(store.get_bytes(metrics_key))
    champion = _champion_backtest(store)
    decision = evaluate_gate(
        BacktestMetrics.model_validate(metrics["backtest"]),
        champion,
        settings,
        card_coverage=float(metrics["card_coverage"]),
    )
    metrics["gate"] = decision.model_dump(mode="json")
    store.put_bytes(metrics_key, json.dumps(metrics, indent=1).encode(), "application/json")
    summary = "; ".join(decision.reasons) if decision.reasons else "all checks passed"
    return ValidatedModel(
        **candidate.model_dump(),
        gate=GateResult(passed=decision.passed, reasons=decision.reasons, summary=summary),
    )


def _champion_backtest(store: ArtifactStore) -> BacktestMetrics | None:
    in_service = registry.current(store)
    if in_service is None:
        return None
    try:
        metrics = json.loads(
            store.get_bytes(keys.model_artifact(in_service.version, "metrics.json"))
        )
    except ArtifactNotFound:
        return None
    return BacktestMetrics.model_validate(metrics["backtest"])
