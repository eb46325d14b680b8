"""The serving file: what the writer refuses, what the reader accepts (including format 1)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from typing import Any, get_args

import pytest
from api_fixtures import card_id_of, serving_bytes

from pokewatch.serving import (
    CARD_FIELDS,
    COLUMNS,
    MAGIC,
    CardRow,
    ServingFormatError,
    ServingTable,
    serving_file_bytes,
)


def _as_format_1(data: bytes) -> bytes:
    """A format-2 file rewritten as format 1 wrote it: another magic, no expected column."""
    table = ServingTable.from_bytes(data)
    rows = len(table._columns["day"])
    return b"PKWSERVING1\n" + data[len(MAGIC) : len(data) - 4 * rows]


def test_round_trip_keeps_every_column() -> None:
    table = ServingTable.from_bytes(serving_bytes(n_cards=3, n_days=5))
    point = table.latest(card_id_of(0))
    assert point.fair_price_low < point.fair_price < point.fair_price_high
    assert point.expected_price == pytest.approx(point.fair_price * 1.04, rel=1e-6)


def test_format_1_is_read_with_the_fair_price_standing_in_for_the_expected_price() -> None:
    data = serving_bytes(n_cards=3, n_days=5)
    old = ServingTable.from_bytes(_as_format_1(data))
    assert old.card_count == 3
    for card_id in old.listing_ids:
        assert [p.expected_price for p in old.history(card_id)] == [
            p.fair_price for p in old.history(card_id)
        ]
        assert [p.market_price for p in old.history(card_id)] == [
            p.market_price for p in ServingTable.from_bytes(data).history(card_id)
        ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PKWSERVING7\n\x00\x00\x00\x00", "format b'7' is not one this code reads"),
        (b"PK\x03\x04 a zip", "bad magic"),
    ],
)
def test_unknown_formats_are_named(data: bytes, message: str) -> None:
    with pytest.raises(ServingFormatError, match=message):
        ServingTable.from_bytes(data)


def test_a_truncated_file_names_the_column() -> None:
    data = serving_bytes(n_cards=3, n_days=5)
    with pytest.raises(ServingFormatError, match="truncated in column 'expected'"):
        ServingTable.from_bytes(data[:-4])


@pytest.mark.parametrize("column", ["price", "fair", "expected"])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_the_writer_refuses_prices_the_api_would_divide_by(column: str, bad: float) -> None:
    table = ServingTable.from_bytes(serving_bytes(n_cards=2, n_days=3))
    columns = {name: list(table._columns[name]) for name in COLUMNS}
    columns[column][1] = bad
    with pytest.raises(ValueError, match=column):
        serving_file_bytes(table.facts, [table.card(i) for i in table.listing_ids], [3, 3], columns)


def _with_header(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """`data` with its JSON header changed by `change`."""
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + length])
    change(header)
    new = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(new)) + new + data[start + length :]


def test_cards_are_looked_up_by_id_and_listed_in_id_order() -> None:
    table = ServingTable.from_bytes(serving_bytes(n_cards=12, n_days=2))
    assert table.card_count == 12
    assert table.listing_ids == sorted(card_id_of(i) for i in range(12))
    assert card_id_of(3) in table and "nope" not in table
    assert table.card(card_id_of(3)).card_id == card_id_of(3)
    with pytest.raises(KeyError):
        table.card("nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h["cards"][1].__setitem__(2, 7), r"header is invalid.*cards\.1\.2"),
        (lambda h: h["cards"][0].pop(), r"header is invalid.*cards\.0"),
        (lambda h: h.pop("model"), r"header is invalid.*model"),
        (lambda h: h["card_fields"].reverse(), "cards have the fields"),
        (lambda h: h["cards"][2].__setitem__(0, h["cards"][0][0]), "lists card .* more than once"),
        (lambda h: h["offsets"].__setitem__(1, 0), "card without rows"),
    ],
)
def test_a_broken_header_is_refused_with_its_reason(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = _with_header(serving_bytes(n_cards=3, n_days=2), change)
    with pytest.raises(ServingFormatError, match=message):
        ServingTable.from_bytes(data)


def test_cards_of_another_shape_fail_with_a_bounded_message() -> None:
    def add_a_field(header: dict[str, Any]) -> None:
        for card in header["cards"]:
            card.append("extra")
        header["card_fields"].append("extra")

    data = _with_header(serving_bytes(n_cards=12, n_days=2), add_a_field)
    with pytest.raises(ServingFormatError) as failed:
        ServingTable.from_bytes(data)
    message = str(failed.value)
    assert message.startswith("serving file header is invalid: card_fields: cards")
    assert message.count("; cards.") == 4 and message.endswith("; and 8 more")


def test_a_header_row_has_one_value_per_card_field() -> None:
    assert len(get_args(CardRow)) == len(CARD_FIELDS) and "card_id" in CARD_FIELDS


def test_the_writer_refuses_a_card_listed_twice() -> None:
    table = ServingTable.from_bytes(serving_bytes(n_cards=2, n_days=3))
    card = table.card(card_id_of(0))
    columns = {name: list(table._columns[name]) for name in COLUMNS}
    with pytest.raises(ValueError, match="listed more than once"):
        serving_file_bytes(table.facts, [card, card], [3, 3], columns)
