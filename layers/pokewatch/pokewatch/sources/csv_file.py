"""The `csv` price source: a file in the long CSV format (`../shared/data/README.md`).

One row per card print and date. The rows are checked in vectorised form with the rules of
`PriceObservation` (150k rows load in about a second), each check naming its column and rule so
that a problem is reported with the offending text. Bad rows are skipped and reported with their
file and line; when there are too many of them the file is rejected as a whole, because a mostly
broken file is a wrong file rather than a few typos. The rejection groups the bad rows by reason:
a wrong format makes every row fail for the same reason, which one line with a count says best.

Only the required columns (card id, date, market price) make a row bad. An unusable value in an
optional column is read as missing, with one warning per column: exports differ most in the
columns the model can do without, and one odd column should not cost the whole file.
"""

from __future__ import annotations

import datetime as dt
import logging
import lzma
import math
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.common import infer_compression
from pydantic import BaseModel, ConfigDict

from pokewatch.card_ids import CARD_ID_MAX_LENGTH, CARD_ID_PATTERN, CARD_ID_PROBLEM, set_id_of
from pokewatch.observations import HISTORY_COLUMNS
from pokewatch.price_limits import (
    EARLIEST_DATE,
    IMPLAUSIBLE_DAY,
    LATEST_DATE,
    MAX_PRICE_USD,
    MAX_VOLUME,
)
from pokewatch.price_spikes import describe_spikes, find_spikes
from pokewatch.sources.base import SourceError, normalise_history
from pokewatch.sources.variants import VARIANT_SUFFIX, card_print_id, variant_name

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("card_id", "date", "market_price")
TEXT_COLUMNS: tuple[str, ...] = ("name", "set_name", "series", "rarity", "variant")
#: Optional numeric columns and whether they must be whole numbers.
OPTIONAL_NUMBERS: dict[str, bool] = {"low_price": False, "high_price": False, "volume": True}
#: The numeric columns that are prices, held below `MAX_PRICE_USD`.
PRICE_COLUMNS = frozenset({"market_price", "low_price", "high_price"})
#: Texts that mean "no value" in a number or date column, as an empty cell does (compared in
#: lower case): what spreadsheets, R and pandas write for a missing value.
MISSING_MARKERS: frozenset[str] = frozenset(
    {"na", "n/a", "#n/a", "<na>", "null", "none", "nan", "-nan"}
)
#: How many header names a missing-column error quotes.
QUOTED_COLUMNS = 12
#: How many reasons (each with its count, first line and example) a bad-row summary quotes.
QUOTED_REASONS = 3
#: How much of an offending cell a message quotes.
QUOTED_CHARS = 40

# The rule of `CardId`, applied to a whole column at once.
_CARD_ID = re.compile(CARD_ID_PATTERN)
_ISO_DATE = "%Y-%m-%d"
# A day written as a timestamp at midnight (UTC), as spreadsheets export dates: the day part.
_MIDNIGHT = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})[ T]00:00(?::00(?:\.0+)?)?(?:Z|\+00:?00)?$")
#: Fields a data row may have beyond the header's (read, checked to be empty, and dropped).
_SPARE_FIELDS = 4
#: What reading a file that is not a readable (compressed) CSV raises, besides pandas' parser
#: errors: a truncated download ends its gzip / bz2 / xz stream early (EOFError), a damaged one
#: fails in its codec, a zip holds several files (ValueError), a `.zst` needs a codec that is
#: not installed (ImportError). Each is the file's problem, to be said in one line.
_UNREADABLE: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    ValueError,
    ImportError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    tarfile.TarError,
)
#: The first bytes of a gzip stream: a gzip file is read as one whatever its name says.
_GZIP_MAGIC = b"\x1f\x8b"
_TIMESTAMP = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}")
# pandas' tokenizer errors, whose row numbers `_parser_error` turns into lines.
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_LONG_ROW = re.compile(r"Expected (\d+) fields in line (\d+), saw \d+")


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


def read_long_csv(path: str | Path, max_bad_share: float, spike_factor: float) -> CsvReadResult:
    """Read a long-format price CSV (plain, `.gz`, `.bz2`, `.xz` or a one-file `.zip`; a gzip
    stream under any name) into a history table.

    Rows with a 0 or empty market price carry no price and are dropped silently, as the format
    says; in a number or date column, `MISSING_MARKERS` such as "NA" or "null" count as empty.
    Rows with a missing or malformed card id, a missing or unparseable date, or a negative or
    non-numeric price are skipped and listed in `bad_rows`. An unusable value in an optional
    column (volume, low_price, high_price, release_date) is read as missing and logged, once per
    column, with its count, first line and an example; so are rows that repeat a (card_id, date)
    with a different market price (exact repeats are harmless and pass silently), and isolated
    price spikes at `spike_factor` (`price_spikes`: kept in the history, which loses nothing,
    and named with their lines because the features leave them out). Raises
    `SourceError` when the file cannot be read, lacks a required column, when the share of bad
    rows is above `max_bad_share`, or when no row has a price. A row is named by the line it
    starts on, counting the line breaks inside quoted fields before it.
    """
    name = str(path)
    raw, lines = _read_text_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise SourceError(
            f"{name}: missing required column(s) {', '.join(missing)}; {_header(raw.columns)}"
        )

    # Blank lines are kept by the reader only so that line numbers stay right.
    blank = (raw == "").all(axis=1)
    raw = raw[~blank]
    lines = lines[~blank]

    parsed, problems = _parse_columns(raw)
    bad = _bad_table(raw, lines, problems)
    no_price = parsed["market_price"].isna() | (parsed["market_price"] == 0)
    good = ~raw.index.isin(bad.index) & ~no_price

    reasons = bad["column"] + ": " + _details(bad["problem"], bad["text"])
    bad_rows = [
        BadRow(file=name, line=line, reason=reason)
        for line, reason in zip(bad["line"].tolist(), reasons.tolist(), strict=True)
    ]
    result = CsvReadResult(history=_history(parsed[good]), bad_rows=bad_rows, total_rows=len(raw))
    if result.bad_share > max_bad_share:
        raise SourceError(
            f"{name}: {_count(len(bad_rows), 'bad row')} of {result.total_rows} "
            f"({result.bad_share:.1%} > {max_bad_share:.1%} allowed): {_summary(name, bad)}"
        )
    if result.history.empty:
        # An empty history is no price data at all: better said here, with the file's name,
        # than found out by a later stage that needs prices.
        found = (
            f"{_count(result.total_rows, 'data row')}: {len(bad_rows)} bad, the others with a "
            "market_price of 0 or empty"
            if result.total_rows
            else "the file has no data rows"
        )
        raise SourceError(f"{name}: no priced rows ({found})")
    # Warnings only for a file that is read: a rejected one has its error.
    if bad_rows:
        logger.warning(
            "%s: skipped %s: %s", name, _count(len(bad_rows), "bad row"), _summary(name, bad)
        )
    _warn_unusable_optional(name, raw[good], lines, problems)
    _warn_conflicting_prices(name, parsed[good], lines)
    _warn_spikes(name, result.history, lines[good], spike_factor)
    return result


def _read_text_table(path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """Every cell as stripped text ("" when empty), one row per record after the header, and
    the line each row starts on. Header names are stripped and in lower case: spreadsheets and
    hand edits write `CARD_ID` or `Date`. A field beyond the header's (a delimiter at the end of
    every line, as some exports write) is dropped when it is empty and an error naming its line
    when it holds a value."""
    try:
        try:
            header, raw = _read_csv(path)
        except UnicodeDecodeError as e:
            raise SourceError(_not_utf8(path, e)) from e
    except pd.errors.EmptyDataError as e:  # pandas: "No columns to parse from file"
        raise SourceError(
            f"{path}: the file is empty (no header line naming the columns, no rows)"
        ) from e
    except pd.errors.ParserError as e:
        raise SourceError(_parser_error(path, e)) from e
    except _UNREADABLE as e:
        raise SourceError(f"{path}: cannot read CSV: {_reason(e)}") from e
    names = [c.strip().lower() for c in header]
    if not isinstance(raw.index, pd.RangeIndex):
        # pandas turns the leading fields of rows longer than the names it was given into an
        # index: the first data row has more fields than even the spare columns hold.
        raise SourceError(_too_many_fields(path, 2, len(names)))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceError(
            f"{path}: column(s) {', '.join(repeated)} appear more than once in the header "
            "(names are compared in lower case)"
        )
    lines = _start_lines(raw)
    spare = raw.iloc[:, -_SPARE_FIELDS:].fillna("").apply(lambda column: column.str.strip())
    beyond = (spare != "").to_numpy()
    if beyond.any():
        row, field = np.argwhere(beyond)[0]
        raise SourceError(
            f"{path}:{lines.iat[row]}: a field beyond the header's {len(names)} columns holds "
            f"{spare.iat[row, field][:QUOTED_CHARS]!r} (a value with an unquoted comma, or a "
            "column without a name?)"
        )
    raw = raw.iloc[:, :-_SPARE_FIELDS]
    raw.columns = names
    return raw.apply(lambda column: column.str.strip()), lines


def _start_lines(cells: pd.DataFrame) -> pd.Series:
    """The 1-based line each data row starts on (the header is line 1): a quoted field may hold
    line breaks (a name typed on two lines), and each one moves every later row a line down."""
    breaks = np.zeros(len(cells), dtype=np.int64)
    for _, column in cells.items():
        # Most files hold none: testing a column's distinct values is cheap, counting its cells
        # is not (a tenth of a second on the real history).
        if any("\n" in value or "\r" in value for value in column.dropna().unique()):
            breaks += column.str.count("\r\n|\r|\n").fillna(0).to_numpy(dtype=np.int64)
    before = np.cumsum(breaks) - breaks
    return pd.Series(np.arange(len(cells)) + 2 + before, index=cells.index)


def _read_csv(path: str | Path, encoding_errors: str = "strict") -> tuple[list[str], pd.DataFrame]:
    """The header's names, and the data rows as text cells: one column per header name, then
    `_SPARE_FIELDS` columns for fields beyond the header's; blank lines kept (they count in
    line numbers).

    The header is read as a row of its own: pandas would rename a repeated name (`date.1`) and,
    on data rows with more fields than the header, make the first column the index."""
    read = partial(
        pd.read_csv,
        path,
        header=None,
        dtype=str,
        keep_default_na=False,
        compression=_compression(path),
        encoding="utf-8-sig",
        encoding_errors=encoding_errors,
    )
    header = [str(name) for name in read(nrows=1).iloc[0]]
    return header, read(
        skiprows=1, skip_blank_lines=False, names=range(len(header) + _SPARE_FIELDS)
    )


def _too_many_fields(path: str | Path, line: int, header_fields: int) -> str:
    """The error of a row with more fields than the header and the spare columns hold."""
    return (
        f"{path}:{line}: more than {header_fields + _SPARE_FIELDS} fields, and the header has "
        f"{header_fields} (is the file comma-separated, with its header on the first line?)"
    )


def _parser_error(path: str | Path, error: pd.errors.ParserError) -> str:
    """pandas' tokenizer error as `<file>:<line>: <problem>`. pandas counts rows from 0 for an
    unclosed quote and from 1 for a long row, the header included (lines, when no quoted field
    holds a line break); an unclosed quote was reported as "row 1" for line 2."""
    message = _reason(error)
    if found := _UNCLOSED_QUOTE.search(message):
        return (
            f"{path}:{int(found[1]) + 1}: a quoted field opens on this line and is never closed "
            "(a '\"' without its closing '\"'; the rest of the file was read into it)"
        )
    if found := _LONG_ROW.search(message):
        return _too_many_fields(path, int(found[2]), int(found[1]) - _SPARE_FIELDS)
    return f"{path}: cannot read CSV: {message}"


def _reason(error: Exception) -> str:
    """Why a file could not be read, in one line: the exception's message, or its type when it
    has none (a truncated stream's EOFError may say nothing)."""
    message = " ".join(str(error).split())
    return message or type(error).__name__


def _compression(path: str | Path) -> str | None:
    """pandas' `compression` for `path`: the one its name says, and a file whose name says none
    but that is a gzip stream is read as one (a `prices.csv` saved from a download that kept its
    gzip encoding; read as text it would be "not UTF-8")."""
    by_name = infer_compression(str(path), "infer")
    if by_name is None:
        try:
            with open(path, "rb") as f:
                if f.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC:
                    return "gzip"
        except OSError:
            pass  # the read itself reports it
    return by_name


def _not_utf8(path: str | Path, error: UnicodeDecodeError) -> str:
    """The error of a file that is not UTF-8, naming the line of the first undecodable byte.

    The decoder's position is one inside pandas' read buffer, not the file: the file is read
    again with undecodable bytes replaced by U+FFFD, and the first cell holding one is the
    line. (A parse error of that second read is the error of the file.)"""
    header, replaced = _read_csv(path, encoding_errors="replace")
    if any("\ufffd" in name for name in header):
        line = 1
    else:
        hit = replaced.apply(lambda column: column.str.contains("\ufffd", regex=False))
        line = int(_start_lines(replaced)[hit.any(axis=1)].iloc[0])  # some cell holds one
    byte = error.object[error.start : error.start + 1].hex()
    return (
        f"{path}: not UTF-8: line {line} has the byte 0x{byte}, which UTF-8 cannot decode "
        "(Excel's plain 'CSV' is Windows-1252); save the file as UTF-8 (Excel: 'CSV UTF-8')"
    )


def _header(columns: pd.Index) -> str:
    """The header as read, for a missing-column error: a header read as one name that holds
    another separator is a file separated by something other than commas."""
    names = ", ".join(repr(c) for c in columns[:QUOTED_COLUMNS])
    more = ", ..." if len(columns) > QUOTED_COLUMNS else ""
    found = f"found {names}{more}"
    separators = [s for s in ";\t|" if s in columns[0]] if len(columns) == 1 else []
    if separators:
        found += f" (separated by {separators[0]!r}? The format separates columns by commas)"
    return found


def _parse_columns(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Typed columns, and per checked column why each cell is unusable (NA when it is usable).

    A cell that is unusable is missing in its typed column."""
    out = pd.DataFrame(index=raw.index)
    problems: dict[str, pd.Series] = {}

    card_id, no_print = _print_ids(raw)
    problem = _no_problem(card_id)
    problem[card_id == ""] = "missing"
    problem[(card_id != "") & ~card_id.str.fullmatch(_CARD_ID)] = CARD_ID_PROBLEM
    problem[card_id.str.len() > CARD_ID_MAX_LENGTH] = (
        f"must be at most {CARD_ID_MAX_LENGTH} characters"
    )
    problem[no_print] = (
        "names no print, and its other rows are of several variants: give this row's variant"
    )
    out["card_id"], problems["card_id"] = card_id, problem

    out["date"], problems["date"] = _days(raw["date"], required=True)
    out["market_price"], problems["market_price"] = _number(raw["market_price"], "market_price")

    for column in OPTIONAL_NUMBERS:
        if column in raw.columns:
            out[column], problems[column] = _number(raw[column], column)
    if "release_date" in raw.columns:
        out["release_date"], problems["release_date"] = _days(raw["release_date"], required=False)

    for column in TEXT_COLUMNS:
        if column in raw.columns:
            out[column] = raw[column]
    return out, problems


def _print_ids(raw: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The card print id of every row, and which rows cannot say which print they are of.

    The format's print id is `<card id>_<variant>`. An id without `_` (`base1-4`, a pokemontcg.io
    or shop id) names only the card: with the row's variant it becomes its print's id, as the
    pokemontcg source writes it (two prints of one card have different prices; under one id they
    would be one card priced twice a day, a history jumping between the prints). An id with `_`
    names its print already and is kept as written. A row whose variant is empty is of the print
    its id's other rows name when they name one only; when they name several it cannot say
    which, and is a bad row."""
    if "variant" not in raw.columns:
        return raw["card_id"], pd.Series(False, index=raw.index)
    # Worked out once per distinct (card_id, variant): the real file has 2,881 on 150k rows.
    codes, pairs = pd.factorize(raw["card_id"] + "\x00" + raw["variant"])
    named = [(c, variant_name(v)) for c, v in (pair.split("\x00", 1) for pair in pairs)]
    prints: dict[str, set[str]] = {}
    for card_id, name in named:
        if name and card_id and "_" not in card_id:
            prints.setdefault(card_id, set()).add(name)
    print_ids, ambiguous = [], []
    for card_id, name in named:
        of_card = prints.get(card_id, set())
        name = name or (next(iter(of_card)) if len(of_card) == 1 else "")
        print_ids.append(_print_id(card_id, name) if card_id in prints and name else card_id)
        ambiguous.append(len(of_card) > 1 and not name)
    return (
        pd.Series(np.asarray(print_ids, dtype=object)[codes], index=raw.index),
        pd.Series(np.asarray(ambiguous, dtype=bool)[codes], index=raw.index),
    )


def _print_id(card_id: str, variant: str) -> str:
    """`card_id` with the snake-case `variant` appended, unless that would be too long: a valid
    id must not make its row bad."""
    print_id = card_print_id(card_id, variant)
    return print_id if len(print_id) <= CARD_ID_MAX_LENGTH else card_id


def _no_problem(text: pd.Series) -> pd.Series:
    """A problem column for `text` where every cell is usable."""
    return pd.Series(pd.NA, index=text.index, dtype="object")


def _days(text: pd.Series, required: bool) -> tuple[pd.Series, pd.Series]:
    """A date column (NaT when empty), and why a cell is not a date (or, when `required`, that
    it is empty). A timestamp at midnight UTC is its day; any other time is not a day of the
    daily format, and saying so beats guessing which day was meant."""
    # Each distinct text is parsed once: dates repeat on every row of their day (the 150k rows
    # of the real file hold about 50), and parsing is the slow part, above all when it fails.
    codes, distinct = pd.factorize(text)
    unique = pd.Series(distinct)
    day = pd.to_datetime(unique, format=_ISO_DATE, errors="coerce")
    unparsed = unique[day.isna()]
    day.loc[unparsed.index] = pd.to_datetime(
        unparsed.str.replace(_MIDNIGHT, r"\1", regex=True), format=_ISO_DATE, errors="coerce"
    )
    failed = unparsed[day.loc[unparsed.index].isna()]
    empty = _empty(failed)
    problem = _no_problem(unique)
    problem.loc[failed.index[~empty]] = "must be a date YYYY-MM-DD"
    # A day pandas parses but cannot hold in the history's nanoseconds (0224 for 2024) failed
    # the whole file later on; it is the row's problem, as any other implausible day is.
    out_of_range = day.notna() & ~day.between(
        pd.Timestamp(EARLIEST_DATE), pd.Timestamp(LATEST_DATE)
    )
    problem.loc[out_of_range] = IMPLAUSIBLE_DAY
    day = day.where(~out_of_range)
    timestamp = failed.index[~empty & failed.str.match(_TIMESTAMP)]
    problem.loc[timestamp] = "must be a day YYYY-MM-DD; a time is accepted only at midnight UTC"
    if required:
        problem.loc[failed.index[empty]] = "missing"
    return (
        pd.Series(day.to_numpy()[codes], index=text.index),
        pd.Series(problem.to_numpy()[codes], index=text.index, dtype="object"),
    )


def _number(text: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """The numeric `column` (NaN when empty), and why a cell is not a finite number ≥ 0 (whole
    and below `MAX_VOLUME` for a count of `OPTIONAL_NUMBERS`, below `MAX_PRICE_USD` for a
    price)."""
    value = pd.to_numeric(text, errors="coerce").astype("float64")
    finite = value.abs().lt(math.inf)  # False for NaN and ±inf
    problem = _no_problem(text)
    unparsed = text[~finite]
    problem.loc[unparsed.index[~_empty(unparsed)]] = "must be a number"
    problem[finite & (value < 0)] = "must not be negative"
    if column in PRICE_COLUMNS:
        problem[finite & (value >= MAX_PRICE_USD)] = f"must be below {MAX_PRICE_USD:,.0f} (USD)"
    if OPTIONAL_NUMBERS.get(column, False):
        problem[finite & (value >= 0) & (value != value.round())] = "must be a whole number"
        problem[finite & (value >= MAX_VOLUME)] = f"must be below {MAX_VOLUME:,}"
    return value.where(problem.isna()), problem


def _empty(text: pd.Series) -> pd.Series:
    """The cells that are empty or hold one of the `MISSING_MARKERS` (called on the cells that
    did not parse: comparing those alone keeps a clean file fast)."""
    return (text == "") | text.str.lower().isin(MISSING_MARKERS)


def _bad_table(raw: pd.DataFrame, lines: pd.Series, problems: dict[str, pd.Series]) -> pd.DataFrame:
    """The bad rows in file order: line, the first required column with a problem, the problem
    and the cell's text."""
    parts = []
    seen = pd.Series(False, index=raw.index)
    for column in REQUIRED_COLUMNS:
        problem = problems[column]
        rows = problem.notna() & ~seen
        seen |= rows
        parts.append(
            pd.DataFrame(
                {
                    "line": lines[rows],
                    "column": column,
                    "problem": problem[rows],
                    "text": raw.loc[rows, column],
                }
            )
        )
    return pd.concat(parts).sort_index()


def _warn_unusable_optional(
    name: str, raw: pd.DataFrame, lines: pd.Series, problems: dict[str, pd.Series]
) -> None:
    """One warning per optional column with unusable values (which are read as missing) in the
    rows of `raw` (those kept: a skipped or unpriced row's optional values are not used)."""
    for column, problem in problems.items():
        unusable = problem.reindex(raw.index).notna()
        if column in REQUIRED_COLUMNS or not unusable.any():
            continue
        first = unusable.idxmax()
        detail = _details(problem[[first]], raw.loc[[first], column]).iloc[0]
        logger.warning(
            "%s: %s: %s read as missing, first at %s:%d: %s",
            name,
            column,
            _count(unusable.sum(), "unusable value"),
            name,
            lines[first],
            detail,
        )


def _warn_conflicting_prices(name: str, priced: pd.DataFrame, lines: pd.Series) -> None:
    """One warning for the (card_id, date) pairs whose rows disagree on the market price: the
    history keeps them all, and later stages use the last row of a pair
    (`card_day.last_per_card_day`), so the other prices would be dropped without a word."""
    keys = ["card_id", "date"]
    repeated = priced[priced.duplicated(keys, keep=False)]
    prices = repeated.groupby(keys, sort=False)["market_price"].nunique()
    conflicting = prices[prices > 1]
    if conflicting.empty:
        return
    card_id, date = conflicting.index[0]
    first = repeated[(repeated["card_id"] == card_id) & (repeated["date"] == date)]
    logger.warning(
        "%s: %s repeated with different market prices, the last row of each is used; "
        "first at %s:%d: %s on %s priced %s (lines %s)",
        name,
        _count(len(conflicting), "(card_id, date) pair"),
        name,
        lines[first.index[0]],
        card_id,
        f"{date:%Y-%m-%d}",
        ", ".join(f"{p:g}" for p in first["market_price"]),
        ", ".join(str(line) for line in lines[first.index]),
    )


def _warn_spikes(name: str, history: pd.DataFrame, lines: pd.Series, factor: float) -> None:
    """One warning naming the isolated price spikes of `history` (whose rows are those of
    `lines`, in order) with their lines."""
    spikes = find_spikes(history, factor)
    if spikes.empty:
        return
    at = lines.to_numpy()[spikes["row"].to_numpy()]
    logger.warning("%s: %s", name, describe_spikes(spikes, factor, [f"{name}:{n}" for n in at]))


def _details(problem: pd.Series, text: pd.Series) -> pd.Series:
    """`<problem>, found '<text>'` (the problem alone when the cell is empty)."""
    found = ", found '" + text.str.slice(0, QUOTED_CHARS) + "'"
    return problem + found.where(text != "", "")


def _summary(name: str, bad: pd.DataFrame) -> str:
    """The bad rows grouped by reason, most frequent first: `<column>: <count> rows, first at
    <file>:<line>: <problem>, found '<text>'`, for the first `QUOTED_REASONS` reasons."""
    groups = bad.groupby(["column", "problem"], sort=False).agg(
        rows=("line", "size"), line=("line", "first"), text=("text", "first")
    )
    groups = groups.sort_values("rows", ascending=False, kind="stable").reset_index()
    groups["detail"] = _details(groups["problem"], groups["text"])
    quoted = [
        f"{g.column}: {_count(g.rows, 'row')}, first at {name}:{g.line}: {g.detail}"
        for g in groups.head(QUOTED_REASONS).itertuples()
    ]
    more = len(groups) - QUOTED_REASONS
    return "; ".join(quoted) + (f"; and {more} more reasons" if more > 0 else "")


def _count(n: int, noun: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _history(good: pd.DataFrame) -> pd.DataFrame:
    """The history table of the good rows: set ids and variants derived from the card id."""
    frame = good.copy()
    ids = frame["card_id"]
    # Derived once per card print (the real file: 2,881 ids on 150k rows).
    unique = pd.Series(ids.unique())
    frame["set_id"] = ids.map(dict(zip(unique, map(set_id_of, unique), strict=True)))
    for column in TEXT_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    # A card print id ends with `_<variant>`: the variant of a row that does not name one.
    variants = unique.str.extract(VARIANT_SUFFIX, expand=False).fillna("")
    suffix = ids.map(dict(zip(unique, variants, strict=True)))
    frame["variant"] = frame["variant"].where(frame["variant"] != "", suffix)
    return normalise_history(frame.reindex(columns=list(HISTORY_COLUMNS)))


class CsvSource:
    """A `PriceSource` over one long-format CSV file, read once on first use."""

    name = "csv"

    def __init__(self, path: str | Path, max_bad_share: float, spike_factor: float) -> None:
        self.path = path
        self.max_bad_share = max_bad_share
        self.spike_factor = spike_factor
        self._history: pd.DataFrame | None = None

    @property
    def history(self) -> pd.DataFrame:
        """The whole file as a history table (read on first access)."""
        if self._history is None:
            self._history = read_long_csv(self.path, self.max_bad_share, self.spike_factor).history
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
