"""Storage keys of the artifact store (SPEC section 3): one place that names them."""

from __future__ import annotations

import datetime as dt

CURRENT_MODEL = "models/current.json"
SERVING_FILE = "serving.bin"
#: The file of a model version holding who trained it, its backtest and the gate's verdict.
METRICS_FILE = "metrics.json"


def raw_partition(source: str, day: dt.date, set_id: str) -> str:
    """One collected snapshot of one set on one day."""
    return f"raw/source={source}/dt={day.isoformat()}/set={set_id}.parquet"


def raw_prefix(source: str) -> str:
    """Everything collected from one source."""
    return f"raw/source={source}/"


def features(run_day: dt.date, name: str = "table.parquet") -> str:
    """The training table of one run."""
    return f"features/dt={run_day.isoformat()}/{name}"


def model_artifact(version: str, name: str) -> str:
    """One file of one model version (`model.skops`, `metrics.json`, `serving.bin`, ...)."""
    return f"models/{version}/{name}"


def notification(execution: str, at: dt.datetime) -> str:
    """Where the local runtime keeps a notification it would have published to SNS."""
    return f"notifications/{at.strftime('%Y%m%dT%H%M%S%fZ')}-{execution}.json"
