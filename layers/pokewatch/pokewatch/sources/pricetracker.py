"""The `pricetracker` source: TCGplayer prices and their history from Pokémon Price Tracker API v2.

`GET /cards?setId=<set>&includeHistory=true&days=N&limit=..&offset=..` (header
`Authorization: Bearer <key>`) lists the cards of a set, each with its latest `prices`
(`market`, `low`, `primaryPrinting`, `primaryCondition`, `lastUpdated`) and, with
`includeHistory`, `priceHistory.conditions.<condition>.history[] = {date, market, volume}` for
the last N days (at most 365; how far back depends on the plan). Pages are walked with
`offset` while `metadata.hasMore`.

So this source both collects the day (latest prices, without the history that costs an extra
credit per card) and backfills (the Near Mint history of the days `start..end`). A latest price
dated before `start` is kept, as the pokemontcg source keeps it: it is the latest price there
is, and the daily run (start = end = today, early in the UTC day) finds the prices of the day
before. Prices are Near Mint, as in the CSV format: the latest price is used only when its
condition is Near Mint (or not stated).

Card print ids follow pokemontcg.io: `<set id>-<card number>_<variant>`, the number without
leading zeros and the variant from the primary printing (`Reverse Holofoil` →
`reverse_holofoil`), so that `set_id_of` finds the set that was asked for.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any

import pandas as pd
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from pokewatch.price_limits import MAX_VOLUME
from pokewatch.settings import Settings
from pokewatch.sources.base import (
    SourceError,
    check_list_length,
    each_once,
    naming,
    observations_frame,
    valid_items,
)
from pokewatch.sources.http import HttpClient
from pokewatch.sources.secrets import ApiKey
from pokewatch.sources.variants import card_print_id, variant_name

CONDITION = "Near Mint"
MAX_HISTORY_DAYS = 365
#: Largest pages the API serves, with and without history.
PAGE_LIMIT_WITH_HISTORY = 100
PAGE_LIMIT = 200
SETS_PAGE_LIMIT = 500
DEFAULT_VARIANT = "normal"

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9.\-]+")


def _day(value: object) -> object:
    """ISO dates and timestamps (`2024-01-15T12:00:00Z`) both become the day they name."""
    if isinstance(value, str):
        return value.strip()[:10]
    if isinstance(value, dt.datetime):
        return value.date()
    return value


Day = Annotated[dt.date, BeforeValidator(_day)]
#: Ids and numbers arrive as strings or integers.
Text = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]


class _ApiModel(BaseModel):
    # The API adds fields over time; only what is read here is validated.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class HistoryPoint(_ApiModel):
    """One day of a condition's price history."""

    date: Day
    market: float | None = None
    volume: float | None = None


class ConditionHistory(_ApiModel):
    """The history of one condition (`Near Mint`, `Lightly Played`, ...)."""

    history: list[HistoryPoint] = Field(default_factory=list)


class PriceHistory(_ApiModel):
    """`priceHistory`: per-condition histories."""

    conditions: dict[str, ConditionHistory | None] = Field(default_factory=dict)


class Prices(_ApiModel):
    """`prices`: the latest TCGplayer prices of the card."""

    market: float | None = None
    low: float | None = None
    primary_printing: str | None = Field(default=None, alias="primaryPrinting")
    primary_condition: str | None = Field(default=None, alias="primaryCondition")
    last_updated: Day | None = Field(default=None, alias="lastUpdated")


class PriceTrackerCard(_ApiModel):
    """A card of `/cards`."""

    id: Text | None = None
    tcg_player_id: Text | None = Field(default=None, alias="tcgPlayerId")
    name: str = ""
    set_id: Text | None = Field(default=None, alias="setId")
    set_name: str = Field(default="", alias="setName")
    card_number: Text | None = Field(default=None, alias="cardNumber")
    rarity: str | None = None
    prices: Prices | None = None
    price_history: PriceHistory | None = Field(default=None, alias="priceHistory")


class Metadata(_ApiModel):
    """`metadata`: where this page is in the whole list."""

    total: int = 0
    count: int = 0
    limit: int = 0
    offset: int = 0
    has_more: bool = Field(default=False, alias="hasMore")


class Page(_ApiModel):
    """One page of a list response; its items are validated one by one (`valid_items`), so
    that one odd card is skipped rather than the page."""

    data: list[Any]
    metadata: Metadata = Field(default_factory=Metadata)

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        # A query that names one card answers with the object itself.
        return [value] if isinstance(value, dict) else value


class PriceTrackerSet(_ApiModel):
    """A set of `/sets`."""

    id: Text = Field(validation_alias=AliasChoices("setId", "id"))
    name: str = ""
    release_date: Day | None = Field(default=None, alias="releaseDate")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class PriceTrackerSource:
    """A `PriceSource` over Pokémon Price Tracker API v2, with history for backfills."""

    name = "pricetracker"

    def __init__(
        self,
        client: HttpClient,
        sets: Iterable[str] = (),
        *,
        today: Callable[[], dt.date] = _today,
    ) -> None:
        self.client = client
        self.sets = list(sets)
        self._today = today

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTrackerSource:
        """The source with the key parameter, URL, sets and retry budget of `settings`."""
        if not settings.pricetracker_api_key_parameter:
            raise SourceError(
                "the pricetracker source needs an API key: set "
                "POKEWATCH_PRICETRACKER_API_KEY_PARAMETER to its SSM parameter or secret"
            )
        key = ApiKey(settings.pricetracker_api_key_parameter)
        client = HttpClient.from_settings(
            settings,
            settings.pricetracker_url,
            headers=lambda: {"Authorization": f"Bearer {key.get()}"},
            secrets=key.known,
        )
        return cls(client, settings.sets)

    def list_sets(self, as_of: dt.date) -> list[str]:
        """The configured sets, or every set released on or before `as_of`, oldest first."""
        if self.sets:
            return list(self.sets)
        params = {"sortBy": "releaseDate", "sortOrder": "asc"}
        released = [
            s
            for s in self._paged("sets", PriceTrackerSet, params, SETS_PAGE_LIMIT)
            if s.release_date is not None and s.release_date <= as_of
        ]
        return [s.id for s in sorted(released, key=lambda s: (s.release_date, s.id))]

    def collect(self, set_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Near Mint prices of every card print of `set_id` for the days `start..end`, and its
        latest price when that is dated on or before `end` (see the module doc).

        History is asked for only when the range starts before today, for as many days as
        reach back to `start` (capped at 365; older days are simply absent)."""
        today = self._today()
        with_history = start < today
        params: dict[str, str | int] = {"setId": set_id}
        if with_history:
            days = min(MAX_HISTORY_DAYS, (today - start).days + 1)
            params |= {"includeHistory": "true", "days": days}
        limit = PAGE_LIMIT_WITH_HISTORY if with_history else PAGE_LIMIT
        where = f"{self.name} set {set_id}"
        cards = self._paged("cards", PriceTrackerCard, params, limit)
        candidates = (row for card in cards for row in _observations(card, set_id, start, end))
        with naming(where):
            return observations_frame(candidates, where=where)

    def _paged[M: PriceTrackerCard | PriceTrackerSet](
        self, path: str, model: type[M], params: Mapping[str, str | int], limit: int
    ) -> Iterator[M]:
        """Every valid item of an offset-paged list (see `valid_items`), each once: an item
        added before the offset while the list is read moves the next page's items back."""
        where = f"GET {self.client.base_url}/{path}"
        return each_once(valid_items(self._items(path, params, limit), model, where), where)

    def _items(self, path: str, params: Mapping[str, str | int], limit: int) -> Iterator[Any]:
        """Every item of an offset-paged list, as the API wrote it."""
        offset = 0
        while True:
            page = self.client.get_model(path, Page, {**params, "limit": limit, "offset": offset})
            yield from page.data
            if not page.data or not page.metadata.has_more:
                return
            offset += len(page.data)
            check_list_length(offset, f"{self.name} {path} {dict(params)}")


def _card_number(card: PriceTrackerCard) -> str | None:
    """The card number as pokemontcg.io writes it (`025` → `25`, `TG01` stays)."""
    number = (card.card_number or "").strip()
    if number.isdigit():
        number = number.lstrip("0") or "0"
    number = _UNSAFE_ID_CHARS.sub("-", number).strip("-")
    return number or (f"tcg{card.tcg_player_id}" if card.tcg_player_id else None)


def _count(volume: float | None) -> int | None:
    """A day's volume as a count, or missing when it is not one (NaN, infinite, negative or
    implausibly large), as the csv source reads it: an optional value must not cost the price
    its observation (round(NaN) failed the whole set)."""
    if volume is None or not 0 <= volume < MAX_VOLUME:  # False for NaN
        return None
    return round(volume)


def _observations(
    card: PriceTrackerCard, set_id: str, start: dt.date, end: dt.date
) -> Iterator[dict[str, Any]]:
    """Candidate observations of one card: its Near Mint history of the days `start..end`, then
    its latest price when dated on or before `end` and that day is not in the history already."""
    number = _card_number(card)
    if number is None:
        return
    prices = card.prices or Prices()
    variant = variant_name(prices.primary_printing or "") or DEFAULT_VARIANT
    attributes = {
        "card_id": card_print_id(f"{set_id}-{number}", variant),
        "name": card.name,
        "set_id": set_id,
        "set_name": card.set_name,
        "rarity": card.rarity or "",
        "variant": variant,
    }
    history = card.price_history.conditions.get(CONDITION) if card.price_history else None
    seen: set[dt.date] = set()
    for point in history.history if history else ():
        if point.market and point.date not in seen:  # 0 or null: no price that day
            seen.add(point.date)
            if not start <= point.date <= end:
                continue
            volume = _count(point.volume)
            yield {**attributes, "date": point.date, "market_price": point.market, "volume": volume}
    latest = prices.last_updated
    near_mint = prices.primary_condition in (None, CONDITION)
    if prices.market and latest is not None and latest <= end and latest not in seen and near_mint:
        yield {**attributes, "date": latest, "market_price": prices.market, "low_price": prices.low}
