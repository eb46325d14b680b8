"""The interface every price source implements, and the price-history table it returns."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from pokewatch.observations import HISTORY_COLUMNS, TEXT_COLUMNS, PriceObservation

logger = logging.getLogger(__name__)

#: More items than this in one paged list (a set's cards, the sets) is a server paging in a loop
#: (a page number or offset it ignores, an end it never announces): no set has a thousand prints.
MAX_LIST_ITEMS = 20_000


def check_list_length(items: int, where: str) -> None:
    """SourceError once a paged list has run past `MAX_LIST_ITEMS`, rather than paging on
    until the function times out and its retries do the same."""
    if items > MAX_LIST_ITEMS:
        raise SourceError(
            f"{where}: more than {MAX_LIST_ITEMS} items; the server's paging does not end"
        )


class SourceError(RuntimeError):
    """A source failed for a reason worth reporting (HTTP status, bad file, ...)."""


class TransientSourceError(SourceError):
    """A failure that a retry may cure (timeouts, 429, 5xx): the state machine retries it."""


@contextmanager
def naming(where: str) -> Iterator[None]:
    """Within the block, a SourceError's message starts with `where` (`pokemontcg set sv1`),
    its class kept (a transient one is still retried): the HTTP client names the URL, whose
    query, not shown, holds the set."""
    try:
        yield
    except SourceError as e:
        raise type(e)(f"{where}: {e}") from e


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


def observations_frame(candidates: Iterable[dict[str, Any]], where: str) -> pd.DataFrame:
    """A history table of the candidate observations (fields of `PriceObservation`) that
    validate; the others are logged, naming `where`, and skipped, so that one odd card of an
    API's answer does not lose a whole set."""
    rows = []
    for fields in candidates:
        try:
            rows.append(PriceObservation.model_validate(fields).model_dump())
        except ValidationError as e:
            logger.warning("%s: skipped %s (%s)", where, fields.get("card_id"), first_problem(e))
    return normalise_history(pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


def valid_items[M: BaseModel](items: Iterable[Any], model: type[M], where: str) -> Iterator[M]:
    """The items of an API's list that validate as `model`; each other is logged, naming
    `where`, its id and its first problem, and skipped, so that one odd card (a null name, a
    price "N/A", an `updatedAt` missing) does not lose its whole set. A list none of whose items
    validates is a SourceError: that is the API's shape changing, not one card."""
    skipped: list[str] = []
    valid = 0
    for position, item in enumerate(items):
        try:
            validated = model.model_validate(item)
        except ValidationError as e:
            problem = f"{_item_name(item, position)} ({first_problem(e)})"
            skipped.append(problem)
            logger.warning("%s: skipped %s", where, problem)
            continue
        valid += 1
        yield validated
    if skipped and not valid:
        raise SourceError(
            f"{where}: unexpected response shape (none of its {len(skipped)} items is valid; "
            f"first: {skipped[0]})"
        )


class Identified(Protocol):
    """An item of an API's list, known by its id (None: an item without one)."""

    @property
    def id(self) -> str | None: ...


def each_once[M: Identified](items: Iterable[M], where: str) -> Iterator[M]:
    """The items as first seen, each id once: pages read one after the other overlap when the
    list shifts in between, and a repeated card would be its prices twice, a repeated set
    collected twice. An item without an id is kept. The repeats are counted in one warning
    naming `where`."""
    seen: set[str] = set()
    repeated: list[str] = []
    for item in items:
        if item.id is not None and item.id in seen:
            repeated.append(item.id)
            continue
        if item.id is not None:
            seen.add(item.id)
        yield item
    if repeated:
        logger.warning(
            "%s: items seen again on a later page, each kept once: %d (first: %r)",
            where,
            len(repeated),
            repeated[0],
        )


def first_problem(error: ValidationError) -> str:
    """`field.path: message` of the first error of a validation."""
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'item'}: {first['msg']}"


def _item_name(item: object, position: int) -> str:
    # The id a person can look up, when the item has one.
    identifier = item.get("id") if isinstance(item, dict) else None
    return repr(identifier) if isinstance(identifier, str | int) else f"item {position}"


def normalise_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Column order and dtypes of a history table; dates become `datetime64[ns]` days, text
    becomes strings (or stays categorical, see `_text`)."""
    out = frame.reindex(columns=list(HISTORY_COLUMNS))
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["release_date"] = pd.to_datetime(out["release_date"]).astype("datetime64[ns]")
    for column in ("market_price", "low_price", "high_price"):
        out[column] = out[column].astype("float64")
    out["volume"] = out["volume"].astype("Int64")
    for column in TEXT_COLUMNS:
        out[column] = _text(out[column])
    return out.reset_index(drop=True)


def _text(column: pd.Series) -> pd.Series:
    """A text column: strings, missing as "". A categorical stays one, recoded to the sorted
    categories of its values as strings (so that its codes sort as the strings do): a large
    history holds its text as categoricals, and only their few categories are converted."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        if not pd.api.types.is_string_dtype(column):
            # A column the source does not have is all-NaN floats; "" needs an object column.
            column = column.astype(object)
        return column.fillna("").astype(str)
    text = column.cat.categories.astype(str)
    codes = column.cat.codes.to_numpy()
    if (codes < 0).any():
        text = text.append(pd.Index([""]))
        codes = np.where(codes < 0, len(text) - 1, codes)
    categories = text.unique().sort_values()
    recoded = pd.Categorical.from_codes(categories.get_indexer(text)[codes], categories=categories)
    return pd.Series(recoded, index=column.index, name=column.name)
