"""Every rule of the quality gate, alone and with its reason."""

from __future__ import annotations

import datetime as dt

import pytest

from pokewatch.backtest import BacktestMetrics
from pokewatch.quality_gate import evaluate_gate
from pokewatch.settings import Settings

SETTINGS = Settings(
    max_mape=0.20,
    min_card_coverage=0.80,
    naive_tolerance=0.0,
    champion_tolerance=0.05,
    interval_coverage_tolerance=0.10,
)


def metrics(**overrides: object) -> BacktestMetrics:
    """A backtest that passes every rule, with some fields overridden."""
    values: dict[str, object] = {
        "horizon_days": 28,
        "mape_model": 0.06,
        "mape_naive": 0.065,
        "mape_rolling_mean_3": 0.07,
        "interval_coverage": 0.80,
        "interval_coverage_by_width": [0.78, 0.80, 0.79, 0.81, 0.82],
        "interval_coverage_by_width_se": [0.01] * 5,
        "signal_spread_model": 0.05,
        "signal_spread_rule": 0.02,
        "n_pairs": 1000,
        "n_cards": 100,
        "n_origins": 10,
        "n_refits": 3,
        "first_origin": dt.date(2024, 5, 6),
        "last_origin": dt.date(2024, 7, 8),
        "buy_count": 20,
        "sell_count": 20,
        "rule_buy_count": 30,
        "rule_sell_count": 30,
    }
    values.update(overrides)
    return BacktestMetrics.model_validate(values)


def test_a_good_model_passes_without_champion() -> None:
    decision = evaluate_gate(metrics(), None, SETTINGS, card_coverage=0.95)
    assert decision.passed
    assert decision.reasons == []
    assert set(decision.checks) == {
        "mape",
        "card_coverage",
        "naive",
        "interval_coverage",
        "interval_coverage_by_width",
    }


@pytest.mark.parametrize(
    ("candidate", "coverage", "failing"),
    [
        (metrics(mape_model=0.25, mape_naive=0.30), 0.95, "mape"),
        (metrics(), 0.79, "card_coverage"),
        (metrics(mape_model=0.066, mape_naive=0.065), 0.95, "naive"),
        (metrics(interval_coverage=0.65), 0.95, "interval_coverage"),
        (metrics(interval_coverage=0.95), 0.95, "interval_coverage"),
        (
            metrics(interval_coverage_by_width=[0.66, 0.75, 0.80, 0.84, 0.95], n_pairs=100_000),
            0.95,
            "interval_coverage_by_width",
        ),
    ],
)
def test_each_rule_fails_alone_with_its_reason(
    candidate: BacktestMetrics, coverage: float, failing: str
) -> None:
    decision = evaluate_gate(candidate, None, SETTINGS, card_coverage=coverage)
    assert not decision.passed
    assert [name for name, check in decision.checks.items() if not check.passed] == [failing]
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith(f"{failing}:")


def test_champion_tolerance() -> None:
    champion = metrics(mape_model=0.050, mape_naive=0.0625)  # 0.8 × naive
    within = evaluate_gate(
        metrics(mape_model=0.0525, mape_naive=0.0625), champion, SETTINGS, card_coverage=0.9
    )
    beyond = evaluate_gate(
        metrics(mape_model=0.0530, mape_naive=0.0625), champion, SETTINGS, card_coverage=0.9
    )
    assert within.passed
    assert within.checks["champion"].threshold == pytest.approx(0.84)
    assert not beyond.passed
    assert beyond.reasons == [
        "champion: 0.848 fails mape_model / mape_naive vs the champion's × (1 + champion_tolerance)"
        " <= 0.84"
    ]


def test_the_champion_is_compared_on_its_own_weeks_error_relative_to_naive() -> None:
    # The champion's backtest covered calm weeks; the candidate's, wilder ones: both errors
    # grew, the candidate's less than naive's. It is the better model and must not be stuck out.
    champion = metrics(mape_model=0.050, mape_naive=0.052)
    candidate = metrics(mape_model=0.060, mape_naive=0.066)
    assert evaluate_gate(candidate, champion, SETTINGS, card_coverage=0.9).passed
    # In the same wild weeks a candidate that only ties naive is worse than a champion that beat
    # it by 4%, but within the 5% tolerance; one 10% worse than naive is not.
    assert evaluate_gate(
        metrics(mape_model=0.066, mape_naive=0.066), champion, SETTINGS, 0.9
    ).passed
    worse = metrics(mape_model=0.0726, mape_naive=0.066)
    failed = evaluate_gate(worse, champion, SETTINGS.model_copy(update={"naive_tolerance": 1}), 0.9)
    assert [r.split(":")[0] for r in failed.reasons] == ["champion"]


def test_naive_tolerance_gives_slack() -> None:
    lenient = SETTINGS.model_copy(update={"naive_tolerance": 0.05})
    decision = evaluate_gate(
        metrics(mape_model=0.068, mape_naive=0.065), None, lenient, card_coverage=0.9
    )
    assert decision.checks["naive"].passed


def test_a_tie_with_naive_within_its_noise_passes_and_beyond_it_fails() -> None:
    noisy = SETTINGS.model_copy(update={"naive_noise_sigmas": 2.0})
    within = metrics(mape_model=0.0651, mape_naive=0.065, mape_difference_se=0.0001)
    beyond = metrics(mape_model=0.0653, mape_naive=0.065, mape_difference_se=0.0001)
    assert evaluate_gate(within, None, noisy, card_coverage=0.9).checks["naive"].passed
    failed = evaluate_gate(beyond, None, noisy, card_coverage=0.9)
    assert failed.checks["naive"].threshold == pytest.approx(0.0652)
    assert failed.reasons == [
        "naive: 0.0653 fails mape_model vs mape_naive × (1 + naive_tolerance)"
        " + naive_noise_sigmas × mape_difference_se <= 0.0652"
    ]
    strict = SETTINGS.model_copy(update={"naive_noise_sigmas": 0.0})
    assert not evaluate_gate(within, None, strict, card_coverage=0.9).checks["naive"].passed


def test_metrics_without_a_measured_noise_are_held_to_naive_exactly() -> None:
    older = metrics(mape_model=0.0651, mape_naive=0.065)
    assert older.mape_difference_se is None
    assert not evaluate_gate(older, None, SETTINGS, card_coverage=0.9).checks["naive"].passed


def test_an_interval_that_holds_only_on_average_fails_unless_the_miss_is_noise() -> None:
    # On average 0.80, but the quietest cards' intervals hold 66% of the time.
    skewed = [0.66, 0.78, 0.80, 0.84, 0.88]
    measured = metrics(interval_coverage_by_width=skewed, n_pairs=100_000)
    failed = evaluate_gate(measured, None, SETTINGS, card_coverage=0.9)
    assert failed.checks["interval_coverage"].passed
    check = failed.checks["interval_coverage_by_width"]
    assert not check.passed
    assert check.value == pytest.approx(0.14)
    assert check.threshold == pytest.approx(0.10 + 2 * 0.01)
    assert failed.reasons == [
        "interval_coverage_by_width: 0.14 fails |0.660 − 0.8| of width fifth 1/5"
        " (1: narrowest) vs interval_coverage_tolerance + interval_noise_sigmas × its s.e."
        " <= 0.12"
    ]
    # The same miss measured on a fifth of a small backtest (a standard error of 3%) is noise.
    small = metrics(
        interval_coverage_by_width=skewed,
        interval_coverage_by_width_se=[0.03, 0.01, 0.01, 0.01, 0.01],
        n_pairs=100_000,
    )
    assert evaluate_gate(small, None, SETTINGS, card_coverage=0.9).passed
    strict = SETTINGS.model_copy(update={"interval_noise_sigmas": 0.0})
    assert not evaluate_gate(small, None, strict, card_coverage=0.9).passed


def test_a_coverage_reason_shows_the_coverage_measured_not_only_its_distance() -> None:
    # An interval of width 0 covers nothing: the reason must read 0, not "0.8 fails".
    failed = evaluate_gate(
        metrics(interval_coverage=0.0, interval_coverage_by_width=[0.0] * 5), None, SETTINGS, 0.9
    )
    assert failed.reasons[0] == "interval_coverage: 0.8 fails |0.000 − 0.8| <= 0.1"


def test_the_fifth_judged_is_the_one_furthest_beyond_its_noise() -> None:
    # Fifth 1 misses more, but fifth 5 misses more in its own standard errors.
    measured = metrics(
        interval_coverage_by_width=[0.62, 0.80, 0.80, 0.80, 0.93],
        interval_coverage_by_width_se=[0.05, 0.01, 0.01, 0.01, 0.01],
        n_pairs=100_000,
    )
    check = evaluate_gate(measured, None, SETTINGS, card_coverage=0.9).checks[
        "interval_coverage_by_width"
    ]
    assert not check.passed
    assert "fifth 5/5" in check.rule and check.value == pytest.approx(0.13)


def test_a_small_fifth_all_inside_is_allowed_the_noise_of_independent_pairs() -> None:
    # 10 pairs a fifth, every one inside in the first: its clustered standard error is 0.
    lucky = metrics(
        n_pairs=50,
        interval_coverage_by_width=[1.0, 0.8, 0.8, 0.7, 0.7],
        interval_coverage_by_width_se=[0.0, 0.1, 0.1, 0.1, 0.1],
    )
    check = evaluate_gate(lucky, None, SETTINGS, card_coverage=0.9).checks[
        "interval_coverage_by_width"
    ]
    assert check.passed
    assert check.threshold == pytest.approx(0.10 + 2 * (0.8 * 0.2 / 10) ** 0.5)


def test_metrics_without_coverage_by_width_are_not_held_to_it() -> None:
    older = metrics(interval_coverage_by_width=[], interval_coverage_by_width_se=[])
    decision = evaluate_gate(older, None, SETTINGS, card_coverage=0.9)
    assert decision.passed and "interval_coverage_by_width" not in decision.checks


def test_all_failures_are_listed() -> None:
    bad = metrics(mape_model=0.5, mape_naive=0.3, interval_coverage=0.2)
    decision = evaluate_gate(bad, metrics(), SETTINGS, card_coverage=0.1)
    assert not decision.passed
    assert {r.split(":")[0] for r in decision.reasons} == {
        "mape",
        "card_coverage",
        "naive",
        "interval_coverage",
        "champion",
    }
