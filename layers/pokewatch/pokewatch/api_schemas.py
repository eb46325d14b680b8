"""Request and response models of the prediction API (SPEC section 7)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pokewatch.observations import CardId
from pokewatch.signals import Signal

MAX_BATCH_ITEMS = 100
#: Dates outside this range are rejected as input errors rather than looked up.
EARLIEST_DATE = dt.date(1990, 1, 1)
LATEST_DATE = dt.date(2100, 12, 31)


class ApiModel(BaseModel):
    """Requests reject unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PredictRequest(ApiModel):
    """Ask for the fair price of a card, at its latest price or at a date and price of yours."""

    card_id: CardId
    date: dt.date | None = Field(
        default=None, description="use the latest observation on or before this date"
    )
    market_price: Annotated[float, Field(gt=0, lt=1e7, allow_inf_nan=False)] | None = Field(
        default=None, description="a price you were offered (USD); defaults to the market price"
    )

    @field_validator("date")
    @classmethod
    def _plausible_date(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise ValueError(f"date must be between {EARLIEST_DATE} and {LATEST_DATE}")
        return value


class BatchRequest(ApiModel):
    """Up to 100 predict requests answered in order."""

    items: list[dict] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class Prediction(BaseModel):
    """The fair price of a card at a date, its 80% interval and the signal at the market price."""

    card_id: str
    date: dt.date
    market_price: float
    fair_price: float
    fair_price_low: float
    fair_price_high: float
    deviation_pct: float
    signal: Signal
    horizon_days: int
    model_version: str


class ItemError(BaseModel):
    """Why one item of a batch has no prediction."""

    index: int
    status: int
    error: str
    message: str
    card_id: str | None = None


class BatchResponse(BaseModel):
    """One prediction or one error per item, in the order asked."""

    results: list[Prediction | ItemError]


class CardSummary(BaseModel):
    """One card in a listing."""

    card_id: str
    name: str
    set_id: str
    set_name: str
    rarity: str
    variant: str
    last_price: float
    last_date: dt.date


class CardPage(BaseModel):
    """A page of cards; pass `next_cursor` back as `cursor` for the next page."""

    items: list[CardSummary]
    next_cursor: str | None
    total: int


class HistoryPoint(BaseModel):
    """A past market price of a card and the fair price the model gave that day."""

    date: dt.date
    market_price: float
    fair_price: float
    fair_price_low: float
    fair_price_high: float


class CardDetail(CardSummary):
    """One card with its recent history and its latest prediction."""

    history: list[HistoryPoint]
    prediction: Prediction


class Health(BaseModel):
    """Whether a model is in service, which, and how fresh."""

    status: Literal["ok", "degraded", "unavailable"]
    model_version: str | None = None
    trained_at: dt.datetime | None = None
    data_as_of: dt.date | None = None
    cards: int | None = None
    detail: str | None = None


class ErrorBody(BaseModel):
    """Every error answer: a stable code and a message naming the problem."""

    error: str
    message: str
    details: list[dict] | None = None
