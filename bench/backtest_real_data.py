"""The SPEC section 6 walk-forward backtest on the real weekly TCGplayer prices, as JSON.

    .venv/bin/python bench/backtest_real_data.py [--input ../shared/data/...csv.gz]
                                                 [--horizon-days 28]

Prints the backtest metrics, the SPEC section 9 goals with their measured ratios, the wall time
of reading and of the backtest (and the backtest's CPU time: on a shared machine the wall time
also counts other processes' turns), and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import pandas as pd

from pokewatch.backtest import metrics_of_pairs, walk_forward_pairs
from pokewatch.settings import Settings
from pokewatch.sources.csv_file import read_long_csv

DEFAULT_INPUT = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "tcgplayer_weekly_2024.csv.gz"
)


def history_from_arguments(description: str) -> tuple[Path, pd.DataFrame, Settings, float]:
    """The command line of a real-data benchmark (`--input`, `--horizon-days`): the input, the
    history read from it, the settings at that horizon, and the seconds the read took."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--horizon-days", type=int, default=28)
    args = parser.parse_args()
    settings = Settings(horizon_days=args.horizon_days)
    started = time.perf_counter()
    history = read_long_csv(
        args.input, settings.csv_max_bad_share, settings.price_spike_factor
    ).history
    return args.input, history, settings, time.perf_counter() - started


def main() -> None:
    """Run the backtest and print one JSON object."""
    source, history, settings, read_seconds = history_from_arguments(__doc__.splitlines()[0])

    started, started_cpu = time.perf_counter(), time.process_time()
    pairs = walk_forward_pairs(history, settings)
    metrics = metrics_of_pairs(pairs, settings)
    backtest_seconds = time.perf_counter() - started
    backtest_cpu_seconds = time.process_time() - started_cpu

    spread_model, spread_rule = metrics.signal_spread_model, metrics.signal_spread_rule
    goals = {
        "mape_ratio_to_naive": metrics.mape_model / metrics.mape_naive,
        "mape_goal_met": metrics.mape_model <= 0.95 * metrics.mape_naive,
        "interval_coverage_goal_met": 0.78 <= metrics.interval_coverage <= 0.82,
        "buy_share": metrics.buy_count / metrics.n_pairs,
        "sell_share": metrics.sell_count / metrics.n_pairs,
        "signal_spread_ratio": (
            spread_model / spread_rule if spread_model is not None and spread_rule else None
        ),
        "signal_goal_met": (
            spread_model is not None
            and spread_rule is not None
            and spread_model >= 1.5 * spread_rule
            and min(metrics.buy_count, metrics.sell_count) >= 0.01 * metrics.n_pairs
        ),
    }
    report = {
        "input": str(source),
        "rows": len(history),
        "cards": int(history["card_id"].nunique()),
        "metrics": metrics.model_dump(mode="json"),
        "goals": goals,
        "read_seconds": round(read_seconds, 2),
        "backtest_seconds": round(backtest_seconds, 2),
        "backtest_cpu_seconds": round(backtest_cpu_seconds, 2),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
