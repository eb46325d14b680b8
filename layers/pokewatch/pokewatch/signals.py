"""The BUY / HOLD / SELL rule of the original system, on the new fair price (SPEC section 6)."""

from __future__ import annotations

from enum import StrEnum


class Signal(StrEnum):
    """What a collector should do at a price."""

    BUY = "BUY"
    HOLD = "HOLD"
    SELL = "SELL"


def deviation_pct(market_price: float, fair_price: float) -> float:
    """How far a price is above (+) or below (−) the fair price, as a fraction of it."""
    return (market_price - fair_price) / fair_price


def signal_of(deviation: float, buy_threshold: float, sell_threshold: float) -> Signal:
    """BUY at or below `buy_threshold`, SELL at or above `sell_threshold`, else HOLD."""
    if deviation <= buy_threshold:
        return Signal.BUY
    if deviation >= sell_threshold:
        return Signal.SELL
    return Signal.HOLD
