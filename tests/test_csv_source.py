"""The `csv` source: the long CSV format, bad rows with file and line, the real data file."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pokewatch.observations import HISTORY_COLUMNS, PriceObservation
from pokewatch.settings import Settings
from pokewatch.sources.base import SourceError
from pokewatch.sources.csv_file import CsvReadResult, CsvSource, logger, read_long_csv

REAL_CSV = Path(__file__).resolve().parents[2] / "shared/data/tcgplayer_weekly_2024.csv.gz"

HEADER = "card_id,date,market_price,volume,name,set_name,series,rarity,release_date,variant"
GOOD = [
    "sv1-1_normal,2024-01-07,1.25,3,Pineco,Scarlet & Violet,SV,Common,2023-03-31,normal",
    "sv1-1_normal,2024-01-14,1.30,0,Pineco,Scarlet & Violet,SV,Common,2023-03-31,normal",
    "base1-4_holofoil,2024-01-07,350.0,1,Charizard,Base,Base,Rare Holo,1999-01-09,holofoil",
    "base1-4_holofoil,2024-01-14,361.5,,Charizard,Base,Base,Rare Holo,1999-01-09,holofoil",
]


#: The settings' defaults, which the source takes from `Settings` in every real use.
MAX_BAD_SHARE = Settings.model_fields["csv_max_bad_share"].default
SPIKE_FACTOR = Settings.model_fields["price_spike_factor"].default


def read_csv(
    path: str | Path, max_bad_share: float = MAX_BAD_SHARE, spike_factor: float = SPIKE_FACTOR
) -> CsvReadResult:
    """`read_long_csv` at the settings' defaults unless a test says otherwise."""
    return read_long_csv(path, max_bad_share, spike_factor)


def _source_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the csv source logged: caplog also holds what a thread of an earlier test on this
    worker logs meanwhile (an API test's model loader said "model ... loaded" in one run)."""
    return [r.getMessage() for r in caplog.records if r.name == logger.name]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_good_rows_become_a_history_table(tmp_path: Path) -> None:
    result = read_csv(write_csv(tmp_path / "p.csv", GOOD))

    history = result.history
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert result.bad_rows == []
    assert len(history) == 4
    assert set(history["set_id"]) == {"sv1", "base1"}
    assert history["date"].dtype == "datetime64[ns]"
    charizard = history[history["card_id"] == "base1-4_holofoil"]
    assert charizard["market_price"].tolist() == [350.0, 361.5]
    assert charizard["volume"].isna().tolist() == [False, True]


def test_zero_or_empty_price_is_no_price_not_a_bad_row(tmp_path: Path) -> None:
    lines = [*GOOD, "sv1-2_normal,2024-01-07,0,,,,,,,", "sv1-3_normal,2024-01-07,,,,,,,,"]
    result = read_csv(write_csv(tmp_path / "p.csv", lines))

    assert result.bad_rows == []
    assert len(result.history) == 4


@pytest.mark.parametrize(
    "marker", ["NA", "n/a", "N/A", "#N/A", "<NA>", "null", "NULL", "None", "nan", "NaN", "-nan"]
)
def test_a_missing_value_marker_is_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, marker: str
) -> None:
    unpriced = f"sv1-2_normal,2024-01-07,{marker},{marker},,,,,{marker},"
    optional_missing = f"sv1-3_normal,2024-01-07,2.0,{marker},,,,,{marker},"
    result = read_csv(write_csv(tmp_path / "p.csv", [*GOOD, unpriced, optional_missing]))

    assert result.bad_rows == []
    assert _source_logs(caplog) == []  # a marker is no unusable value
    history = result.history
    assert len(history) == 5 and "sv1-2_normal" not in set(history["card_id"])
    last = history.iloc[-1]
    assert pd.isna(last["volume"]) and pd.isna(last["release_date"])


def test_a_missing_value_marker_in_the_date_is_a_missing_date(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [*GOOD, "sv1-2_normal,NA,1.0,,,,,,,"])

    [bad] = read_csv(path, max_bad_share=0.5).bad_rows

    assert bad.reason == "date: missing, found 'NA'"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            "sv1-1_normal,2024-02-30,1.0,,,,,,,",
            "date: must be a date YYYY-MM-DD, found '2024-02-30'",
        ),
        ("sv1-1_normal,yesterday,1.0,,,,,,,", "date: must be a date YYYY-MM-DD, found 'yesterday'"),
        # A year typo: a day pandas cannot hold in nanoseconds failed the whole file with a
        # traceback (OutOfBoundsDatetime) instead of naming its row.
        (
            "sv1-1_normal,0224-01-21,1.0,,,,,,,",
            "date: must be a date from 1990-01-01 to 2100-12-31, found '0224-01-21'",
        ),
        (
            "sv1-1_normal,9024-01-21,1.0,,,,,,,",
            "date: must be a date from 1990-01-01 to 2100-12-31, found '9024-01-21'",
        ),
        ("sv1-1_normal,,1.0,,,,,,,", "date: missing"),
        ("sv1-1_normal,2024-01-21,-3.5,,,,,,,", "market_price: must not be negative, found '-3.5'"),
        ("sv1-1_normal,2024-01-21,cheap,,,,,,,", "market_price: must be a number, found 'cheap'"),
        ("sv1-1_normal,2024-01-21,inf,,,,,,,", "market_price: must be a number, found 'inf'"),
        # A price no card ever fetched (a unit or parsing error) failed the whole train step.
        (
            "sv1-1_normal,2024-01-21,1e39,,,,,,,",
            "market_price: must be below 10,000,000 (USD), found '1e39'",
        ),
        (",2024-01-21,1.0,,,,,,,", "card_id: missing"),
        ("sv1 1 normal,2024-01-21,1.0,,,,,,,", "card_id: must be a card print id"),
        # A long cell is quoted in part.
        (
            f"sv1-{'9' * 200}_normal,2024-01-21,1.0,,,,,,,",
            f"card_id: must be at most 128 characters, found 'sv1-{'9' * 36}'",
        ),
        # The first failing column names the row.
        ("sv1 1,2024-01-21,-1,,,,,,,", "card_id: must be a card print id"),
    ],
)
def test_a_bad_row_is_skipped_and_reported_with_file_and_line(
    tmp_path: Path, row: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_csv(tmp_path / "p.csv", [*GOOD[:2], row, *GOOD[2:]])

    result = read_csv(path, max_bad_share=0.5)

    assert len(result.history) == 4
    [bad] = result.bad_rows
    assert bad.file == str(path)
    assert bad.line == 4  # header is line 1, then two good rows
    assert bad.reason.startswith(reason)
    assert f"{path}: skipped 1 bad row: " in caplog.text  # not "1 bad rows"


def test_an_unusable_optional_value_is_read_as_missing_with_one_warning_per_column(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "card_id,date,market_price,volume,low_price,release_date\n"
        "sv1-1_normal,2024-01-07,1.0,3.5,$0.50,03/31/2023\n"
        "sv1-2_normal,2024-01-07,2.0,-1,0.5,03/31/2023\n"
        "sv1-3_normal,2024-01-07,3.0,4,0.75,2023-03-31\n",
        encoding="utf-8",
    )

    # Every row has an unusable optional value: none of them is a bad row.
    result = read_csv(path, max_bad_share=0.0)

    assert result.bad_rows == []
    history = result.history
    assert history["market_price"].tolist() == [1.0, 2.0, 3.0]
    assert history["volume"].isna().tolist() == [True, True, False]
    assert history["low_price"].isna().tolist() == [True, False, False]
    assert history["release_date"].isna().tolist() == [True, True, False]
    assert _source_logs(caplog) == [
        f"{path}: low_price: 1 unusable value read as missing, first at {path}:2: "
        "must be a number, found '$0.50'",
        f"{path}: volume: 2 unusable values read as missing, first at {path}:2: "
        "must be a whole number, found '3.5'",
        f"{path}: release_date: 2 unusable values read as missing, first at {path}:2: "
        "must be a date YYYY-MM-DD, found '03/31/2023'",
    ]


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        # 1999 typed as 0999: the day fits no nanosecond timestamp and failed the whole file.
        (
            "sv1-5_normal,2024-01-07,2.0,,,,,,0999-01-09,",
            "release_date",
            "must be a date from 1990-01-01 to 2100-12-31, found '0999-01-09'",
        ),
        # A whole number, but no 64-bit count: it failed the whole file with pandas' TypeError.
        (
            "sv1-5_normal,2024-01-07,2.0,1e30,,,,,,",
            "volume",
            "must be below 1,000,000,000, found '1e30'",
        ),
    ],
    ids=["release date out of range", "volume too large for a count"],
)
def test_an_optional_value_out_of_range_is_read_as_missing_keeping_the_price(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, row: str, column: str, problem: str
) -> None:
    path = write_csv(tmp_path / "p.csv", [*GOOD, row])

    result = read_csv(path, max_bad_share=0.0)

    assert result.bad_rows == []
    assert result.history["market_price"].iloc[-1] == 2.0
    assert pd.isna(result.history[column].iloc[-1])
    assert _source_logs(caplog) == [
        f"{path}: {column}: 1 unusable value read as missing, first at {path}:6: {problem}"
    ]


def test_unusable_optional_values_of_skipped_or_unpriced_rows_are_not_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "card_id,date,market_price,volume\n"
        "sv1-1_normal,2024-01-07,1.0,3.5\n"
        "sv1-2_normal,not-a-date,2.0,3.5\n"
        "sv1-3_normal,2024-01-07,0,3.5\n",
        encoding="utf-8",
    )

    read_csv(path, max_bad_share=0.5)

    unusable = [m for m in _source_logs(caplog) if "volume:" in m]
    assert unusable == [
        f"{path}: volume: 1 unusable value read as missing, first at {path}:2: "
        "must be a whole number, found '3.5'"
    ]


@pytest.mark.parametrize(
    "date",
    [
        "2024-01-05 00:00",
        "2024-01-05 00:00:00",
        "2024-01-05T00:00:00",
        "2024-01-05T00:00:00Z",
        "2024-01-05T00:00:00+00:00",
        "2024-01-05 00:00:00.000",
    ],
)
def test_a_date_may_be_a_timestamp_at_midnight(tmp_path: Path, date: str) -> None:
    path = write_csv(tmp_path / "p.csv", [f"sv1-1_normal,{date},1.5,,,,,,{date},"])

    history = read_csv(path, max_bad_share=0.0).history

    assert history["date"].tolist() == [pd.Timestamp("2024-01-05")]
    assert history["release_date"].tolist() == [pd.Timestamp("2024-01-05")]


@pytest.mark.parametrize(
    "date", ["2024-01-05 13:30:00", "2024-01-05T00:00:01", "2024-01-05T00:00:00+02:00"]
)
def test_a_date_with_another_time_is_a_bad_row_that_says_the_format_is_daily(
    tmp_path: Path, date: str
) -> None:
    path = write_csv(tmp_path / "p.csv", [*GOOD, f"sv1-1_normal,{date},1.5,,,,,,,"])

    [bad] = read_csv(path, max_bad_share=0.5).bad_rows

    assert bad.reason == (
        f"date: must be a day YYYY-MM-DD; a time is accepted only at midnight UTC, found '{date}'"
    )


def test_rows_repeating_a_card_and_date_with_different_prices_are_counted_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [
        *GOOD,
        GOOD[0],  # an exact repeat: silent
        "sv1-1_normal,2024-01-14,1.35,,,,,,,",  # line 7, after GOOD[1] on line 3
        "base1-4_holofoil,2024-01-07,340,,,,,,,",
        "sv1-1_normal,2024-01-14,1.30,,,,,,,",
    ]
    path = write_csv(tmp_path / "p.csv", lines)

    result = read_csv(path)

    assert len(result.history) == 8  # the reader keeps every row; later stages use the last
    assert _source_logs(caplog) == [
        f"{path}: 2 (card_id, date) pairs repeated with different market prices, the last row "
        f"of each is used; first at {path}:3: sv1-1_normal on 2024-01-14 priced 1.3, 1.35, 1.3 "
        "(lines 3, 7, 9)"
    ]


def test_a_card_id_without_its_variant_takes_the_rows_variant_so_prints_stay_apart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A pokemontcg.io id with the print in its own column: the holofoil and the reverse
    # holofoil are two prints with two prices, not one card priced twice a day.
    lines = [
        "base1-4,2024-01-07,350.0,,Charizard,Base,Base,Rare Holo,,holofoil",
        "base1-4,2024-01-07,90.0,,Charizard,Base,Base,Rare Holo,,Reverse Holofoil",
        "base1-4,2024-01-14,360.0,,Charizard,Base,Base,Rare Holo,,holofoil",
        "base1-4,2024-01-14,95.0,,Charizard,Base,Base,Rare Holo,,Reverse Holofoil",
        # Ids with `_` name their print already and are kept as written, even when the variant
        # column spells it otherwise (no `sv1-4_holo_holofoil`).
        "sv1-1_holofoil,2024-01-07,2.0,,,,,,,Holofoil",
        "sv1-2_staff_stamp,2024-01-07,3.0,,,,,,,staff_stamp",
        "sv1-3,2024-01-07,4.0,,,,,,,",
        "sv1-4_holo,2024-01-07,5.0,,,,,,,Holofoil",
        "sv1-5_1st_edition,2024-01-07,6.0,,,,,,,1st Edition Holofoil",
        # One print: the id takes its variant, as the pokemontcg source writes it.
        "sv1-6,2024-01-07,7.0,,,,,,,Normal",
    ]

    history = read_csv(write_csv(tmp_path / "p.csv", lines)).history

    prices = history.groupby("card_id")["market_price"].apply(list).to_dict()
    assert prices == {
        "base1-4_holofoil": [350.0, 360.0],
        "base1-4_reverse_holofoil": [90.0, 95.0],
        "sv1-1_holofoil": [2.0],
        "sv1-2_staff_stamp": [3.0],
        "sv1-3": [4.0],
        "sv1-4_holo": [5.0],
        "sv1-5_1st_edition": [6.0],
        "sv1-6_normal": [7.0],
    }
    assert set(history["set_id"]) == {"base1", "sv1"}
    assert "different market prices" not in caplog.text


def test_a_row_that_leaves_the_variant_empty_is_of_the_print_its_ids_other_rows_name(
    tmp_path: Path,
) -> None:
    # One print whose variant cell is empty on some rows: one history, not two (`base1-4` and
    # `base1-4_holofoil`, each with half of the prices).
    lines = [
        "base1-4,2024-01-07,350.0,,,,,,,Holofoil",
        "base1-4,2024-01-14,360.0,,,,,,,",
        "base1-4,2024-01-21,370.0,,,,,,,Holofoil",
        # Two prints named: an empty cell does not say which, and the row is a bad one.
        "sv1-1,2024-01-07,2.0,,,,,,,Holofoil",
        "sv1-1,2024-01-07,1.0,,,,,,,Reverse Holofoil",
        "sv1-1,2024-01-14,2.5,,,,,,,",
    ]

    result = read_csv(write_csv(tmp_path / "p.csv", lines), max_bad_share=0.5)

    prices = result.history.groupby("card_id", observed=True)["market_price"]
    assert prices.apply(list).to_dict() == {
        "base1-4_holofoil": [350.0, 360.0, 370.0],
        "sv1-1_holofoil": [2.0],
        "sv1-1_reverse_holofoil": [1.0],
    }
    assert [bad.line for bad in result.bad_rows] == [7]
    assert "several variants" in result.bad_rows[0].reason


def test_an_id_too_long_to_take_its_variant_is_kept_as_it_is(tmp_path: Path) -> None:
    # A valid id of 120 characters: with `_reverse_holofoil` it would be past the limit, and the
    # row would be skipped for a length that its own id is within.
    long_id = "x1-" + "a" * 117
    lines = [f"{long_id},2024-01-07,4.0,,,,,,,Reverse Holofoil"]

    result = read_csv(write_csv(tmp_path / "p.csv", lines))

    assert result.bad_rows == []
    assert result.history["card_id"].tolist() == [long_id]


def test_exact_repeats_are_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    result = read_csv(write_csv(tmp_path / "p.csv", [*GOOD, *GOOD]))

    assert len(result.history) == 8
    assert _source_logs(caplog) == []


def test_every_row_the_reader_accepts_is_a_valid_price_observation(tmp_path: Path) -> None:
    # The vectorised checks stand in for `PriceObservation`: what they let through, including
    # what they now tolerate (midnight timestamps, missing markers, unusable optional values),
    # must be a valid observation.
    path = tmp_path / "p.csv"
    path.write_text(
        "Card_ID,DATE,market_price,volume,low_price,high_price,release_date,variant\n"
        "sv1-1_normal,2024-01-05T00:00:00Z,1.5,NA,n/a,2.0,03/31/2023,\n"
        "sv1-2_holofoil,2024-01-05 00:00:00,2,3.5,-1,inf,2023-03-31 00:00,holo\n"
        "base1-4_holofoil,2024-1-5,350,7,1,null,1999-01-09,\n",
        encoding="utf-8",
    )

    history = read_csv(path).history

    assert len(history) == 3
    for row in history.astype(object).where(history.notna(), None).to_dict("records"):
        PriceObservation.model_validate({k: v for k, v in row.items() if v is not None})


def test_line_numbers_survive_blank_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [GOOD[0], "", GOOD[1], "sv1-1_normal,nope,1,,,,,,,"])

    result = read_csv(path, max_bad_share=0.5)

    assert [b.line for b in result.bad_rows] == [5]
    assert result.total_rows == 3


# A card name typed on two lines in a spreadsheet: its quoted field holds the line break.
TWO_LINE_NAME = 'sv1-2_normal,2024-01-07,2,,"Pineco\r\nEx",,,,,'


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_numbers_count_the_line_breaks_inside_quoted_fields(
    tmp_path: Path, newline: str
) -> None:
    # Each row was named as if on one line: every row after the name was a line too early.
    path = tmp_path / "p.csv"
    lines = [HEADER, GOOD[0], TWO_LINE_NAME, GOOD[1], "sv1-1_normal,nope,1,,,,,,,"]
    path.write_bytes(newline.join(lines).encode() + b"\n")

    result = read_csv(path, max_bad_share=0.5)

    assert [b.line for b in result.bad_rows] == [6]
    assert result.history["name"].tolist()[1] == "Pineco\r\nEx"


def test_a_value_beyond_the_header_after_a_two_line_name_names_its_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [TWO_LINE_NAME, GOOD[0] + ",spare"])

    with pytest.raises(SourceError, match=r"p\.csv:4: a field beyond the header's 10 columns"):
        read_csv(path)


def test_a_byte_that_is_not_utf8_after_a_two_line_name_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    text = "\n".join([HEADER, TWO_LINE_NAME, "sv1-3_normal,2024-01-07,2,,Pokémon,,,,,", ""])
    path.write_bytes(text.encode("cp1252"))

    with pytest.raises(SourceError, match=r"not UTF-8: line 4 has the byte 0xe9"):
        read_csv(path)


def test_too_many_bad_rows_reject_the_file_naming_file_count_and_lines(tmp_path: Path) -> None:
    bad = [f"sv1-{i}_normal,not-a-date,1.0,,,,,,," for i in range(3)]
    path = write_csv(tmp_path / "p.csv", [*GOOD, *bad])

    with pytest.raises(SourceError) as caught:
        read_csv(path, max_bad_share=0.2)

    message = str(caught.value)
    assert message.startswith(f"{path}: 3 bad rows of 7 (42.9% > 20.0% allowed): ")
    # One reason shared by many rows is quoted once, with its count and first line.
    assert message.endswith(
        f"date: 3 rows, first at {path}:6: must be a date YYYY-MM-DD, found 'not-a-date'"
    )


def test_a_rejected_file_has_its_error_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [
        "sv1-1_normal,2024-01-07,1.0,3.5,,,,,,",  # an unusable volume
        "sv1-1_normal,2024-01-07,2.0,,,,,,,",  # another price for the same card and day
        "sv1-1_normal,someday,1.0,,,,,,,",
    ]

    with pytest.raises(SourceError, match=": 1 bad row of 3 "):  # not "1 bad rows"
        read_csv(write_csv(tmp_path / "p.csv", lines), max_bad_share=0.1)

    assert _source_logs(caplog) == []


def test_a_rejection_groups_the_bad_rows_by_reason_most_frequent_first(tmp_path: Path) -> None:
    bad = [
        "sv1-1_normal,2024-01-21,cheap,,,,,,,",
        *[f"sv1-1_normal,12/0{i}/2023,1.0,,,,,,," for i in range(1, 4)],
        "sv1 1,2024-01-21,1.0,,,,,,,",
        ",2024-01-21,1.0,,,,,,,",
        "sv1-1_normal,2024-01-21,-2,,,,,,,",
        "sv1-1_normal,2024-01-21,-3,,,,,,,",
    ]
    path = write_csv(tmp_path / "p.csv", [*GOOD, *bad])

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    reasons = str(caught.value).split(": 8 bad rows of 12 (66.7% > 5.0% allowed): ")[1]
    assert reasons.split("; ") == [
        f"date: 3 rows, first at {path}:7: must be a date YYYY-MM-DD, found '12/01/2023'",
        f"market_price: 2 rows, first at {path}:12: must not be negative, found '-2'",
        f"market_price: 1 row, first at {path}:6: must be a number, found 'cheap'",
        "and 2 more reasons",
    ]


def test_bad_share_at_the_threshold_is_accepted(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [*GOOD, "sv1-9_normal,2024-01-07,-1,,,,,,,"])

    result = read_csv(path, max_bad_share=0.2)

    assert len(result.bad_rows) == 1
    assert result.bad_share == pytest.approx(0.2)


def test_missing_required_column_is_an_error_that_lists_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("card_id,price\nsv1-1_normal,1.0\n", encoding="utf-8")

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert str(caught.value) == (
        f"{path}: missing required column(s) date, market_price; found 'card_id', 'price'"
    )


def test_a_header_separated_by_semicolons_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("card_id;date;market_price\nsv1-1_normal;2024-01-07;1.0\n", encoding="utf-8")

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert str(caught.value) == (
        f"{path}: missing required column(s) card_id, date, market_price; found "
        "'card_id;date;market_price' (separated by ';'? The format separates columns by commas)"
    )


def test_header_names_are_matched_without_case_or_surrounding_spaces(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "CARD_ID, Date ,Market_Price,Volume\nsv1-1_normal,2024-01-07,1.0,2\n", encoding="utf-8"
    )

    history = read_csv(path).history

    assert history["card_id"].tolist() == ["sv1-1_normal"]
    assert history["volume"].tolist() == [2]


def test_rows_with_a_trailing_delimiter_keep_their_columns(tmp_path: Path) -> None:
    # One field more than the header on every row: pandas would make card_id the index.
    path = tmp_path / "p.csv"
    path.write_text(
        "card_id,date,market_price\nsv1-1_normal,2024-01-07,1.5,\nsv1-2_normal,2024-01-07,2,\n",
        "utf-8",
    )

    result = read_csv(path)

    assert result.bad_rows == []
    assert result.history["card_id"].tolist() == ["sv1-1_normal", "sv1-2_normal"]
    assert result.history["market_price"].tolist() == [1.5, 2.0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # An unquoted thousands separator: the price would be read as 1 and the volume as 250.
        (["sv1-9_normal,2024-01-07,1,250.00,3"], r"p.csv:2: a field beyond the header's 4 "),
        (["sv1-9_normal,2024-01-07,1,2", "sv1-8_normal,2024-01-07,1,2,x"], r"p.csv:3: .* 'x'"),
        (["sv1-9_normal,2024-01-07,1,2,,,,,,,"], r"p.csv:2: more than 8 fields"),
    ],
)
def test_a_value_beyond_the_header_is_an_error_naming_its_line(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    path = tmp_path / "p.csv"
    path.write_text("\n".join(["card_id,date,market_price,volume", *rows]) + "\n", "utf-8")

    with pytest.raises(SourceError, match=message):
        read_csv(path)


def test_a_header_name_that_looks_like_a_renamed_repeat_is_just_a_name(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("card_id,date,market_price,volume,volume.1\nsv1-1_normal,2024-01-07,1,2,3\n")

    assert read_csv(path).history["volume"].tolist() == [2]


def test_a_column_named_twice_exactly_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("card_id,date,market_price,date\nsv1-1_normal,2024-01-07,1.0,x\n", "utf-8")

    with pytest.raises(SourceError, match=r"column\(s\) date appear more than once"):
        read_csv(path)


def test_a_column_named_twice_up_to_case_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("card_id,date,market_price,Date\nsv1-1_normal,2024-01-07,1.0,x\n", "utf-8")

    with pytest.raises(SourceError, match=r"column\(s\) date appear more than once"):
        read_csv(path)


@pytest.mark.parametrize(
    ("lines", "found"),
    [
        ([], "the file has no data rows"),
        (
            ["sv1-1_normal,2024-01-07,0,,,,,,,", "sv1-2_normal,2024-01-07,,,,,,,,", ""],
            "2 data rows: 0 bad, the others with a market_price of 0 or empty",
        ),
        (
            ["sv1-1_normal,2024-01-07,0,,,,,,,", "sv1-2_normal,someday,1,,,,,,,"],
            "2 data rows: 1 bad, the others with a market_price of 0 or empty",
        ),
    ],
)
def test_a_file_without_a_priced_row_is_an_error(
    tmp_path: Path, lines: list[str], found: str
) -> None:
    path = write_csv(tmp_path / "p.csv", lines)

    with pytest.raises(SourceError) as caught:
        read_csv(path, max_bad_share=0.5)

    assert str(caught.value) == f"{path}: no priced rows ({found})"


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nothing\.csv"):
        read_csv(tmp_path / "nothing.csv")


def test_gzip_and_minimal_columns(tmp_path: Path) -> None:
    path = tmp_path / "p.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("card_id,date,market_price\n")
        f.write("swsh1-25_reverse_holofoil,2024-03-01,2.5\ncel25c-17_A_holofoil,2024-03-01,99\n")

    history = read_csv(path).history

    assert history["set_id"].tolist() == ["swsh1", "cel25c"]
    # Derived from the card id, whose pokemontcg.io part may contain `_` itself.
    assert history["variant"].tolist() == ["reverse_holofoil", "holofoil"]
    assert history["market_price"].tolist() == [2.5, 99.0]


def _truncated_gzip(path: Path) -> None:
    """An interrupted download: the first half of a gzip stream."""
    stream = gzip.compress("\n".join([HEADER, *GOOD * 500, ""]).encode())
    path.write_bytes(stream[: len(stream) // 2])


def _zip_of_two_files(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "\n".join([HEADER, *GOOD]))
        archive.writestr("b.csv", "\n".join([HEADER, *GOOD]))


@pytest.mark.parametrize(
    ("name", "write", "reason"),
    [
        ("cut.csv.gz", _truncated_gzip, "Compressed file ended before the end-of-stream marker"),
        ("two.csv.zip", _zip_of_two_files, "Multiple files found in ZIP file"),
    ],
)
def test_a_damaged_or_ambiguous_archive_is_an_error_naming_the_file(
    tmp_path: Path, name: str, write: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / name
    write(path)

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert str(caught.value).startswith(f"{path}: cannot read CSV: {reason}")
    assert "\n" not in str(caught.value)


def test_a_gzip_file_named_as_plain_csv_is_read_as_gzip(tmp_path: Path) -> None:
    path = tmp_path / "download.csv"
    path.write_bytes(gzip.compress("\n".join([HEADER, *GOOD, ""]).encode()))

    assert len(read_csv(path).history) == len(GOOD)


@pytest.mark.parametrize("good_lines_before", [2, 20_000])
def test_a_file_that_is_not_utf8_names_the_line_of_the_first_bad_byte(
    tmp_path: Path, good_lines_before: int
) -> None:
    # pandas' position of the bad byte is one inside its read buffer: 20k lines pass its end.
    rows = [f"sv1-1_normal,2024-01-07,1.25,,Pineco {i},,,,," for i in range(good_lines_before)]
    text = "\n".join([HEADER, *rows, "sv1-2_normal,2024-01-07,2,,Pokémon — Ex,,,,,", ""])
    path = tmp_path / "excel.csv.gz"
    with gzip.open(path, "wb") as f:
        f.write(text.encode("cp1252"))

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert str(caught.value) == (
        f"{path}: not UTF-8: line {good_lines_before + 2} has the byte 0xe9, which UTF-8 cannot "
        "decode (Excel's plain 'CSV' is Windows-1252); save the file as UTF-8 (Excel: 'CSV UTF-8')"
    )


def test_a_header_that_is_not_utf8_is_line_1(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("card_id,date,market_price,catégorie\n".encode("cp1252"))

    with pytest.raises(SourceError, match=r"not UTF-8: line 1 has the byte 0xe9"):
        read_csv(path)


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("card_id,date,market_price\nsv1-1_normal,2024-01-07,1.25\n", "utf-8-sig")

    assert read_csv(path).history["card_id"].tolist() == ["sv1-1_normal"]


def test_csv_source_lists_sets_by_date_and_collects_a_date_range(tmp_path: Path) -> None:
    lines = [*GOOD, "sv2-5_holofoil,2024-02-04,9.99,,,,,,,"]
    source = CsvSource(write_csv(tmp_path / "p.csv", lines), MAX_BAD_SHARE, SPIKE_FACTOR)

    assert source.name == "csv"
    assert source.list_sets(dt.date(2024, 1, 31)) == ["base1", "sv1"]
    assert source.list_sets(dt.date(2024, 2, 4)) == ["base1", "sv1", "sv2"]
    assert source.list_sets(dt.date(2023, 1, 1)) == []

    rows = source.collect("sv1", dt.date(2024, 1, 8), dt.date(2024, 1, 14))
    assert rows["date"].tolist() == [pd.Timestamp("2024-01-14")]
    assert list(rows.columns) == list(HISTORY_COLUMNS)
    assert source.collect("nope", dt.date(2024, 1, 1), dt.date(2024, 12, 31)).empty


@pytest.mark.skipif(not REAL_CSV.exists(), reason="no shared real data here")
def test_the_real_csv_loads_every_card_with_a_price() -> None:
    raw = pd.read_csv(REAL_CSV, usecols=["card_id", "market_price"])
    result = read_csv(REAL_CSV)

    assert result.total_rows == len(raw) == 149_786
    assert raw["card_id"].nunique() == 2_881
    assert result.bad_rows == []
    # Rows priced 0 carry no price; two card prints have no price in any week.
    priced = raw[raw["market_price"] > 0]
    assert len(result.history) == len(priced)
    assert result.history["card_id"].nunique() == priced["card_id"].nunique() == 2_879
    assert (result.history["market_price"] > 0).all()
    assert result.history["set_id"].ne("unknown").all()


def _weekly_rows(card_id: str, prices: list[str]) -> list[str]:
    """Rows of `card_id` priced `prices` on consecutive Sundays from 2024-01-07."""
    days = pd.date_range("2024-01-07", periods=len(prices), freq="7D")
    return [
        f"{card_id},{day:%Y-%m-%d},{price},,,,,,," for day, price in zip(days, prices, strict=True)
    ]


def test_a_typo_price_is_kept_and_named_with_its_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One row of 99,999 for a card that trades at $5 the weeks before and after.
    lines = [*GOOD, *_weekly_rows("sv1-2_normal", ["5.10", "5.00", "99999", "5.20", "5.05"])]
    path = write_csv(tmp_path / "p.csv", lines)

    result = read_csv(path)

    assert 99_999.0 in result.history["market_price"].to_numpy()  # the reader loses nothing
    assert _source_logs(caplog) == [
        f"{path}: 1 isolated price spike (a price ×20 or more away from both the card's "
        "previous and next prices, which agree) left out of the features, training and "
        f"backtest: sv1-2_normal on 2024-01-21 priced 99999 between 5 and 5.2 at {path}:8"
    ]
    caplog.clear()
    read_csv(path, spike_factor=1e6)
    assert _source_logs(caplog) == []


def test_a_real_lasting_jump_is_not_a_spike(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A card that jumped ×24 in a week (a tournament win) and stayed there.
    lines = _weekly_rows("sv1-2_normal", ["5.10", "5.00", "120", "125", "131", "118"])
    read_csv(write_csv(tmp_path / "p.csv", lines))
    assert _source_logs(caplog) == []


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", gzip.compress(b"")], ids=["empty", "blank", "gz"]
)
def test_an_empty_file_is_named_as_empty(tmp_path: Path, content: bytes) -> None:
    # It was pandas' "cannot read CSV: No columns to parse from file".
    path = tmp_path / "p.csv"
    path.write_bytes(content)

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert (
        str(caught.value)
        == f"{path}: the file is empty (no header line naming the columns, no rows)"
    )


@pytest.mark.parametrize(
    ("lines", "line"),
    [
        (['sv1-1_normal,2024-01-07,"1.25'], 2),  # was "row 1"
        ([*GOOD[:2], "", 'sv1-1_normal,2024-01-21,"1.25', *GOOD[2:]], 5),
    ],
)
def test_an_unclosed_quote_names_the_line_it_opens_on(
    tmp_path: Path, lines: list[str], line: int
) -> None:
    path = write_csv(tmp_path / "p.csv", lines)

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert str(caught.value).startswith(
        f"{path}:{line}: a quoted field opens on this line and is never closed"
    )


def test_an_unclosed_quote_in_the_header_is_line_1(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('card_id,"date,market_price\nsv1-1_normal,2024-01-07,1\n', "utf-8")

    with pytest.raises(SourceError, match=rf"^{re.escape(str(path))}:1: a quoted field opens"):
        read_csv(path)


def test_a_later_row_longer_than_the_spare_fields_names_its_line(tmp_path: Path) -> None:
    # pandas' own "Error tokenizing data. C error: Expected 14 fields in line 4, saw 16".
    path = write_csv(tmp_path / "p.csv", [*GOOD[:2], GOOD[2] + ",a,b,c,d,e,f"])

    with pytest.raises(SourceError) as caught:
        read_csv(path)

    assert str(caught.value).startswith(f"{path}:4: more than 14 fields, and the header has 10")
