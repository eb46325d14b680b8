"""How much better than the naive forecast a fair price could be on a history, as JSON.

    .venv/bin/python bench/model_bounds.py [--input ../shared/data/...csv.gz] [--horizon-days 28]

On the walk-forward pairs of the SPEC section 6 backtest, the MAPE of forecasts that know part of
the future, next to the naive forecast and the model:

- `market_oracle`: every card moves by the median actual log change of all cards at its origin;
- `set_oracle`: every card moves by the median actual log change of its set at its origin;
- `new_card_oracle`: cards released less than `NEW_CARD_DAYS` before the origin are forecast
  exactly, the others naively;

and the share of pairs whose actual forward return would make a perfect expected price call BUY
or SELL under the configured thresholds (the ceiling of the signal shares).

None of these is a model: they bound what the price history can give (docs/model.md). Nothing in
PokeWatch is chosen with them.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from backtest_real_data import history_from_arguments

from pokewatch.backtest import metrics_of_pairs, walk_forward_pairs

#: Cards younger than this at an origin count as new (their prices move most).
NEW_CARD_DAYS = 120


def _mape(predicted: pd.Series, actual: pd.Series) -> float:
    return float(((predicted - actual).abs() / actual).mean())


def _group_median_move(pairs: pd.DataFrame, by: list[str]) -> pd.Series:
    """Each pair's price moved by the median actual log change of its group."""
    change = np.log(pairs["actual_price"] / pairs["market_price"])
    median_move = change.groupby([pairs[c] for c in by]).transform("median")
    return pairs["market_price"] * np.exp(median_move)


def main() -> None:
    """Run the backtest, then print the bounds as one JSON object."""
    started = time.perf_counter()
    source, history, settings, _ = history_from_arguments(__doc__.splitlines()[0])
    pairs = walk_forward_pairs(history, settings)
    metrics = metrics_of_pairs(pairs, settings)

    cards = history.groupby("card_id", observed=True).agg(
        set_id=("set_id", "first"), release_date=("release_date", "first")
    )
    pairs = pairs.join(cards, on="card_id")
    actual = pairs["actual_price"]
    age_days = (pairs["origin"] - pd.to_datetime(pairs["release_date"])).dt.days
    new = (age_days < NEW_CARD_DAYS).to_numpy()
    forecasts = {
        "naive": pairs["market_price"],
        "model": pairs["fair_price"],
        "market_oracle": _group_median_move(pairs, ["origin"]),
        "set_oracle": _group_median_move(pairs, ["origin", "set_id"]),
        "new_card_oracle": actual.where(new, pairs["market_price"]),
    }
    naive = _mape(pairs["market_price"], actual)
    mape = {name: _mape(forecast, actual) for name, forecast in forecasts.items()}

    # A perfect expected price is the actual: BUY when price <= (1 + buy) * actual, that is a
    # forward return of at least 1 / (1 + buy) - 1; SELL likewise.
    forward = pairs["forward_return"]
    perfect_buy = forward >= 1 / (1 + settings.buy_threshold) - 1
    perfect_sell = forward <= 1 / (1 + settings.sell_threshold) - 1
    report = {
        "input": str(source),
        "horizon_days": settings.horizon_days,
        "n_pairs": metrics.n_pairs,
        "first_origin": str(metrics.first_origin),
        "last_origin": str(metrics.last_origin),
        "mape": {name: round(value, 5) for name, value in mape.items()},
        "mape_ratio_to_naive": {name: round(value / naive, 4) for name, value in mape.items()},
        "mape_goal_ratio": 0.95,
        "new_card_share": round(float(new.mean()), 4),
        "perfect_foresight_signal_share": {
            "buy": round(float(perfect_buy.mean()), 4),
            "sell": round(float(perfect_sell.mean()), 4),
        },
        "model_signal_share": {
            "buy": round(metrics.buy_count / metrics.n_pairs, 4),
            "sell": round(metrics.sell_count / metrics.n_pairs, 4),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
