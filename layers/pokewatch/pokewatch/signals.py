"""The BUY / HOLD / SELL rule of the original system (SPEC section 6), on the expected price.

The rule is the original one; its reference is the model's *expected* (mean) price over the
horizon rather than the fair (median) price: the median of a card's price in four weeks is
today's price for nearly every card, so a signal on it almost never fires, while the mean carries
the asymmetric moves a collector can act on (docs/model.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class Signal(StrEnum):
    """What a collector should do at a price."""

    BUY = "BUY"
    HOLD = "HOLD"
    SELL = "SELL"


def deviation_pct[P: (float, pd.Series)](market_price: P, reference_price: P) -> P:
    """How far a price is above (+) or below (−) the reference price, as a fraction of it: of
    one price (the API) or of a column of them (the backtest and the report)."""
    return (market_price - reference_price) / reference_price


def signal_of(deviation: float, buy_threshold: float, sell_threshold: float) -> Signal:
    """BUY at or below `buy_threshold`, SELL at or above `sell_threshold`, else HOLD."""
    if deviation <= buy_threshold:
        return Signal.BUY
    if deviation >= sell_threshold:
        return Signal.SELL
    return Signal.HOLD
