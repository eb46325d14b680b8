"""The `pokemontcg` source: TCGplayer market prices from the pokemontcg.io v2 API.

`GET /cards?q=set.id:<set>` lists the cards of a set with `tcgplayer.prices.<variant>`
(`low`, `mid`, `high`, `market`, `directLow`) and the day TCGplayer last updated them. Each
variant with a market price becomes one observation of the card print `<card id>_<variant>`,
dated by `tcgplayer.updatedAt`. A price key not in `TCGPLAYER_PRICE_KEYS` is kept as a print of
its own (`sv1-1_weird`), with a warning: pokemontcg.io adds a key when TCGplayer prices a new
kind of print, and dropping it would lose that print's prices, filing them under another print
would mix two prices in one history. A key with no letter or digit (`—`) names no print: it is
skipped, with a warning naming it.

Pages are fetched one after the other and may overlap (a card moved onto the next page while
the list was read): a card seen twice is kept once, as first seen.

The API only knows today's prices: it cannot backfill. `collect(set, start, end)` returns the
current snapshot when it is dated on or before `end` (an older `updatedAt` is kept: it is the
latest price there is), and nothing for a range that ends before it. Use `pricetracker` or
`csv` for history.

The key (header `X-Api-Key`) is optional for pokemontcg.io, which then allows fewer calls.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pokewatch.settings import Settings
from pokewatch.sources.base import (
    check_list_length,
    each_once,
    naming,
    observations_frame,
    valid_items,
)
from pokewatch.sources.http import HttpClient
from pokewatch.sources.secrets import ApiKey
from pokewatch.sources.variants import KNOWN_VARIANTS, card_print_id, variant_name

logger = logging.getLogger(__name__)

PAGE_SIZE = 250  # the largest page pokemontcg.io serves
#: Only the card fields the source reads (smaller, faster responses).
CARD_FIELDS = "id,name,number,rarity,set,tcgplayer"


def _slash_date(value: object) -> object:
    """pokemontcg.io writes dates as `YYYY/MM/DD` (sometimes followed by a time)."""
    if isinstance(value, str):
        return value.strip().split(" ", 1)[0].replace("/", "-")
    return value


SlashDate = Annotated[dt.date, BeforeValidator(_slash_date)]


class _ApiModel(BaseModel):
    # The API adds fields over time; only what is read here is validated.
    model_config = ConfigDict(extra="ignore", frozen=True)


class TcgPlayerPrice(_ApiModel):
    """The prices of one variant; any of them may be null."""

    low: float | None = None
    mid: float | None = None
    high: float | None = None
    market: float | None = None
    direct_low: float | None = Field(default=None, alias="directLow")


class TcgPlayer(_ApiModel):
    """The `tcgplayer` block of a card."""

    url: str | None = None
    updated_at: SlashDate = Field(alias="updatedAt")
    prices: dict[str, TcgPlayerPrice | None] = Field(default_factory=dict)


class _Identified(_ApiModel):
    """An item of a list, known by its id."""

    id: str


class PokemonTcgSet(_Identified):
    """A set, as embedded in a card and as listed by `/sets`."""

    name: str = ""
    series: str = ""
    release_date: SlashDate | None = Field(default=None, alias="releaseDate")


class PokemonTcgCard(_Identified):
    """A card of `/cards`; `tcgplayer` is missing for cards TCGplayer does not sell."""

    name: str = ""
    number: str = ""
    rarity: str = ""
    set: PokemonTcgSet
    tcgplayer: TcgPlayer | None = None


class Page(_ApiModel):
    """One page of a pokemontcg.io list response; its items are validated one by one
    (`valid_items`), so that one odd card is skipped rather than the page."""

    data: list[Any]
    page: int = 1
    page_size: int = Field(default=PAGE_SIZE, alias="pageSize")
    count: int = 0
    total_count: int | None = Field(default=None, alias="totalCount")

    @property
    def is_last(self) -> bool:
        """No more pages: the data is exhausted, the server's total is reached, or (without a
        total) the page is short."""
        if not self.data:
            return True
        if self.total_count is None:
            return len(self.data) < self.page_size
        return self.page * self.page_size >= self.total_count


class PokemonTcgSource:
    """A `PriceSource` over the pokemontcg.io v2 API."""

    name = "pokemontcg"

    def __init__(self, client: HttpClient, sets: Iterable[str] = ()) -> None:
        self.client = client
        #: Sets to collect; empty: every set released by the day asked.
        self.sets = list(sets)

    @classmethod
    def from_settings(cls, settings: Settings) -> PokemonTcgSource:
        """The source with the key parameter, URL, sets and retry budget of `settings`."""
        key = ApiKey(settings.pokemontcg_api_key_parameter)

        def headers() -> dict[str, str]:
            value = key.get()
            return {"X-Api-Key": value} if value else {}

        client = HttpClient.from_settings(
            settings, settings.pokemontcg_url, headers=headers, secrets=key.known
        )
        return cls(client, settings.sets)

    def list_sets(self, as_of: dt.date) -> list[str]:
        """The configured sets, or every set released on or before `as_of`, oldest first."""
        if self.sets:
            return list(self.sets)
        released = [
            s
            for s in self._paged("sets", PokemonTcgSet, {"orderBy": "releaseDate"})
            if s.release_date is not None and s.release_date <= as_of
        ]
        return [s.id for s in sorted(released, key=lambda s: (s.release_date, s.id))]

    def collect(self, set_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The current prices of every card print of `set_id` dated on or before `end`.

        `start` is not used: the API has no history, and the latest price it has is the
        observation of its own date."""
        where = f"{self.name} set {set_id}"
        params = {"q": f"set.id:{set_id}", "select": CARD_FIELDS}
        cards = self._paged("cards", PokemonTcgCard, params)
        unnamed: set[str] = set()
        candidates = (
            row for card in cards for row in self._observations(card, unnamed) if row["date"] <= end
        )
        with naming(where):
            frame = observations_frame(candidates, where=where)
        if unnamed:
            logger.warning(
                "%s: price keys without a letter or digit, skipped (no print id can be made of "
                "them): %s",
                where,
                ", ".join(repr(key) for key in sorted(unnamed)),
            )
        unknown = sorted(set(frame["variant"]) - set(KNOWN_VARIANTS))
        if unknown:
            logger.warning(
                "%s: price keys not in TCGPLAYER_PRICE_KEYS, each kept as a print of its own: %s",
                where,
                ", ".join(unknown),
            )
        return frame

    def _paged[M: _Identified](
        self, path: str, model: type[M], params: dict[str, str]
    ) -> Iterator[M]:
        """Every valid item of a paged list, page after page (see `valid_items`), each once."""
        where = f"GET {self.client.base_url}/{path}"
        return each_once(valid_items(self._items(path, params), model, where), where)

    def _items(self, path: str, params: dict[str, str]) -> Iterator[Any]:
        """Every item of a paged list, as the API wrote it."""
        number = 1
        items = 0
        while True:
            page = self.client.get_model(
                path, Page, {**params, "page": number, "pageSize": PAGE_SIZE}
            )
            yield from page.data
            if page.is_last:
                return
            items += len(page.data)
            check_list_length(items, f"{self.name} {path} {params}")
            number += 1

    @staticmethod
    def _observations(card: PokemonTcgCard, unnamed: set[str]) -> Iterator[dict[str, Any]]:
        """One candidate observation per variant with a market price; a price key that names
        no variant (no letter or digit: `—`) is added to `unnamed` instead, as `sv1-1_` would
        be a print id with no variant."""
        if card.tcgplayer is None:
            return
        for key, price in card.tcgplayer.prices.items():
            if price is None or not price.market:  # null or 0: no price, as in the CSV format
                continue
            variant = variant_name(key)
            if not variant:
                unnamed.add(key)
                continue
            yield {
                "card_id": card_print_id(card.id, variant),
                "name": card.name,
                "set_id": card.set.id,
                "set_name": card.set.name,
                "series": card.set.series,
                "rarity": card.rarity,
                "variant": variant,
                "release_date": card.set.release_date,
                "date": card.tcgplayer.updated_at,
                "market_price": price.market,
                "low_price": price.low,
                "high_price": price.high,
            }
