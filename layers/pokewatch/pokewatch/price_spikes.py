"""Isolated price spikes: one observation of a card far from both of its neighbours, which agree.

A typo in an export (99,999 for a $5 card, a price in cents) is a single row that neither the
card's previous nor its next observation confirms. A real move (a reprint, a tournament) lasts:
the next observation is near it, so it is not isolated. One such row made every MAPE of the
backtest about 16 (the model's and the baselines' alike) and fed the model's training and the
served fair price; the features leave these rows out (`pokewatch.features`), and the csv source,
preprocess and the backtest name them.

A card's first and latest observations have one neighbour only and are never spikes: a latest
price is judged when the next one arrives.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pokewatch.card_day import priced_card_days

#: How many spikes a message names (the others are counted).
QUOTED_SPIKES = 5


def isolated_spikes(card_codes: np.ndarray, prices: np.ndarray, factor: float) -> np.ndarray:
    """Which rows are isolated spikes, of rows ordered by card then date with prices > 0: a price
    at least `factor` times above or below both the card's previous and next observations, which
    agree within √factor of each other (so the spike is further from each of them than they are
    from each other, squared: a card that moved for good is not one, whatever it passed on the
    way)."""
    spike = np.zeros(len(prices), dtype=bool)
    if len(prices) < 3:
        return spike
    log_price = np.log(prices)
    before, here, after = log_price[:-2], log_price[1:-1], log_price[2:]
    same_card = (card_codes[:-2] == card_codes[1:-1]) & (card_codes[1:-1] == card_codes[2:])
    limit = math.log(factor)
    spike[1:-1] = (
        same_card
        & (np.abs(here - before) >= limit)
        & (np.abs(here - after) >= limit)
        & (np.abs(after - before) < limit / 2)
    )
    return spike


def find_spikes(history: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The isolated spikes of a history table (of its priced rows, one per card and date, as
    `build_features` reads them), by card then date: `row` (the position in `history`),
    card_id, date, market_price and the card's `previous_price` and `next_price`."""
    rows, codes = priced_card_days(history)
    prices = history["market_price"].to_numpy(dtype=np.float64)[rows]
    at = np.flatnonzero(isolated_spikes(codes, prices, factor))
    return pd.DataFrame(
        {
            "row": rows[at],
            "card_id": history["card_id"].take(rows[at]).astype(str).to_numpy(),
            "date": history["date"].take(rows[at]).to_numpy(),
            "market_price": prices[at],
            "previous_price": prices[at - 1],
            "next_price": prices[at + 1],
        }
    )


def spikes_left_out(count: int, factor: float) -> str:
    """`2 isolated price spikes (...) left out of the features, training and backtest`."""
    return (
        f"{count} isolated price spike{'s' if count != 1 else ''} (a price ×{factor:g} or more "
        "away from both the card's previous and next prices, which agree) left out of the "
        "features, training and backtest"
    )


def describe_spikes(spikes: pd.DataFrame, factor: float, where: list[str] | None = None) -> str:
    """`spikes_left_out`, then `: <card> on <date> priced <p> between <a> and <b> [at <where>];
    ...`, naming the first `QUOTED_SPIKES` (`where`, aligned with `spikes`, says where each was
    read: a file and line)."""
    quoted = []
    for i, spike in enumerate(spikes.head(QUOTED_SPIKES).itertuples()):
        at = f" at {where[i]}" if where else ""
        quoted.append(
            f"{spike.card_id} on {pd.Timestamp(spike.date):%Y-%m-%d} priced "
            f"{spike.market_price:g} between {spike.previous_price:g} and {spike.next_price:g}{at}"
        )
    more = len(spikes) - QUOTED_SPIKES
    return (
        f"{spikes_left_out(len(spikes), factor)}: "
        + "; ".join(quoted)
        + (f"; and {more} more" if more > 0 else "")
    )
