"""Integer (card, day) keys of a price history: sorting and de-duplicating its rows by card and
date without ever comparing strings (on a daily history of many cards, the difference between
gigabytes and megabytes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Larger than any span of days in a history, so (card code, day) never collide on one key.
KEY_SPAN = 1 << 24


def epoch_days(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a datetime column (int64)."""
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def last_per_card_day(card_codes: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Positions of the rows ordered by (card code, day), one per (card, day): of repeated rows
    the last one wins (a later snapshot replaces an earlier one)."""
    key = card_codes.astype(np.int64) * KEY_SPAN + days
    order = np.argsort(key, kind="stable")
    key = key[order]
    last_of_key = np.empty(len(key), dtype=bool)
    last_of_key[:-1] = key[1:] != key[:-1]
    last_of_key[-1:] = True  # the last row is the last of its key (no row at all: nothing)
    return order[last_of_key]


def priced_card_days(history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions in `history` of its priced rows (market_price > 0), one per (card_id, date),
    ordered by card_id then date, and their card codes (numbered in card_id order). A source may
    repeat a day (re-collected snapshot): the last row wins, as in the store."""
    price = history["market_price"].to_numpy(dtype=np.float64)
    priced = np.flatnonzero((price > 0) & np.isfinite(price))
    # sort=True numbers the cards in string order, so code order is card_id order (a categorical
    # sorts by its categories: `load_raw_history` keeps them sorted).
    codes = pd.factorize(history["card_id"].take(priced), sort=True)[0]
    kept = last_per_card_day(codes, epoch_days(history["date"].take(priced)))
    return priced[kept], codes[kept]
