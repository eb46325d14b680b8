"""Synthetic weekly markets whose truth is known, for the backtest and the command line, and
the quality gate opened for tests of plumbing on markets too small to judge a model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pokewatch.sources.base import normalise_history

#: Settings (as environment) under which every model passes the quality gate: tests of how the
#: pipeline's parts fit together run on a few dozen sample cards, whose backtest says nothing.
OPEN_GATE = {
    "POKEWATCH_MAX_MAPE": "10",
    "POKEWATCH_MIN_CARD_COVERAGE": "0",
    "POKEWATCH_NAIVE_TOLERANCE": "10",
    "POKEWATCH_CHAMPION_TOLERANCE": "10",
    "POKEWATCH_INTERVAL_COVERAGE_TOLERANCE": "1",
}


def synthetic_market(
    seed: int, cards: int, weeks: int, reversion: float, volatility: float
) -> pd.DataFrame:
    """Weekly prices: a log deviation from a fixed fair value that keeps `reversion` of itself
    each week (0: pure noise around the value, 1: a random walk) plus Gaussian shocks."""
    rng = np.random.default_rng(seed)
    value = rng.uniform(np.log(2), np.log(200), size=cards)
    deviation = rng.normal(0, volatility, size=cards)
    dates = pd.date_range("2023-01-02", periods=weeks, freq="7D")
    frames = []
    for date in dates:
        deviation = reversion * deviation + rng.normal(0, volatility, size=cards)
        frames.append(
            pd.DataFrame(
                {
                    "card_id": [f"s{i % 3}-{i}_normal" for i in range(cards)],
                    "set_id": [f"s{i % 3}" for i in range(cards)],
                    "rarity": np.where(np.arange(cards) % 2, "Rare", "Common"),
                    "variant": "normal",
                    "release_date": "2020-01-01",
                    "date": date,
                    "market_price": np.round(np.exp(value + deviation), 2),
                    "volume": rng.integers(0, 5, size=cards),
                }
            )
        )
    return normalise_history(pd.concat(frames, ignore_index=True))
