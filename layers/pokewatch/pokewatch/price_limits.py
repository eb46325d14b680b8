"""The bounds of a price PokeWatch takes, and of its date, from a source or from an API request.

Kept apart from `observations` (whose pydantic models cost the API's cold start ~15 ms to build)
so that the API can import the bounds alone.
"""

import datetime as dt

#: Prices are below this (USD): above any card ever sold, so a larger one is a unit or parsing
#: error; served prices are float32, which a price of 1e39 would turn into infinity.
MAX_PRICE_USD = 10_000_000.0
#: A day's sales volume is below this: far above any card's, and a count held as a 64-bit integer
#: (a volume of 1e30 was a pandas overflow that failed a whole csv file or set).
MAX_VOLUME = 1_000_000_000
#: A price offered to the API is at least a cent, the smallest a market quotes: 5e-324 was a
#: "BUY at −100%". (Sources' prices are kept above 0 only: what they report is what was paid.)
MIN_OFFERED_PRICE_USD = 0.01
#: A price this many times above or below both its card's previous and next prices, which agree,
#: is an isolated spike (`price_spikes`): a typo, left out of the features. On the real weekly
#: history (144,207 rows) the rule flags 10 rows at ×2, 2 at ×3 and 3 at ×5 (new sets' first
#: weeks, real: ×6.7 at most), 1 at ×10 and ×20 (a $20 card priced $0.25 for one week), none at
#: ×50. A real move lasts, so its next price confirms it and it is never one.
SPIKE_FACTOR = 20.0
#: Prices are dated in this range: a day outside it is a typo (0224 for 2024) or a sentinel
#: (9999-12-31), and pandas holds days as nanosecond timestamps, which end in 1677 and 2262.
EARLIEST_DATE = dt.date(1990, 1, 1)
LATEST_DATE = dt.date(2100, 12, 31)


#: What is wrong with a day outside the range.
IMPLAUSIBLE_DAY = f"must be a date from {EARLIEST_DATE} to {LATEST_DATE}"


def is_plausible_day(day: dt.date) -> bool:
    """Whether `day` is in the range prices are dated in."""
    return EARLIEST_DATE <= day <= LATEST_DATE


def plausible_day(day: dt.date) -> dt.date:
    """`day`, or a ValueError saying the range when it is outside it."""
    if not is_plausible_day(day):
        raise ValueError(IMPLAUSIBLE_DAY)
    return day
