"""The walk-forward backtest on synthetic markets whose truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from market_fixtures import synthetic_market

from pokewatch.backtest import (
    dominated_mape,
    mape_difference_se,
    min_history_days,
    origin_dates,
    signals_of,
    walk_forward,
    walk_forward_pairs,
)
from pokewatch.features import build_features
from pokewatch.price_limits import SPIKE_FACTOR
from pokewatch.settings import Settings
from pokewatch.signals import signal_of

SETTINGS = Settings(backtest_days=84, backtest_refit_days=28, backtest_origin_step_days=7)


def test_mean_reverting_market_model_beats_naive_and_rule_signals_work() -> None:
    history = synthetic_market(1, cards=120, weeks=60, reversion=0.3, volatility=0.08)
    metrics = walk_forward(history, SETTINGS).metrics
    assert metrics.mape_model < 0.85 * metrics.mape_naive
    assert metrics.mape_model < metrics.mape_rolling_mean_3
    assert 0.7 <= metrics.interval_coverage <= 0.9
    # Prices far below their value rise: BUY pairs out-earn SELL pairs.
    assert metrics.buy_count > 0 and metrics.sell_count > 0
    assert metrics.signal_spread_model is not None and metrics.signal_spread_model > 0.1


def test_random_walk_naive_is_hard_to_beat_and_interval_covers() -> None:
    history = synthetic_market(2, cards=150, weeks=60, reversion=1.0, volatility=0.04)
    metrics = walk_forward(history, SETTINGS).metrics
    assert metrics.mape_model == pytest.approx(metrics.mape_naive, rel=0.05)
    assert metrics.mape_naive < metrics.mape_rolling_mean_3
    assert 0.72 <= metrics.interval_coverage <= 0.88
    # It holds for quiet and volatile cards alike, not only on average.
    assert len(metrics.interval_coverage_by_width) == 5
    assert all(abs(c - 0.8) <= 0.15 for c in metrics.interval_coverage_by_width)
    assert np.mean(metrics.interval_coverage_by_width) == pytest.approx(metrics.interval_coverage)
    assert all(0 < e < 0.1 for e in metrics.interval_coverage_by_width_se)


def test_pairs_follow_the_no_look_ahead_schedule() -> None:
    history = synthetic_market(3, cards=60, weeks=50, reversion=0.5, volatility=0.05)
    pairs = walk_forward_pairs(history, SETTINGS)
    origins = sorted(pairs["origin"].unique())
    # Weekly origins over the last 84 days whose actual is observable.
    assert len(origins) == 12
    assert pairs["origin"].max() + pd.Timedelta(days=28) <= history["date"].max()
    assert (pairs["fitted_on"] <= pairs["origin"]).all()
    assert pairs["fitted_on"].nunique() == 3
    assert (pairs["actual_date"] >= pairs["origin"] + pd.Timedelta(days=28)).all()
    assert (pairs["actual_date"] <= pairs["origin"] + pd.Timedelta(days=35)).all()
    expected_return = pairs["actual_price"] / pairs["market_price"] - 1
    np.testing.assert_allclose(pairs["forward_return"], expected_return)
    # Every card priced at an origin (with an observable actual) is predicted.
    assert len(pairs) == 12 * 60


def _on_other_weekdays(history: pd.DataFrame, weekdays: int) -> pd.DataFrame:
    """`history` with each card priced `card number % weekdays` days later in the week."""
    number = history["card_id"].astype(str).str.extract(r"-(\d+)_")[0].astype(int)
    return history.assign(date=history["date"] + pd.to_timedelta(number % weekdays, unit="D"))


@pytest.mark.parametrize("horizon_days", [28, 3])
def test_cards_priced_on_other_weekdays_are_backtested_from_their_latest_price(
    horizon_days: int,
) -> None:
    settings = SETTINGS.model_copy(update={"horizon_days": horizon_days})
    history = _on_other_weekdays(
        synthetic_market(3, cards=60, weeks=50, reversion=0.5, volatility=0.05), weekdays=7
    )
    pairs = walk_forward_pairs(history, settings)
    # Every card at every origin, from its latest price in the step before the origin; never
    # older than the horizon, so that the actual lies after the origin and after every target
    # its refit saw (a 3-day horizon leaves out the cards priced 3 to 6 days before).
    per_origin = pairs.groupby("origin").size()
    assert (per_origin == 60).all() if horizon_days >= 7 else (per_origin < 60).all()
    window = pd.Timedelta(days=min(7, horizon_days))
    assert (pairs["price_date"] <= pairs["origin"]).all()
    assert (pairs["price_date"] > pairs["origin"] - window).all()
    assert (pairs["actual_date"] >= pairs["price_date"] + pd.Timedelta(days=horizon_days)).all()
    assert (pairs["actual_date"] > pairs["origin"]).all()
    assert (pairs["fitted_on"] <= pairs["origin"]).all()


def test_a_card_priced_twice_in_the_step_is_backtested_from_its_later_price() -> None:
    weekly = synthetic_market(3, cards=30, weeks=50, reversion=0.5, volatility=0.05)
    midweek = weekly.assign(
        date=weekly["date"] + pd.Timedelta(days=3), market_price=weekly["market_price"] * 1.01
    )
    history = pd.concat([weekly, midweek], ignore_index=True)
    pairs = walk_forward_pairs(history, SETTINGS)
    assert len(pairs) == pairs["origin"].nunique() * 30
    assert (pairs["price_date"] == pairs["origin"]).all()


def test_rolling_mean_3_is_the_mean_of_the_last_three_observations() -> None:
    history = synthetic_market(4, cards=30, weeks=50, reversion=0.5, volatility=0.05)
    pairs = walk_forward_pairs(history, SETTINGS)
    row = pairs.iloc[0]
    card = history[(history["card_id"] == row["card_id"]) & (history["date"] <= row["origin"])]
    assert row["rolling_mean_3"] == pytest.approx(card["market_price"].tail(3).mean())


def test_origins_skip_off_calendar_days() -> None:
    history = synthetic_market(5, cards=20, weeks=30, reversion=0.5, volatility=0.05)
    stray = history.iloc[[0]].assign(date=pd.Timestamp("2023-05-03"), card_id="s0-999_normal")
    features = build_features(pd.concat([history, stray], ignore_index=True), 28, SPIKE_FACTOR)
    assert pd.Timestamp("2023-05-03") not in origin_dates(features, SETTINGS)


def test_origins_reach_the_end_of_a_history_whose_catalogue_shrank() -> None:
    """More than half the cards unpriced in the last ten weeks: the backtest still judges the
    last part of the history, not the weeks before the catalogue shrank."""
    history = synthetic_market(5, cards=40, weeks=60, reversion=0.5, volatility=0.05)
    last = history["date"].max()
    gone = history["card_id"].isin(history["card_id"].unique()[:24]) & (
        history["date"] > last - pd.Timedelta(days=70)
    )
    origins = origin_dates(build_features(history[~gone], 28, SPIKE_FACTOR), SETTINGS)
    assert origins[-1] == last - pd.Timedelta(days=28)
    # Not one weekly origin lost where the catalogue shrank either.
    assert (np.diff(origins) == pd.Timedelta(days=7)).all()


def test_vectorised_signals_match_the_scalar_rule() -> None:
    deviations = np.array([-0.5, -0.10, -0.0999, 0.0, 0.1499, 0.15, 0.7])
    expected = [signal_of(d, -0.10, 0.15).value for d in deviations]
    assert signals_of(deviations, -0.10, 0.15).tolist() == expected


def test_too_short_history_is_a_clear_error() -> None:
    history = synthetic_market(6, cards=10, weeks=4, reversion=0.5, volatility=0.05)
    with pytest.raises(ValueError, match="too short"):
        walk_forward(history, SETTINGS)


def test_history_spaced_beyond_the_horizon_says_so_not_too_short() -> None:
    """A long history priced every four weeks has no actual for a 7-day horizon: the error
    names the spacing, not a length it already has."""
    history = synthetic_market(6, cards=30, weeks=60, reversion=0.5, volatility=0.05)
    monthly = history[history["date"].isin(history["date"].unique()[::4])]
    settings = SETTINGS.model_copy(update={"horizon_days": 7})
    with pytest.raises(ValueError, match=r"28 days apart.*choose a horizon") as error:
        walk_forward(monthly, settings)
    assert "too short" not in str(error.value)


def test_origins_leave_each_refit_enough_history_to_fit() -> None:
    """A history shorter than the backtest window still backtests, on the origins that a refit
    can be fitted for; earlier dates are not origins."""
    history = synthetic_market(7, cards=60, weeks=30, reversion=0.5, volatility=0.05)
    features = build_features(history, SETTINGS.horizon_days, SPIKE_FACTOR)
    origins = origin_dates(features, SETTINGS)
    first_day = features["date"].min()
    assert origins
    assert all((o - first_day).days >= min_history_days(SETTINGS) for o in origins)
    assert walk_forward(history, SETTINGS).metrics.n_origins == len(origins)


def test_refits_fitted_side_by_side_give_the_same_pairs_as_one_at_a_time() -> None:
    history = synthetic_market(4, cards=80, weeks=60, reversion=0.5, volatility=0.06)
    one = walk_forward_pairs(history, SETTINGS.model_copy(update={"model_fit_workers": 1}))
    three = walk_forward_pairs(history, SETTINGS.model_copy(update={"model_fit_workers": 3}))
    assert one["fitted_on"].nunique() >= 3
    pd.testing.assert_frame_equal(one, three)


def _pairs_with_gaps(cards: list[str], origins: list[str], gaps: list[float]) -> pd.DataFrame:
    """Pairs whose model APE exceeds the naive APE (0: the price did not move) by `gaps`."""
    return pd.DataFrame(
        {
            "card_id": cards,
            "origin": pd.to_datetime(origins),
            "market_price": 1.0,
            "actual_price": 1.0,
            "fair_price": [1.0 + g for g in gaps],
        }
    )


def test_mape_difference_se_of_independent_pairs_is_the_plain_standard_error() -> None:
    gaps = [0.0, 0.1, 0.3, 0.2]
    pairs = _pairs_with_gaps(
        ["a", "b", "c", "d"], ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"], gaps
    )
    assert mape_difference_se(pairs) == pytest.approx(np.std(gaps, ddof=1) / np.sqrt(len(gaps)))


def test_mape_difference_se_counts_a_shared_market_move_once_per_origin() -> None:
    # Every card gains 2 at the first origin and nothing at the second: six pairs, but only two
    # independent observations. By card the residuals cancel (V_card = 0); by origin they do
    # not (V_origin = (3² + 3²) / 6² × 2 / 1 = 1), and two-way (1 − 0.2) is floored at that.
    cards = ["a", "b", "c"] * 2
    origins = ["2024-01-01"] * 3 + ["2024-01-08"] * 3
    pairs = _pairs_with_gaps(cards, origins, [2.0] * 3 + [0.0] * 3)
    assert mape_difference_se(pairs) == pytest.approx(1.0)
    assert mape_difference_se(pairs) > np.std([2.0] * 3 + [0.0] * 3, ddof=1) / np.sqrt(6)


def test_mape_difference_se_counts_a_card_that_is_always_off_once() -> None:
    # The same with the roles swapped: card a is 2 off at every origin, card b never.
    cards = ["a", "b"] * 3
    origins = ["2024-01-01"] * 2 + ["2024-01-08"] * 2 + ["2024-01-15"] * 2
    pairs = _pairs_with_gaps(cards, origins, [2.0, 0.0] * 3)
    assert mape_difference_se(pairs) == pytest.approx(1.0)


def _pairs_of_moves(actuals: list[float]) -> pd.DataFrame:
    """Pairs of cards priced 1 at one origin whose actual is `actuals`, forecast unchanged."""
    n = len(actuals)
    return pd.DataFrame(
        {
            "card_id": [f"c{i}" for i in range(n)],
            "market_price": 1.0,
            "price_date": pd.Timestamp("2024-06-03"),
            "actual_price": actuals,
            "actual_date": pd.Timestamp("2024-07-01"),
            "fair_price": 1.0,
        }
    )


def test_a_mape_carried_by_a_few_pairs_is_noted_naming_the_worst() -> None:
    # 1,999 cards that moved 5% and one typo: the largest 2 pairs (0.1%) carry most of the mean.
    pairs = _pairs_of_moves([1.05] * 1_998 + [1.0 / 1_000, 1.05])
    note = dominated_mape(pairs)
    assert note is not None
    assert note.startswith("the largest 2 of 2000 pairs' errors carry 91% of mape_model and 91%")
    assert note.endswith(
        "its worst pairs: c1998 priced 1 on 2024-06-03, 0.001 on 2024-07-01; "
        "c0 priced 1 on 2024-06-03, 1.05 on 2024-07-01; "
        "c1 priced 1 on 2024-06-03, 1.05 on 2024-07-01"
    )


def test_a_mape_of_many_large_moves_is_no_few_pairs_mape() -> None:
    # A wild market: a tenth of the cards tripled. Large errors, but many of them.
    assert dominated_mape(_pairs_of_moves([3.0] * 100 + [1.05] * 900)) is None
    assert dominated_mape(_pairs_of_moves([1.0] * 10)) is None  # no error at all
