"""The offline sample market: determinism, day-by-day consistency, schema, and calibration."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pokewatch.observations import HISTORY_COLUMNS, PriceObservation
from pokewatch.sources.base import SourceError
from pokewatch.sources.sample import DEFAULT_EPOCH, SampleMarket, to_weekly, weekly_statistics

REAL_CSV = Path(__file__).resolve().parents[2] / "shared/data/tcgplayer_weekly_2024.csv.gz"
DAY = dt.date(2024, 6, 12)


@pytest.fixture(scope="module")
def market() -> SampleMarket:
    return SampleMarket(seed=3, n_cards=120)


def _set_of(market: SampleMarket, index: int) -> str:
    return market.list_sets(DAY)[index % len(market.list_sets(DAY))]


@pytest.mark.parametrize(("seed", "set_index", "day"), [(3, 0, DAY), (3, 4, dt.date(2023, 1, 1))])
def test_a_day_collected_twice_or_by_another_instance_is_identical(
    seed: int, set_index: int, day: dt.date
) -> None:
    first = SampleMarket(seed=seed, n_cards=120)
    set_id = _set_of(first, set_index)
    once = first.collect(set_id, day, day)
    assert not once.empty
    pd.testing.assert_frame_equal(once, first.collect(set_id, day, day))
    pd.testing.assert_frame_equal(
        once, SampleMarket(seed=seed, n_cards=120).collect(set_id, day, day)
    )


@pytest.mark.parametrize("set_index", [0, 2, 5])
@pytest.mark.parametrize(("start", "days"), [(DAY, 6), (dt.date(2023, 1, 1), 3)])
def test_a_range_is_the_concatenation_of_its_days(
    market: SampleMarket, set_index: int, start: dt.date, days: int
) -> None:
    set_id = _set_of(market, set_index)
    end = start + dt.timedelta(days=days - 1)
    per_day = [
        market.collect(set_id, start + dt.timedelta(d), start + dt.timedelta(d))
        for d in range(days)
    ]
    pd.testing.assert_frame_equal(
        market.collect(set_id, start, end), pd.concat(per_day, ignore_index=True)
    )


def test_a_days_prices_do_not_depend_on_the_range_asked(market: SampleMarket) -> None:
    set_id = _set_of(market, 1)
    alone = market.collect(set_id, DAY, DAY)
    for start, end in [(DAY - dt.timedelta(40), DAY), (DAY, DAY + dt.timedelta(300))]:
        wide = market.collect(set_id, start, end)
        on_day = wide[wide["date"] == pd.Timestamp(DAY)].reset_index(drop=True)
        pd.testing.assert_frame_equal(on_day, alone)


def test_seeds_make_different_markets() -> None:
    one, other = SampleMarket(seed=1, n_cards=60), SampleMarket(seed=2, n_cards=60)
    assert one.list_sets(DAY) != other.list_sets(DAY) or not one.collect(
        one.list_sets(DAY)[0], DAY, DAY
    ).equals(other.collect(other.list_sets(DAY)[0], DAY, DAY))


def test_rows_are_valid_observations(market: SampleMarket) -> None:
    frame = pd.concat(market.collect(s, DAY - dt.timedelta(60), DAY) for s in market.list_sets(DAY))
    assert tuple(frame.columns) == HISTORY_COLUMNS
    assert (frame["market_price"] > 0).all()
    assert (frame["low_price"] <= frame["market_price"]).all()
    assert (frame["high_price"] >= frame["market_price"]).all()
    assert (frame["volume"] >= 0).all() and frame["volume"].notna().all()
    assert not frame.duplicated(["card_id", "date"]).any()
    for record in frame.sample(300, random_state=0).to_dict("records"):
        record["date"] = record["date"].date()
        record["release_date"] = record["release_date"].date()
        PriceObservation.model_validate(record)


def test_cards_have_real_looking_attributes(market: SampleMarket) -> None:
    cards = [c for s in market.list_sets(dt.date(2100, 1, 1)) for c in market.cards(s)]
    assert len(cards) == 120
    assert len({c.card_id for c in cards}) == len(cards)
    for card in cards:
        assert re.fullmatch(rf"{re.escape(card.set_id)}-\d+_{card.variant}", card.card_id)
        assert card.variant in {"holofoil", "reverse_holofoil", "normal"}
        assert card.name and card.set_name and card.series and card.rarity and card.release_date


def test_many_cards_make_many_unique_valid_sets() -> None:
    market = SampleMarket(seed=5, n_cards=10_000)
    set_ids = market.list_sets(dt.date(2100, 1, 1))
    assert 400 <= len(set_ids) <= 600
    assert len(set(set_ids)) == len(set_ids)
    assert all(re.fullmatch(r"[a-z0-9]+", s) for s in set_ids)
    assert sum(len(market.cards(s)) for s in set_ids) == 10_000


def test_unreleased_sets_are_not_listed_and_have_no_rows_before_release() -> None:
    market = SampleMarket(seed=9, n_cards=3_000)
    late = [s for s in market.list_sets(dt.date(2100, 1, 1)) if s not in market.list_sets(DAY)]
    assert late, "a 3,000-card market includes sets released after mid-2024"
    release = market.cards(late[0])[0].release_date
    assert release is not None
    frame = market.collect(late[0], release - dt.timedelta(10), release + dt.timedelta(2))
    assert frame["date"].min() == pd.Timestamp(release)
    assert frame["date"].nunique() == 3


def test_days_before_the_market_starts_have_no_rows(market: SampleMarket) -> None:
    # As days before a set's release have none. They were a ValueError that failed every set of
    # `pokewatch pipeline run --history-days 1500` (or `make run HISTORY_DAYS=1500`).
    set_id = market.list_sets(DAY)[0]
    frame = market.collect(set_id, dt.date(2022, 12, 20), dt.date(2023, 1, 2))
    assert frame["date"].min() == pd.Timestamp(DEFAULT_EPOCH)
    assert frame["date"].nunique() == 2
    assert market.collect(set_id, dt.date(2022, 1, 1), dt.date(2022, 12, 31)).empty


def test_bad_requests_are_clear_errors(market: SampleMarket) -> None:
    set_id = market.list_sets(DAY)[0]
    with pytest.raises(ValueError, match="after end"):
        market.collect(set_id, DAY, DAY - dt.timedelta(1))
    with pytest.raises(SourceError, match="unknown set"):
        market.collect("nope", DAY, DAY)
    with pytest.raises(ValueError, match="n_cards"):
        SampleMarket(n_cards=0)


#: Allowed relative deviation of each simulated statistic from the real one (`None`: an
#: absolute tolerance on a share instead, in `ABSOLUTE_TOLERANCE`).
RELATIVE_TOLERANCE = {
    "price_q25": 0.25,
    "price_q50": 0.25,
    "price_q75": 0.25,
    "price_q90": 0.35,
    "vol_lt5": 0.30,
    "vol_5_20": 0.30,
    "vol_20_100": 0.30,
    "vol_gt100": 0.35,
    "naive_mape_1w": 0.30,
    "naive_mape_4w": 0.30,
    "rolling3_mape_4w": 0.30,
}
ABSOLUTE_TOLERANCE = {"stale_share": 0.10}


@pytest.mark.skipif(not REAL_CSV.exists(), reason="no shared real data here")
def test_weekly_statistics_match_the_real_data() -> None:
    real = weekly_statistics(
        pd.read_csv(REAL_CSV, usecols=["card_id", "date", "market_price", "volume"])
    )
    market = SampleMarket(seed=7, n_cards=1_500)
    start, end = dt.date(2024, 1, 1), dt.date(2024, 12, 31)
    daily = pd.concat(market.collect(s, start, end) for s in market.list_sets(end))
    simulated = weekly_statistics(to_weekly(daily))

    for name, tolerance in RELATIVE_TOLERANCE.items():
        assert simulated[name] == pytest.approx(real[name], rel=tolerance), name
    for name, tolerance in ABSOLUTE_TOLERANCE.items():
        assert simulated[name] == pytest.approx(real[name], abs=tolerance), name
    assert 1 / 1.6 <= simulated["jump_share"] / real["jump_share"] <= 1.6
    # A long right tail, up to a few hundred dollars, as in the real data.
    assert 100 <= simulated["price_q99"] <= 600
    # Repeating the last price beats a 3-week rolling mean, and jumps partly revert: the
    # dynamics a model can learn.
    assert simulated["naive_mape_4w"] < simulated["rolling3_mape_4w"]
    assert simulated["return_acf1"] < 0
    assert 0 < simulated["jump_reversal"] < 0.5


def test_to_weekly_keeps_the_last_price_and_sums_volume() -> None:
    days = pd.date_range("2024-06-03", periods=8, freq="D")  # Monday to the next Monday
    daily = pd.DataFrame(
        {
            "card_id": "x-1_holofoil",
            "date": days,
            "market_price": np.arange(1.0, 9.0),
            "volume": [1, 0, 0, 2, 0, 0, 3, 4],
        }
    )
    weekly = to_weekly(daily)
    assert weekly["date"].tolist() == [pd.Timestamp("2024-06-09"), pd.Timestamp("2024-06-16")]
    assert weekly["market_price"].tolist() == [7.0, 8.0]
    assert weekly["volume"].tolist() == [6, 4]
