"""The serving table: what the prediction API needs, nothing more, in a compact binary file.

Layout of `models/<version>/serving.bin`: the magic line, a little-endian u32 header length, a
JSON header (`ServingHeader`: model facts, one row of attributes per card, each card's offset
into the rows), then six column arrays over all rows sorted by card and date: day ordinals
(int32) and market price, fair price, low, high and expected price (float32). Loading is one
validated parse of the header and six `frombytes`, so the API's cold start does not pay for
pandas, numpy or a per-row parse.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import struct
import unicodedata
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

from pydantic import BaseModel, ValidationError, field_validator

from pokewatch.validation import problems

MAGIC = b"PKWSERVING2\n"
#: The column arrays of a serving file, in file order.
COLUMNS = ("day", "price", "fair", "low", "high", "expected")
#: The columns of every format this code reads, by magic line. Format 1 had no expected price
#: (the signal was on the fair price, which stands in for it): the model in service keeps
#: answering between a deploy of this code and the next pipeline run.
_FORMATS = {MAGIC: COLUMNS, b"PKWSERVING1\n": COLUMNS[:-1]}
_TYPECODES = {"day": "i", "price": "f", "fair": "f", "low": "f", "high": "f", "expected": "f"}
#: Columns the signal or the API divides by.
_POSITIVE_COLUMNS = ("price", "fair", "expected")


class ServingFormatError(ValueError):
    """The serving file is not one this code can read."""


class ModelFacts(BaseModel):
    """What the header says about the model behind the table."""

    model_version: str
    trained_at: dt.datetime
    data_as_of: dt.date
    horizon_days: int
    interval_level: float


class CardInfo(BaseModel):
    """The listing attributes of one card print."""

    card_id: str
    name: str
    set_id: str
    set_name: str
    rarity: str
    variant: str


#: The attributes of a card in the order of `CardInfo`'s fields, as the header lists them.
CARD_FIELDS = tuple(CardInfo.model_fields)
#: One card of the header: its `CARD_FIELDS` values. Rows rather than objects: the whole header is
#: then validated in one call, and a card becomes a `CardInfo` when it is asked for.
CardRow = tuple[str, str, str, str, str, str]
_CARD_ID = CARD_FIELDS.index("card_id")
#: Positions in a `CardRow` of what a listing filters on (`ServingTable.search_keys`).
_SEARCHED = tuple(CARD_FIELDS.index(f) for f in ("set_id", "set_name", "name", "card_id"))


def search_key(text: str) -> str:
    """`text` as listings compare it: without regard to case, and with an accent written as one
    character (é) or as a letter and a combining mark (e + ◌́, as some keyboards and file names
    give it) the same (Unicode canonical caseless matching)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())


class ServingHeader(BaseModel):
    """The JSON header of a serving file."""

    model: ModelFacts
    card_fields: list[str]
    cards: list[CardRow]
    #: Where each card's rows start, and the number of rows at the end.
    offsets: list[int]
    rows: int

    @field_validator("card_fields")
    @classmethod
    def _are_this_codes_fields(cls, fields: list[str]) -> list[str]:
        # Declared before `cards`, so that this is the first error named when the cards fail too.
        if fields != list(CARD_FIELDS):
            raise ValueError(f"cards have the fields {fields}, not {list(CARD_FIELDS)}")
        return fields


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One served row: the market price of a card on a day and what the model predicted then
    (as stored, in float32: answers round them to cents, the signal does not)."""

    date: dt.date
    market_price: float
    fair_price: float
    fair_price_low: float
    fair_price_high: float
    expected_price: float


class ServingTable:
    """Cards, their recent prices and fair prices; looked up by card id and date."""

    def __init__(
        self,
        facts: ModelFacts,
        cards: list[CardRow],
        offsets: list[int],
        columns: dict[str, array],
    ) -> None:
        self.facts = facts
        self._cards = cards
        self._offsets = offsets
        self._columns = columns
        self._index = {card[_CARD_ID]: i for i, card in enumerate(cards)}
        #: Card ids in order: listings page through them with the last id as the cursor.
        self.listing_ids = sorted(self._index)

    @property
    def card_count(self) -> int:
        """How many cards the table serves."""
        return len(self._cards)

    @cached_property
    def search_keys(self) -> list[tuple[str, ...]]:
        """`search_key`s of (set id, set name, name, card id) per card of `listing_ids`, for filters
        (made on the first filtered listing, not at every cold start)."""
        rows = (self._cards[self._index[card_id]] for card_id in self.listing_ids)
        return [tuple(search_key(row[i]) for i in _SEARCHED) for row in rows]

    # --- reading ----------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> ServingTable:
        """Parse a serving file; raises ServingFormatError on anything malformed."""
        magic = data[: len(MAGIC)]
        names = _FORMATS.get(magic)
        if names is None or len(data) < len(MAGIC) + 4:
            if magic.startswith(b"PKWSERVING"):
                raise ServingFormatError(
                    f"serving file format {magic[10:].strip()!r} is not one this code reads "
                    "(run the pipeline to train a model in the current format)"
                )
            raise ServingFormatError("not a PokeWatch serving file (bad magic)")
        (header_len,) = struct.unpack_from("<I", data, len(MAGIC))
        start = len(MAGIC) + 4
        try:
            header = ServingHeader.model_validate_json(data[start : start + header_len])
        except ValidationError as exc:
            reason = problems(exc, whole="header")
            raise ServingFormatError(f"serving file header is invalid: {reason}") from None
        cards, offsets, n_rows = header.cards, header.offsets, header.rows
        repeated = _repeated([card[_CARD_ID] for card in cards])
        if repeated:
            raise ServingFormatError(f"serving file lists card {repeated!r} more than once")
        if len(offsets) != len(cards) + 1 or offsets[0] != 0 or offsets[-1] != n_rows:
            raise ServingFormatError("serving file offsets do not match its rows")
        if any(lo >= hi for lo, hi in pairwise(offsets)):
            raise ServingFormatError("serving file has a card without rows")
        columns: dict[str, array] = {}
        position = start + header_len
        with memoryview(data) as view:  # slices of a view are not copies
            for name in names:
                column = array(_TYPECODES[name])
                size = column.itemsize * n_rows
                if position + size > len(data):
                    raise ServingFormatError(f"serving file is truncated in column {name!r}")
                column.frombytes(view[position : position + size])
                columns[name] = column
                position += size
        columns.setdefault("expected", columns["fair"])
        return cls(header.model, cards, offsets, columns)

    def __contains__(self, card_id: object) -> bool:
        return card_id in self._index

    def card(self, card_id: str) -> CardInfo:
        """The card with this id (KeyError if the table has none)."""
        # The header was validated as a whole when the file was read. `_fields_set` is given (its
        # default) so that mypy does not match the card's fields to it.
        values = dict(zip(CARD_FIELDS, self._cards[self._index[card_id]], strict=True))
        return CardInfo.model_construct(_fields_set=None, **values)

    def history(self, card_id: str, limit: int | None = None) -> list[PricePoint]:
        """The card's served rows, oldest first (the last `limit` of them)."""
        i = self._index[card_id]
        lo, hi = self._offsets[i], self._offsets[i + 1]
        if limit is not None:
            lo = max(lo, hi - limit)
        return [self._point(r) for r in range(lo, hi)]

    def point_on_or_before(self, card_id: str, day: dt.date | None) -> PricePoint | None:
        """The card's latest row on or before `day` (the latest row when `day` is None)."""
        if day is None:
            return self.latest(card_id)
        i = self._index[card_id]
        lo, hi = self._offsets[i], self._offsets[i + 1]
        r = bisect.bisect_right(self._columns["day"], day.toordinal(), lo, hi) - 1
        return self._point(r) if r >= lo else None

    def latest(self, card_id: str) -> PricePoint:
        """The card's latest row (every card has one: `from_bytes` rejects a card without)."""
        return self._point(self._offsets[self._index[card_id] + 1] - 1)

    def _point(self, r: int) -> PricePoint:
        c = self._columns
        return PricePoint(
            date=dt.date.fromordinal(c["day"][r]),
            market_price=c["price"][r],
            fair_price=c["fair"][r],
            fair_price_low=c["low"][r],
            fair_price_high=c["high"][r],
            expected_price=c["expected"][r],
        )


def serving_file_bytes(
    facts: ModelFacts,
    cards: Sequence[CardInfo],
    counts: Sequence[int],
    columns: dict[str, object],
) -> bytes:
    """Write a serving file. `columns` maps day/price/fair/low/high/expected to sequences (numpy
    arrays or lists) over all rows, grouped by card in the order of `cards`, each card's rows by
    date.

    The API trusts what it reads (checking every row would cost its cold start), so this checks
    it instead: every card has rows, days increase within a card, values are finite, market,
    fair and expected prices above zero."""
    if len(counts) != len(cards) or any(n < 1 for n in counts):
        raise ValueError("every card needs at least one row")
    repeated = _repeated([card.card_id for card in cards])
    if repeated:
        raise ValueError(f"card {repeated!r} is listed more than once")
    offsets = [0]
    for n in counts:
        offsets.append(offsets[-1] + n)
    header = ServingHeader(
        model=facts,
        card_fields=list(CARD_FIELDS),
        cards=[tuple(getattr(card, f) for f in CARD_FIELDS) for card in cards],
        offsets=offsets,
        rows=offsets[-1],
    )
    header_bytes = header.model_dump_json().encode()
    parts = [MAGIC, struct.pack("<I", len(header_bytes)), header_bytes]
    for name in COLUMNS:
        column = _as_array(_TYPECODES[name], columns[name])
        if len(column) != offsets[-1]:
            raise ValueError(f"column {name!r} has {len(column)} rows, expected {offsets[-1]}")
        if name == "day":
            _check_days(column, offsets)
        elif not math.isfinite(sum(column)):
            # One NaN or infinity makes the sum non-finite (values are far below overflow).
            raise ValueError(f"column {name!r} has a non-finite value")
        elif name in _POSITIVE_COLUMNS and min(column, default=1) <= 0:
            raise ValueError(f"column {name!r} has a price that is not above zero")
        parts.append(column.tobytes())
    return b"".join(parts)


def _repeated(card_ids: list[str]) -> str | None:
    """A card id that occurs more than once (each card's rows can be found by its id only)."""
    if len(set(card_ids)) == len(card_ids):
        return None
    return Counter(card_ids).most_common(1)[0][0]


def _as_array(typecode: str, values: object) -> array:
    """`values` as a little-endian array; numpy arrays of the right type are copied as bytes,
    which is much faster than element by element."""
    column = array(typecode)
    try:
        view = memoryview(values)  # type: ignore[arg-type]
    except TypeError:
        view = None
    if view is not None and view.format.lstrip("<=") == typecode and view.c_contiguous:
        column.frombytes(view.cast("B"))
    else:
        column.extend(values)  # type: ignore[arg-type]
    return column


def _check_days(days: array, offsets: list[int]) -> None:
    for i, (lo, hi) in enumerate(pairwise(offsets)):
        if any(a >= b for a, b in pairwise(days[lo:hi])):
            raise ValueError(f"rows of card number {i} are not in increasing date order")
