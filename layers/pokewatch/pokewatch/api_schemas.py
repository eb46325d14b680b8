"""Request and response models of the prediction API (SPEC section 7), and the body parser.

Requests are validated strictly: unknown fields, non-finite prices or prices below a cent,
implausible dates, duplicate JSON keys, JSON extensions such as `NaN`, over-deep nesting and
oversized bodies are all input errors (4xx), never server errors.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

from pokewatch.card_ids import CARD_ID_EXAMPLE, CardId
from pokewatch.price_limits import (
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_PRICE_USD,
    MIN_OFFERED_PRICE_USD,
    is_plausible_day,
)
from pokewatch.serving import CardInfo
from pokewatch.signals import Signal

MAX_BATCH_ITEMS = 100
#: The largest request body accepted: a full batch of 100 items is about 10 KB.
MAX_BODY_CHARS = 64 * 1024
# ASCII digits: `\d` also matches other scripts' digits (`２０２４`), which no date parser reads.
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: The most digits a whole number in a query string may have: more is no count this API takes.
MAX_QUERY_DIGITS = 9
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_QUERY_DIGITS}}}")


def _plain_digits(value: object) -> object:
    # pydantic reads text as Python's int() does: `1_0`, ` 10`, `+10`, `10.0` and thousands of
    # leading zeros are all numbers to it, so a typo is answered as some other request.
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError(
            f"must be a whole number of at most {MAX_QUERY_DIGITS} digits 0-9, e.g. 50"
        )
    return value


#: The validator of a whole number in a query string: decimal digits only. Annotate
#: `Annotated[int, Ge(1), Le(500), DIGITS_ONLY, Query()]`, the bounds before it: after it,
#: Powertools documents them as `ge` and `le`, no JSON Schema keywords (`minimum`, `maximum`).
DIGITS_ONLY = BeforeValidator(_plain_digits)


class BodyTooLarge(ValueError):
    """A request body over MAX_BODY_CHARS (a 413)."""


class NotAnObject(ValueError):
    """A request body that is JSON but not an object, which every body of this API is (a 422)."""


class _Rejected(ValueError):
    """Valid for Python's json module, but not JSON this API accepts."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # With a repeated key, json.loads silently keeps the last value: which one the client meant
    # is ambiguous, so it is an error.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Rejected(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON value")


def parse_json_body(text: str) -> Any:
    """Parse a request body as strict JSON.

    Raises BodyTooLarge, NotAnObject for a body that is not a JSON object, or
    json.JSONDecodeError (which the event handler turns into a 422) for malformed JSON, duplicate
    keys, NaN / Infinity, integers of more digits than Python converts and nesting deeper than the
    parser's stack.
    """
    if len(text) > MAX_BODY_CHARS:
        raise BodyTooLarge(f"request body has {len(text)} characters; at most {MAX_BODY_CHARS}")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except _Rejected as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("JSON is nested too deeply", text, 0) from None
    except ValueError:
        # int() refuses more digits than Python's conversion limit with a bare ValueError.
        raise json.JSONDecodeError("a number has too many digits", text, 0) from None
    # Powertools validates a list body as its first element: `[{...}, {...}]` sent to /predict
    # would be answered for one item, the others silently dropped.
    if not isinstance(value, dict):
        raise NotAnObject("the request body must be a JSON object")
    return value


class ApiSchema(BaseModel):
    """Base of every API model: built when first used, not at import."""

    model_config = ConfigDict(defer_build=True)


class ApiModel(ApiSchema):
    """Requests reject unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _beyond_a_float(value: object) -> object:
    # A JSON integer of more than ~309 digits is no float ("Input should be a valid number") and
    # `1e999` reads as infinity ("a finite number"): both are prices beyond the bounds, and are
    # told the bounds as any other price beyond them is.
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) > sys.float_info.max
    ):
        if value > 0:
            raise PydanticKnownError("less_than", {"lt": MAX_PRICE_USD})
        raise PydanticKnownError("greater_than_equal", {"ge": MIN_OFFERED_PRICE_USD})
    return value


#: A price asked about: a finite JSON number (not a string), from a cent.
Price = Annotated[
    float,
    Field(strict=True, ge=MIN_OFFERED_PRICE_USD, lt=MAX_PRICE_USD, allow_inf_nan=False),
    BeforeValidator(_beyond_a_float),
]


class PredictRequest(ApiModel):
    """Ask for the fair price of a card, at its latest price or at a date and price of yours."""

    card_id: CardId = Field(description=f"the card print, e.g. `{CARD_ID_EXAMPLE}`")
    date: dt.date | None = Field(
        default=None,
        description="answer as of this date (YYYY-MM-DD): the latest observation on or before "
        "it, among the recent days the model serves (`GET /cards/{card_id}` shows them); "
        "default the latest",
    )
    market_price: Price | None = Field(
        default=None, description="a price you were offered (USD); default the market price"
    )

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: object) -> object:
        # pydantic's own message names this class: "a valid dictionary or instance of
        # PredictRequest", which a batch item that is not an object would be told.
        if not isinstance(value, dict | PredictRequest):
            raise PydanticCustomError("model_type", "must be a JSON object with card_id")
        return value

    @field_validator("date", mode="before")
    @classmethod
    def _written_as_a_day(cls, value: object) -> object:
        # pydantic would read a number or a string of digits as seconds since 1970.
        if isinstance(value, int | float) or (
            isinstance(value, str) and not _ISO_DAY.fullmatch(value)
        ):
            raise ValueError("date must be a day written YYYY-MM-DD")
        return value

    @field_validator("date")
    @classmethod
    def _plausible_date(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not is_plausible_day(value):
            raise ValueError(f"date must be between {EARLIEST_DATE} and {LATEST_DATE}")
        return value


class BatchRequest(ApiModel):
    """Up to 100 predict requests answered in order.

    Items are validated one by one (an invalid item gets an error object in its place, the others
    are answered), so the model takes any JSON value per item and documents the item schema."""

    items: list[Annotated[Any, WithJsonSchema({"$ref": "#/components/schemas/PredictRequest"})]] = (
        Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    )


class Prediction(ApiSchema):
    """The fair price of a card at a date, its 80% interval, the expected price and the signal at
    the market price."""

    card_id: str
    date: dt.date = Field(description="the date of the observation used")
    market_price: float = Field(description="the price the signal is about")
    fair_price: float = Field(
        description="the median forecast of the market price `horizon_days` later (as likely "
        "above as below)"
    )
    fair_price_low: float = Field(description="lower end of the fair price's interval")
    fair_price_high: float = Field(description="upper end of the fair price's interval")
    expected_price: float = Field(
        description="the mean forecast of the market price `horizon_days` later: what the card "
        "is worth on average, counting its chances of a large move up or down"
    )
    deviation_pct: float = Field(
        description="(market_price - expected_price) / expected_price; the signal's input"
    )
    signal: Signal
    horizon_days: int
    model_version: str


class ItemError(ApiSchema):
    """Why one item of a batch has no prediction."""

    index: int
    status: int = Field(description="the status a single /predict of this item would answer")
    error: str
    message: str
    card_id: str | None = None


class BatchResponse(ApiSchema):
    """One prediction or one error per item, in the order asked."""

    results: list[Prediction | ItemError]


class CardSummary(CardInfo):
    """One card in a listing: its attributes, as served, and its latest price."""

    model_config = ConfigDict(defer_build=True)  # as `ApiSchema`; `CardInfo` is built at import

    last_price: float
    last_date: dt.date


class CardPage(ApiSchema):
    """A page of cards; pass `next_cursor` back as `cursor` for the next page."""

    items: list[CardSummary]
    next_cursor: str | None
    total: int = Field(description="cards matching the filters, over all pages")


class HistoryPoint(ApiSchema):
    """A past market price of a card and what the model in service makes of that day (see
    `Prediction`). For a day more than `horizon_days` ago the model was fitted on what followed
    it, so these are not the forecasts one could have made then: those are the backtest's."""

    date: dt.date
    market_price: float
    fair_price: float = Field(description="the model's median forecast from that day's price")
    fair_price_low: float = Field(description="lower end of its interval")
    fair_price_high: float = Field(description="upper end of its interval")
    expected_price: float = Field(description="the model's mean forecast from that day's price")


class CardDetail(CardSummary):
    """One card with its recent history and its latest prediction."""

    history: list[HistoryPoint]
    prediction: Prediction


class Health(ApiSchema):
    """Whether a model is in service, which, and how fresh."""

    status: Literal["ok", "degraded", "unavailable"]
    model_version: str | None = None
    trained_at: dt.datetime | None = None
    data_as_of: dt.date | None = None
    cards: int | None = None
    detail: str | None = Field(default=None, description="why the status is not ok")


class ErrorDetail(ApiSchema):
    """One problem of an invalid request."""

    field: str = Field(description="`body`, a body field (`items.3.card_id`) or `query.limit`")
    problem: str


class ErrorBody(ApiSchema):
    """Every error answer: a stable code and a message naming the problem."""

    error: str = Field(description="a stable code, e.g. `not_found`, `invalid_request`")
    message: str
    details: list[ErrorDetail] | None = None
