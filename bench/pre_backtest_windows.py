"""The model judged on windows that end before the backtest's first origin, as JSON.

    .venv/bin/python bench/pre_backtest_windows.py [--input ../shared/data/...csv.gz]
                                                   [--horizon-days 28]

Issue #4 asks that features and settings be chosen on validation windows that end before the
backtest's origins. This is that protocol, kept in code so that its numbers (docs/model.md) can be
reproduced and a change to the model judged on them before anyone looks at the backtest:

- cuts every `CUT_SPACING_DAYS` days, the last a horizon before the backtest's first origin;
- at each cut the model is fitted on the rows whose target was known by then, as a walk-forward
  refit is, but holding out `WINDOW_VALIDATION_DAYS` days instead of the shipped 56: the first
  months of a history are too short for more;
- it is judged on every pair (a card's price at a weekly origin, `priced_at`) whose actual was not
  known at the cut and lies before the backtest's first origin, with the metrics of the backtest.

The windows overlap and their pairs are correlated: read them together, with the spread of the
windows, not as four independent checks. Nothing in PokeWatch reads this script's output.
"""

from __future__ import annotations

import json
import statistics
import time

import pandas as pd
from backtest_real_data import history_from_arguments

from pokewatch.backtest import (
    current_price_days,
    metrics_of_pairs,
    origin_dates,
    predicted_pairs,
    priced_at,
    with_signals,
)
from pokewatch.fair_price_model import FairPriceModel, NotEnoughHistory
from pokewatch.features import build_features
from pokewatch.settings import Settings

#: Cuts judged, at most (fewer when the history before the backtest is short).
WINDOWS = 4
CUT_SPACING_DAYS = 14
#: Days each window's fit holds out to choose its configuration and calibrate its interval.
WINDOW_VALIDATION_DAYS = 14


def window_pairs(
    features: pd.DataFrame, cut: pd.Timestamp, end: pd.Timestamp, settings: Settings
) -> pd.DataFrame:
    """The pairs of the window at `cut`, predicted by a model fitted on targets known by `cut`:
    weekly origins up to `end` whose actual is after `cut` and before `end`."""
    model = FairPriceModel(
        settings.horizon_days,
        settings.interval_level,
        validation_days=WINDOW_VALIDATION_DAYS,
        max_train_rows=settings.model_max_train_rows,
    ).fit(features, known_by=cut)
    step = pd.Timedelta(days=settings.backtest_origin_step_days)
    origin, frames = end - step, []
    while origin > cut - pd.Timedelta(days=settings.horizon_days + 7):
        at_origin = priced_at(features, origin, current_price_days(settings))
        judged = at_origin[(at_origin["target_date"] > cut) & (at_origin["target_date"] < end)]
        if not judged.empty:
            frames.append(predicted_pairs(model, judged, origin, cut))
        origin -= step
    if not frames:
        raise NotEnoughHistory(f"no pair has its actual between {cut.date()} and {end.date()}")
    return with_signals(pd.concat(frames, ignore_index=True), settings)


def main() -> None:
    """Fit and judge every window, then print one JSON object."""
    started = time.perf_counter()
    source, history, settings, _ = history_from_arguments(__doc__.splitlines()[0])
    features = build_features(history, settings.horizon_days, settings.price_spike_factor)
    first_origin = origin_dates(features, settings)[0]
    last_cut = first_origin - pd.Timedelta(days=settings.horizon_days)
    windows: list[dict] = []
    for k in reversed(range(WINDOWS)):
        cut = last_cut - pd.Timedelta(days=k * CUT_SPACING_DAYS)
        try:
            pairs = window_pairs(features, cut, first_origin, settings)
        except NotEnoughHistory as exc:
            windows.append({"cut": str(cut.date()), "skipped": str(exc)})
            continue
        metrics = metrics_of_pairs(pairs, settings)
        expected_ape = ((pairs["expected_price"] - pairs["actual_price"]).abs()).div(
            pairs["actual_price"]
        )
        windows.append(
            {
                "cut": str(cut.date()),
                "origins": [str(metrics.first_origin), str(metrics.last_origin)],
                "n_pairs": metrics.n_pairs,
                "mape_ratio_to_naive": metrics.mape_model / metrics.mape_naive,
                "expected_price_mape_ratio_to_naive": float(expected_ape.mean())
                / metrics.mape_naive,
                "rolling_mean_3_ratio_to_naive": metrics.mape_rolling_mean_3 / metrics.mape_naive,
                "interval_coverage": metrics.interval_coverage,
                "buy_share": metrics.buy_count / metrics.n_pairs,
                "sell_share": metrics.sell_count / metrics.n_pairs,
                "signal_spread_model": metrics.signal_spread_model,
                "signal_spread_rule": metrics.signal_spread_rule,
            }
        )
    judged = [w for w in windows if "skipped" not in w]
    keys = [k for k in judged[0] if k not in ("cut", "origins", "n_pairs")] if judged else []
    report = {
        "input": str(source),
        "horizon_days": settings.horizon_days,
        "backtest_first_origin": str(first_origin.date()),
        "windows": windows,
        "mean": {
            k: statistics.fmean(w[k] for w in judged if w[k] is not None)
            for k in keys
            if any(w[k] is not None for w in judged)
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
