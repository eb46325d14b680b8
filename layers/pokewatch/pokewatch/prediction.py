"""Answers of the prediction API, computed from a serving table (no pandas, no model object)."""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from typing import Any

from pydantic import ValidationError

from pokewatch.api_schemas import (
    CardDetail,
    CardPage,
    CardSummary,
    HistoryPoint,
    ItemError,
    Prediction,
    PredictRequest,
)
from pokewatch.card_ids import CARD_ID_MAX_LENGTH, CARD_ID_PATTERN
from pokewatch.serving import CardInfo, PricePoint, ServingTable, search_key
from pokewatch.signals import deviation_pct, signal_of
from pokewatch.validation import problems

#: Rows of history shown by `GET /cards/{card_id}`.
DETAIL_HISTORY_ROWS = 60
_BAD_CURSOR = "cursor is not valid; pass back the next_cursor of a listing"
_CARD_ID = re.compile(CARD_ID_PATTERN)


class NotFound(LookupError):
    """A request that names something the table does not have (a 404)."""


class UnknownCard(NotFound):
    """No card with this id."""


class NoDataByDate(NotFound):
    """The card has no price on or before the date asked."""


class BadCursor(ValueError):
    """A listing cursor that this API did not hand out."""


def predict(
    table: ServingTable, request: PredictRequest, buy_threshold: float, sell_threshold: float
) -> Prediction:
    """The prediction of a card at its latest row on or before `request.date`."""
    if request.card_id not in table:
        raise UnknownCard(f"unknown card_id {request.card_id!r}")
    point = table.point_on_or_before(request.card_id, request.date)
    if point is None:
        first = table.history(request.card_id)[0].date
        raise NoDataByDate(
            f"card {request.card_id!r} has no price on or before {request.date} among the days "
            f"this model serves (from {first})"
        )
    return _prediction(
        table, request.card_id, point, request.market_price, buy_threshold, sell_threshold
    )


def predict_item(
    table: ServingTable, index: int, item: Any, buy_threshold: float, sell_threshold: float
) -> Prediction | ItemError:
    """One item of a batch: its prediction, or the error (with the status a single predict would
    answer) that says why it has none; the other items are answered either way."""
    card_id = item.get("card_id") if isinstance(item, dict) else None
    card_id = card_id if isinstance(card_id, str) and len(card_id) <= CARD_ID_MAX_LENGTH else None
    try:
        request = PredictRequest.model_validate(item)
        return predict(table, request, buy_threshold, sell_threshold)
    except ValidationError as exc:
        return ItemError(
            index=index,
            status=422,
            error="invalid_request",
            message=problems(exc, whole="item"),
            card_id=card_id,
        )
    except NotFound as exc:
        return ItemError(
            index=index, status=404, error="not_found", message=str(exc), card_id=card_id
        )


def card_detail(
    table: ServingTable, card_id: str, buy_threshold: float, sell_threshold: float
) -> CardDetail:
    """One card with its recent history and its latest prediction."""
    if card_id not in table:
        raise UnknownCard(f"unknown card_id {card_id!r}")
    card = table.card(card_id)
    history = table.history(card_id, DETAIL_HISTORY_ROWS)
    latest = history[-1]
    return CardDetail(
        **_summary(card, latest).model_dump(),
        history=[HistoryPoint(**_point_fields(p)) for p in history],
        prediction=_prediction(table, card_id, latest, None, buy_threshold, sell_threshold),
    )


def list_cards(
    table: ServingTable,
    *,
    limit: int,
    cursor: str | None = None,
    set_id: str | None = None,
    query: str | None = None,
) -> CardPage:
    """A page of cards in card id order, filtered by set (id or name, exact) and by a
    case-insensitive substring of the name or card id.

    The cursor holds the last card id of the previous page (keyset pagination), so paging stays
    consistent when a newly promoted model adds or drops cards between two pages."""
    after = decode_cursor(cursor) if cursor else None
    # Spaces around a filter are not part of it (`?set=%20base4`, a value pasted with them):
    # kept, they matched no card, an empty page that read as "no such set". An empty `set` is
    # no filter, as an empty `q` or `cursor` is (`?set=$SET` with no set).
    set_id = (set_id or "").strip() or None
    query = (query or "").strip() or None
    if set_id is None and query is None:
        ids = table.listing_ids
    else:
        wanted_set = search_key(set_id) if set_id is not None else None
        needle = search_key(query) if query is not None else None
        ids = [
            card_id
            for card_id, (set_key, set_name, name, card_key) in zip(
                table.listing_ids, table.search_keys, strict=True
            )
            if (wanted_set is None or wanted_set in (set_key, set_name))
            and (needle is None or needle in name or needle in card_key)
        ]
    start = bisect.bisect_right(ids, after) if after is not None else 0
    page = ids[start : start + limit]
    more = start + len(page) < len(ids)
    return CardPage(
        items=[_summary(table.card(card_id), table.latest(card_id)) for card_id in page],
        next_cursor=encode_cursor(page[-1]) if more else None,
        total=len(ids),
    )


def encode_cursor(last_card_id: str) -> str:
    """An opaque cursor for the page after `last_card_id`."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_card_id}).encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The card id a cursor continues after; BadCursor if it is not one of ours.

    A cursor is ours only as `encode_cursor` writes it, for a card id: a cut or altered one
    (base64 decoding drops characters outside its alphabet, an empty id starts the listing again)
    would otherwise be answered as some page, and the client never learn that it paged wrong. The
    id need not be served now: a page of the previous model goes on in card id order."""
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise BadCursor(_BAD_CURSOR) from exc
    if not (
        isinstance(after, str)
        and _CARD_ID.fullmatch(after)
        and len(after) <= CARD_ID_MAX_LENGTH
        and encode_cursor(after) == cursor
    ):
        raise BadCursor(_BAD_CURSOR)
    return after


def _summary(card: CardInfo, latest: PricePoint) -> CardSummary:
    return CardSummary(
        **card.model_dump(), last_price=_cents(latest.market_price), last_date=latest.date
    )


def _cents(price: float) -> float:
    """A stored price as answered: in cents."""
    return round(price, 2)


def _forecast_fields(point: PricePoint) -> dict:
    """What the model predicted at a served row."""
    return {
        "fair_price": _cents(point.fair_price),
        "fair_price_low": _cents(point.fair_price_low),
        "fair_price_high": _cents(point.fair_price_high),
        "expected_price": _cents(point.expected_price),
    }


def _point_fields(point: PricePoint) -> dict:
    return {
        "date": point.date,
        "market_price": _cents(point.market_price),
        **_forecast_fields(point),
    }


def _prediction(
    table: ServingTable,
    card_id: str,
    point: PricePoint,
    market_price: float | None,
    buy_threshold: float,
    sell_threshold: float,
) -> Prediction:
    # The signal compares unrounded prices, as the backtest and the report do (a cent matters on
    # a card under a dollar, and an expected price under half a cent would round to zero).
    price = market_price if market_price is not None else point.market_price
    deviation = deviation_pct(price, point.expected_price)
    return Prediction(
        card_id=card_id,
        date=point.date,
        market_price=market_price if market_price is not None else _cents(point.market_price),
        **_forecast_fields(point),
        deviation_pct=round(deviation, 4),
        signal=signal_of(deviation, buy_threshold, sell_threshold),
        horizon_days=table.facts.horizon_days,
        model_version=table.facts.model_version,
    )
