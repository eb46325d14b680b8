"""A model's metrics.json as the pipeline reads it: who trained it, its backtest, its verdict.

The train step writes the file and the validate step adds the gate's verdict; validate and
promote read it back through `read_model_metrics`, so a damaged file fails with one message
naming it and its bad fields, never a bare `KeyError`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from pokewatch import keys
from pokewatch.backtest import BacktestMetrics
from pokewatch.quality_gate import GateDecision
from pokewatch.store import ArtifactStore, Tagged
from pokewatch.validation import problems


class TrainingRun(BaseModel):
    """The pipeline run that trained a model."""

    run_id: str


class ModelMetrics(BaseModel):
    """What the pipeline reads of a metrics.json; the rest of the file is kept as written."""

    model_config = ConfigDict(extra="allow")

    version: str
    run: TrainingRun
    backtest: BacktestMetrics
    card_coverage: float
    gate: GateDecision | None = None


def metrics_key(version: str) -> str:
    """The store key of `version`'s metrics.json."""
    return keys.model_artifact(version, keys.METRICS_FILE)


def parse_model_metrics(found: Tagged, key: str) -> ModelMetrics:
    """The metrics in `found` (read from `key`); a ValueError naming the file and its bad fields."""
    try:
        return ModelMetrics.model_validate_json(found.data)
    except ValidationError as exc:
        raise ValueError(
            f"{key} is not a model's metrics ({problems(exc, whole='file')})"
        ) from None


def read_model_metrics(store: ArtifactStore, version: str) -> ModelMetrics:
    """`version`'s metrics.json; `ArtifactNotFound` when it has none, ValueError when damaged."""
    key = metrics_key(version)
    return parse_model_metrics(store.get_tagged(key), key)
