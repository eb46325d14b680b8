"""Weekly statistics of the sample market next to those of the real data, as JSON.

    .venv/bin/python bench/calibrate_sample_market.py [--cards 1500] [--seed 7]

The fitted constants of `pokewatch.sources.sample` come from comparing these numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import pandas as pd

from pokewatch.sources.sample import SampleMarket, to_weekly, weekly_statistics

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tcgplayer_weekly_2024.csv.gz"
#: The simulated year: the span of the real data, after a year of the market's own history.
START, END = dt.date(2024, 1, 1), dt.date(2024, 12, 31)


def simulated_weekly(seed: int, n_cards: int) -> pd.DataFrame:
    """Weekly rows of every set of a sample market over the simulated year."""
    market = SampleMarket(seed=seed, n_cards=n_cards)
    daily = pd.concat(market.collect(s, START, END) for s in market.list_sets(END))
    return to_weekly(daily)


def real_weekly(path: Path = REAL_DATA) -> pd.DataFrame:
    """The real weekly table."""
    return pd.read_csv(path, usecols=["card_id", "date", "market_price", "volume"])


def main() -> None:
    """Print the statistics of both sides and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    simulated = weekly_statistics(simulated_weekly(args.seed, args.cards))
    seconds = time.perf_counter() - started
    real = weekly_statistics(real_weekly())
    report = {
        name: {
            "real": round(real[name], 4),
            "sample": round(simulated[name], 4),
            "ratio": round(simulated[name] / real[name], 3),
        }
        for name in real
    }
    print(
        json.dumps(
            {
                "cards": args.cards,
                "seed": args.seed,
                "simulate_seconds": round(seconds, 2),
                "statistics": report,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
