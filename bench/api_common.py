"""What the API benchmarks share: a realistic serving file and percentile arithmetic."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from api_fixtures import card_id_of, promote_model, serve_process  # noqa: E402, F401  (tests/ is not a package)

from pokewatch.store import ArtifactStore  # noqa: E402

#: A realistic model in service: 3,000 cards with 120 days of served history each.
CARDS, DAYS = 3000, 120

__all__ = ["CARDS", "DAYS", "ROOT", "card_id_of", "percentiles", "realistic_model"]


def realistic_model(store: ArtifactStore, version: str = "bench") -> None:
    """Write the serving file of a 3,000 × 120 model and put it in service."""
    promote_model(store, version, n_cards=CARDS, n_days=DAYS)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max of latencies in milliseconds, rounded to the microsecond."""
    ordered = sorted(samples_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 3),
    }
