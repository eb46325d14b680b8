"""Isolated price spikes: a typo's single row is named and left out; a real move that lasts is
not one, however large."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_features import history

from pokewatch.features import build_features
from pokewatch.price_limits import SPIKE_FACTOR
from pokewatch.price_spikes import describe_spikes, find_spikes, isolated_spikes

WEEKS = [f"2024-0{m}-{d:02d}" for m in (1, 2, 3) for d in (1, 8, 15, 22)]


def weekly(*prices: float) -> list[tuple[str, float]]:
    """`prices` on consecutive weeks."""
    return list(zip(WEEKS, prices, strict=False))


def flagged(*prices: float, factor: float = 20.0) -> list[int]:
    """Positions flagged in one card's prices."""
    codes = np.zeros(len(prices), dtype=np.int64)
    return np.flatnonzero(isolated_spikes(codes, np.array(prices), factor)).tolist()


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ((5.0, 5.1, 99_999.0, 5.2, 5.0), [2]),  # a typo in an export
        ((5.0, 5.1, 0.05, 5.2, 5.0), [2]),  # a price in dollars read as cents
        ((20.15, 0.25, 10.17), [1]),  # the real history's one: neighbours agree within √20
        ((5.0, 5.1, 99_999.0, 99_990.0, 5.0), []),  # two rows: not isolated
        ((5.0, 5.0, 5.0, 120.0, 125.0, 130.0), []),  # a lasting jump (a tournament)
        ((100.0, 100.0, 4.0, 4.2, 4.1), []),  # a reprint: the price falls for good
        ((1.0, 200.0, 10.0), []),  # neighbours apart ×10: the card moved, with an overshoot
        ((5.0, 39.35, 4.75), []),  # a new set's first weeks on the real history: ×6.7
        ((99_999.0, 5.0, 5.1), []),  # a first price has one neighbour: never judged
        ((5.0, 5.1, 99_999.0), []),  # nor a latest one (until the next arrives)
    ],
)
def test_only_a_single_price_far_from_two_agreeing_neighbours_is_a_spike(
    prices: tuple[float, ...], expected: list[int]
) -> None:
    assert flagged(*prices) == expected


def test_the_factor_is_the_setting() -> None:
    assert flagged(5.0, 60.0, 5.0, factor=10) == [1]
    assert flagged(5.0, 60.0, 5.0, factor=20) == []


def test_neighbours_are_of_the_same_card() -> None:
    # Card 0 ends at 5, card 1 starts at 99,999 then stays there: no card has a spike.
    codes = np.array([0, 0, 1, 1])
    prices = np.array([5.0, 5.0, 99_999.0, 99_000.0])
    assert not isolated_spikes(codes, prices, 20.0).any()


def test_find_spikes_reads_the_history_as_the_features_do() -> None:
    # Rows out of order and a re-collected day whose last row wins: the spike is the last row of
    # its day, and its neighbours are found by date, not by position in the table.
    table = history(
        {"b": weekly(5.0, 5.1, 5.2, 5.0), "a": weekly(7.0, 7.2, 7.1)},
    )
    typo = table.iloc[[2]].assign(market_price=99_999.0)
    table = pd.concat([typo, table.iloc[::-1], typo]).reset_index(drop=True)

    spikes = find_spikes(table, 20.0)

    assert spikes.to_dict("records") == [
        {
            "row": len(table) - 1,
            "card_id": "b",
            "date": pd.Timestamp("2024-01-15"),
            "market_price": 99_999.0,
            "previous_price": 5.1,
            "next_price": 5.0,
        }
    ]
    assert describe_spikes(spikes, 20.0, ["p.csv:9"]) == (
        "1 isolated price spike (a price ×20 or more away from both the card's previous and "
        "next prices, which agree) left out of the features, training and backtest: b on "
        "2024-01-15 priced 99999 between 5.1 and 5 at p.csv:9"
    )


def test_a_long_list_of_spikes_is_counted_beyond_the_first_five() -> None:
    table = history({f"c{i}": weekly(5.0, 500.0, 5.0) for i in range(7)})
    message = describe_spikes(find_spikes(table, 20.0), 20.0)
    assert message.startswith("7 isolated price spikes")
    assert message.count(" priced ") == 5 and message.endswith("; and 2 more")


def test_the_features_leave_a_spike_out_as_if_unobserved() -> None:
    prices = {"a": weekly(5.0, 5.1, 99_999.0, 5.2, 5.3), "b": weekly(8.0, 8.0, 8.0, 8.0, 8.0)}
    clean_a = {**prices, "a": [p for p in prices["a"] if p[1] != 99_999.0]}
    clean = build_features(history(clean_a), 7, SPIKE_FACTOR)

    features = build_features(history(prices), 7, SPIKE_FACTOR)

    pd.testing.assert_frame_equal(features, clean)
    kept = build_features(history(prices), 7, spike_factor=1e9)
    assert 99_999.0 in kept["market_price"].to_numpy()
