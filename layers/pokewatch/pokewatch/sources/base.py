"""The interface every price source implements, and the price-history table it returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

import pandas as pd

from pokewatch.observations import HISTORY_COLUMNS, PriceObservation


class SourceError(RuntimeError):
    """A source failed for a reason worth reporting (HTTP status, bad file, ...)."""


class TransientSourceError(SourceError):
    """A failure that a retry may cure (timeouts, 429, 5xx): the state machine retries it."""


class PriceSource(Protocol):
    """A price source: which sets it knows, and the prices of one set over a range of days."""

    name: str

    def list_sets(self, as_of: dt.date) -> list[str]:
        """The set ids this source can collect on `as_of`."""
        ...

    def collect(self, set_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Prices of every card print of `set_id` for the days `start..end` (inclusive), as a
        history table (`HISTORY_COLUMNS`). A daily run asks for one day; a first run backfills."""
        ...


def observations_to_frame(observations: Iterable[PriceObservation]) -> pd.DataFrame:
    """A history table from validated observations (the order of `HISTORY_COLUMNS`)."""
    rows = [o.model_dump() for o in observations]
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return normalise_history(frame)


def normalise_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Column order and dtypes of a history table; dates become `datetime64[ns]` days."""
    out = frame.reindex(columns=list(HISTORY_COLUMNS))
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["release_date"] = pd.to_datetime(out["release_date"]).astype("datetime64[ns]")
    for column in ("market_price", "low_price", "high_price"):
        out[column] = out[column].astype("float64")
    out["volume"] = out["volume"].astype("Int64")
    for column in ("card_id", "name", "set_id", "set_name", "series", "rarity", "variant"):
        values = out[column]
        if not pd.api.types.is_string_dtype(values):
            # A column the source does not have is all-NaN floats; "" needs an object column.
            values = values.astype(object)
        out[column] = values.fillna("").astype(str)
    return out.reset_index(drop=True)
