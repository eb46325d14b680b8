"""The `csv` price source: a file in the long CSV format (`../shared/data/README.md`).

One row per card print and date. The rows are checked in vectorised form with the rules of
`PriceObservation` (150k rows load in about a second); only the rows that fail are run through
the pydantic model, to report its message. Bad rows are skipped and reported with their file and
line; when there are too many of them the file is rejected as a whole, because a mostly broken
file is a wrong file rather than a few typos.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from pokewatch.card_ids import CARD_ID_MAX_LENGTH, CARD_ID_PATTERN, set_id_of
from pokewatch.observations import HISTORY_COLUMNS, PriceObservation
from pokewatch.sources.base import SourceError, normalise_history
from pokewatch.sources.variants import VARIANT_SUFFIX
from pokewatch.validation import problems

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("card_id", "date", "market_price")
TEXT_COLUMNS: tuple[str, ...] = ("name", "set_name", "series", "rarity", "variant")
#: Optional numeric columns and whether they must be whole numbers.
OPTIONAL_NUMBERS: dict[str, bool] = {"low_price": False, "high_price": False, "volume": True}
#: How many bad lines the error of a rejected file quotes.
QUOTED_BAD_LINES = 5

# The rule of `CardId`, applied to a whole column at once.
_CARD_ID = re.compile(CARD_ID_PATTERN)
_ISO_DATE = "%Y-%m-%d"

#: Marks the rows of a mask as bad for a reason (see `_parse_columns`).
Flag = Callable[[pd.Series, str], None]


class BadRow(BaseModel):
    """A row of a CSV file that was skipped, and why."""

    model_config = ConfigDict(frozen=True)

    file: str
    #: 1-based line number in the file; the header is line 1.
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class CsvReadResult:
    """The history table of a CSV file (`HISTORY_COLUMNS`) and the rows that were skipped."""

    history: pd.DataFrame
    bad_rows: list[BadRow] = field(default_factory=list)
    #: Data rows in the file (blank lines excluded), the denominator of the bad share.
    total_rows: int = 0

    @property
    def bad_share(self) -> float:
        """Share of the data rows that were bad."""
        return len(self.bad_rows) / self.total_rows if self.total_rows else 0.0


def read_long_csv(path: str | Path, max_bad_share: float = 0.05) -> CsvReadResult:
    """Read a long-format price CSV (plain or `.gz`) into a history table.

    Rows with a 0 or empty market price carry no price and are dropped silently, as the format
    says. Rows with a missing or malformed card id, an unparseable date, a negative or
    non-numeric price (or a bad optional column) are skipped and listed in `bad_rows`. Raises
    `SourceError` when the file cannot be read, lacks a required column, or when the share of
    bad rows is above `max_bad_share`.

    Line numbers assume one line per row (no line breaks inside quoted fields).
    """
    name = str(path)
    raw = _read_text_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise SourceError(f"{name}: missing required column(s) {', '.join(missing)}")

    # Blank lines are kept by the reader only so that line numbers stay right.
    blank = (raw == "").all(axis=1)
    raw = raw[~blank]
    lines = raw.index.to_numpy() + 2  # 0-based data row → 1-based line, after the header

    parsed, reasons = _parse_columns(raw)
    bad = reasons.notna()
    no_price = parsed["market_price"].isna() | (parsed["market_price"] == 0)

    bad_rows = [
        BadRow(file=name, line=int(line), reason=_explain(record, fallback))
        for line, record, fallback in zip(
            lines[bad.to_numpy()],
            raw[bad].to_dict("records"),
            reasons[bad],
            strict=True,
        )
    ]
    result = CsvReadResult(
        history=_history(parsed[~bad & ~no_price]), bad_rows=bad_rows, total_rows=len(raw)
    )
    if result.bad_share > max_bad_share:
        quoted = "; ".join(str(b) for b in bad_rows[:QUOTED_BAD_LINES])
        raise SourceError(
            f"{name}: {len(bad_rows)} bad rows of {result.total_rows} "
            f"({result.bad_share:.1%} > {max_bad_share:.1%} allowed), first: {quoted}"
        )
    if bad_rows:
        logger.warning("%s: skipped %d bad rows, first: %s", name, len(bad_rows), bad_rows[0])
    return result


def _read_text_table(path: str | Path) -> pd.DataFrame:
    """Every cell as stripped text ("" when empty), one row per line after the header."""
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise SourceError(f"{path}: cannot read CSV: {e}") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw.apply(lambda column: column.str.strip())


def _parse_columns(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Typed columns, and per row the first reason it is bad (NaN when it is good)."""
    reasons = pd.Series(pd.NA, index=raw.index, dtype="object")

    def flag(mask: pd.Series, reason: str) -> None:
        # The first failing check names the row; later checks do not overwrite it.
        reasons[mask & reasons.isna()] = reason

    out = pd.DataFrame(index=raw.index)
    card_id = raw["card_id"]
    flag(card_id == "", "missing card_id")
    flag(
        (card_id != "")
        & (~card_id.str.fullmatch(_CARD_ID) | (card_id.str.len() > CARD_ID_MAX_LENGTH)),
        "invalid card_id",
    )
    out["card_id"] = card_id

    out["date"] = pd.to_datetime(raw["date"], format=_ISO_DATE, errors="coerce")
    flag(out["date"].isna(), "unparseable date")

    price = _number(raw["market_price"], "market_price", flag)
    flag(price < 0, "negative market_price")
    out["market_price"] = price

    for column, whole in OPTIONAL_NUMBERS.items():
        if column not in raw.columns:
            continue
        value = _number(raw[column], column, flag)
        flag(value < 0, f"negative {column}")
        if whole:
            flag(value.notna() & (value != value.round()), f"{column} is not a whole number")
        out[column] = value

    if "release_date" in raw.columns:
        released = pd.to_datetime(raw["release_date"], format=_ISO_DATE, errors="coerce")
        flag(released.isna() & (raw["release_date"] != ""), "unparseable release_date")
        out["release_date"] = released

    for column in TEXT_COLUMNS:
        if column in raw.columns:
            out[column] = raw[column]
    return out, reasons


def _number(text: pd.Series, column: str, flag: Flag) -> pd.Series:
    """A numeric column where empty is NaN; text that is not a finite number is flagged."""
    value = pd.to_numeric(text, errors="coerce").astype("float64")
    finite = value.abs().lt(math.inf)  # False for NaN and ±inf
    flag((text != "") & ~finite, f"non-numeric {column}")
    return value.where(finite)


def _history(good: pd.DataFrame) -> pd.DataFrame:
    """The history table of the good rows: set ids and variants derived from the card id."""
    frame = good.copy()
    ids = frame["card_id"]
    unique = ids.unique()
    frame["set_id"] = ids.map(dict(zip(unique, map(set_id_of, unique), strict=True)))
    for column in TEXT_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    # A card print id ends with `_<variant>`: the variant of a row that does not name one.
    suffix = ids.str.extract(VARIANT_SUFFIX, expand=False).fillna("")
    frame["variant"] = frame["variant"].where(frame["variant"] != "", suffix)
    return normalise_history(frame.reindex(columns=list(HISTORY_COLUMNS)))


def _explain(record: dict[str, str], fallback: str) -> str:
    """Pydantic's message for a bad row, or the vectorised reason when pydantic accepts it."""
    fields = {k: v for k, v in record.items() if k in PriceObservation.model_fields and v != ""}
    fields["set_id"] = set_id_of(record.get("card_id", ""))
    try:
        PriceObservation.model_validate(fields)
    except ValidationError as e:
        return problems(e)
    return fallback


class CsvSource:
    """A `PriceSource` over one long-format CSV file, read once on first use."""

    name = "csv"

    def __init__(self, path: str | Path, max_bad_share: float = 0.05) -> None:
        self.path = path
        self.max_bad_share = max_bad_share
        self._history: pd.DataFrame | None = None

    @property
    def history(self) -> pd.DataFrame:
        """The whole file as a history table (read on first access)."""
        if self._history is None:
            self._history = read_long_csv(self.path, self.max_bad_share).history
        return self._history

    def list_sets(self, as_of: dt.date) -> list[str]:
        """The sets with at least one price dated on or before `as_of`."""
        history = self.history
        known = history.loc[history["date"] <= pd.Timestamp(as_of), "set_id"]
        return sorted(known.unique().tolist())

    def collect(self, set_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The rows of `set_id` dated `start..end` (inclusive)."""
        history = self.history
        rows = history[
            (history["set_id"] == set_id)
            & (history["date"] >= pd.Timestamp(start))
            & (history["date"] <= pd.Timestamp(end))
        ]
        return rows.reset_index(drop=True)
