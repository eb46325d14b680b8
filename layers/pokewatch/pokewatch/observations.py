"""What a price source delivers: cards and one market price per card print per day."""

from __future__ import annotations

import datetime as dt
import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pokewatch.card_ids import CardId
from pokewatch.price_limits import MAX_PRICE_USD, MAX_VOLUME, is_plausible_day, plausible_day


class Card(BaseModel):
    """The attributes of one card print (a card id + variant)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    card_id: CardId
    name: str = ""
    set_id: str
    set_name: str = ""
    series: str = ""
    rarity: str = ""
    variant: str = ""
    release_date: dt.date | None = None

    @field_validator("release_date")
    @classmethod
    def _missing_if_implausible(cls, value: dt.date | None) -> dt.date | None:
        # An attribute, not the price: a sentinel or typo (0023 for 2023) is read as missing, as
        # the csv source reads it, rather than cost the card its prices.
        return value if value is None or is_plausible_day(value) else None


class PriceObservation(Card):
    """One market price of one card print on one day, as collected from a source."""

    date: dt.date
    market_price: float = Field(gt=0, lt=MAX_PRICE_USD)
    low_price: float | None = Field(default=None, ge=0, lt=MAX_PRICE_USD)
    high_price: float | None = Field(default=None, ge=0, lt=MAX_PRICE_USD)
    volume: int | None = Field(default=None, ge=0, lt=MAX_VOLUME)

    @field_validator("date")
    @classmethod
    def _plausible_day(cls, value: dt.date) -> dt.date:
        # An API's sentinel day (0001/01/01) failed the whole set as a pandas date overflow.
        return plausible_day(value)

    @field_validator("market_price", "low_price", "high_price")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


#: Column order of a price history table (raw partitions and the preprocess input).
HISTORY_COLUMNS: tuple[str, ...] = tuple(PriceObservation.model_fields)
#: The text columns of a price history table (ids and card attributes).
TEXT_COLUMNS: tuple[str, ...] = (
    "card_id",
    "name",
    "set_id",
    "set_name",
    "series",
    "rarity",
    "variant",
)
