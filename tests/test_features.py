"""Features use no price after their date; the target is the first price in [t + h, t + h + 7]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch.features import FEATURE_COLUMNS, build_features
from pokewatch.price_limits import SPIKE_FACTOR
from pokewatch.sources.base import normalise_history


def history(
    prices: dict[str, list[tuple[str, float]]], volume: int | None = 1, set_id: str = "s1"
) -> pd.DataFrame:
    """A history table from {card_id: [(date, price), ...]}."""
    rows = [
        {
            "card_id": card,
            "name": card,
            "set_id": set_id,
            "rarity": "Rare",
            "variant": "normal",
            "release_date": "2023-01-01",
            "date": date,
            "market_price": price,
            "volume": volume,
        }
        for card, series in prices.items()
        for date, price in series
    ]
    return normalise_history(pd.DataFrame(rows))


def random_history(seed: int, cards: int, days: int, step: int) -> pd.DataFrame:
    """Random-walk prices of a few cards every `step` days, with gaps and zero volumes."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2024-01-01")
    for card in range(cards):
        price = float(rng.uniform(1, 100))
        for day in range(0, days, step):
            price *= float(np.exp(rng.normal(0, 0.05)))
            if rng.random() < 0.1:  # a missing observation
                continue
            rows.append(
                {
                    "card_id": f"s{card % 2}-{card}_normal",
                    "set_id": f"s{card % 2}",
                    "rarity": ["Common", "Rare"][card % 2],
                    "variant": "normal",
                    "release_date": "2023-06-01",
                    "date": start + pd.Timedelta(days=day),
                    "market_price": round(price, 2),
                    "volume": int(rng.integers(0, 3)),
                }
            )
    return normalise_history(pd.DataFrame(rows))


def test_one_row_per_priced_observation_with_all_columns() -> None:
    h = history({"a-1": [("2024-01-01", 10.0), ("2024-01-08", 0.0), ("2024-01-15", 12.0)]})
    features = build_features(h, 28, SPIKE_FACTOR)
    assert len(features) == 2  # the zero price is "no price"
    assert set(FEATURE_COLUMNS) <= set(features.columns)
    assert {"card_id", "date", "market_price", "target", "target_date"} <= set(features.columns)
    assert features["ret_1obs"].iloc[1] == pytest.approx(np.log(12 / 10))


def test_target_is_first_price_within_seven_days_after_horizon() -> None:
    h = history(
        {
            # t + 28 = Jan 29: first price on or after it is Feb 2 (within 7 days).
            "a-1": [("2024-01-01", 10.0), ("2024-01-27", 11.0), ("2024-02-02", 15.0)],
            # t + 28 = Jan 29: the next price is Feb 6, 8 days late: unknown.
            "a-2": [("2024-01-01", 10.0), ("2024-02-06", 20.0)],
            # exactly on t + 28 + 7.
            "a-3": [("2024-01-01", 10.0), ("2024-02-05", 5.0)],
        }
    )
    features = build_features(h, 28, SPIKE_FACTOR).set_index(["card_id", "date"])
    first = pd.Timestamp("2024-01-01")
    assert features.loc[("a-1", first), "target"] == pytest.approx(np.log(1.5))
    assert features.loc[("a-1", first), "target_date"] == pd.Timestamp("2024-02-02")
    assert np.isnan(features.loc[("a-2", first), "target"])
    assert pd.isna(features.loc[("a-2", first), "target_date"])
    assert features.loc[("a-3", first), "target"] == pytest.approx(np.log(0.5))


def test_day_lags_use_the_last_price_on_or_before() -> None:
    h = history({"a-1": [("2024-01-01", 10.0), ("2024-01-05", 20.0), ("2024-01-10", 40.0)]})
    features = build_features(h, 28, SPIKE_FACTOR)
    # 7 days before Jan 10 is Jan 3: the last price then was Jan 1's.
    assert features["ret_7d"].iloc[2] == pytest.approx(np.log(4.0))
    assert np.isnan(features["ret_7d"].iloc[0])
    assert features["dev_mean3"].iloc[2] == pytest.approx(np.log(40 / (70 / 3)))


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    step=st.sampled_from([1, 7]),
    cut_day=st.integers(20, 150),
)
def test_no_look_ahead(seed: int, step: int, cut_day: int) -> None:
    """Changing (or removing) every price after t leaves the features of t unchanged."""
    h = random_history(seed, cards=6, days=200, step=step)
    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(days=cut_day)
    changed = h.copy()
    later = changed["date"] > cut
    rng = np.random.default_rng(seed + 1)
    changed.loc[later, "market_price"] *= rng.uniform(0.2, 5.0, size=int(later.sum()))
    changed.loc[later, "volume"] = 0
    truncated = h[~later]

    columns = ["card_id", "date", "market_price", *FEATURE_COLUMNS]
    base = build_features(h, 28, SPIKE_FACTOR)
    # The step used to size rolling windows must not itself depend on the future.
    for other in (changed, truncated):
        again = build_features(other, 28, SPIKE_FACTOR)
        before = base.loc[base["date"] <= cut, columns].reset_index(drop=True)
        after = again.loc[again["date"] <= cut, columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(before, after)


def test_weekly_and_daily_windows_mean_the_same_days() -> None:
    """A steady 1%-a-week trend gives the same 28-day return on daily and weekly data."""
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    prices = 10 * np.exp(0.01 / 7 * np.arange(len(days)))
    daily = history({"a-1": list(zip(days.strftime("%Y-%m-%d"), prices, strict=True))})
    weekly = daily[daily["date"].dt.day_of_week == 0]
    last_daily = build_features(daily, 28, SPIKE_FACTOR).iloc[-1]
    last_weekly = build_features(weekly, 28, SPIKE_FACTOR).iloc[-1]
    assert last_daily["ret_28d"] == pytest.approx(0.04, abs=1e-6)
    assert last_weekly["ret_28d"] == pytest.approx(0.04, abs=1e-6)
    assert last_daily["dist_mean_91d"] == pytest.approx(last_weekly["dist_mean_91d"], rel=0.1)


def test_unsorted_input_with_a_repeated_day_keeps_the_last_row() -> None:
    """Rows may arrive in any order and a re-collected day repeats: the last row of a day wins,
    and the table is the same as from the clean, sorted history."""
    h = random_history(3, cards=4, days=120, step=7)
    repeated = h.iloc[[5]].assign(market_price=h["market_price"].iloc[5] * 2)
    messy = pd.concat([h, repeated], ignore_index=True).sample(frac=1.0, random_state=0)
    messy = pd.concat([messy, repeated], ignore_index=True)  # the last occurrence wins
    clean = h.copy()
    clean.loc[5, "market_price"] = repeated["market_price"].iloc[0]
    columns = ["card_id", "date", "market_price", *FEATURE_COLUMNS, "target", "target_date"]
    pd.testing.assert_frame_equal(
        build_features(messy, 28, SPIKE_FACTOR)[columns],
        build_features(clean, 28, SPIKE_FACTOR)[columns],
    )
