"""The quality gate of the validate step: may a freshly trained model replace the one in service?

Every rule is a named check with its measured value and threshold, so a rejection says exactly
why (SPEC section 6): MAPE at most `max_mape`; at least `min_card_coverage` of the cards
predicted; not worse than the naive forecast (repeat the last price) beyond `naive_tolerance`
and `naive_noise_sigmas` standard errors of the measured difference (on a small catalogue a
model that ties the naive forecast measures a little better or worse by chance; the first run
of a small catalogue must not fail on that);
not worse than the champion beyond `champion_tolerance` (each measured against the naive
forecast of its own backtest); and an interval whose coverage is
within `interval_coverage_tolerance` of the nominal level, overall and for narrow and wide
intervals alike (in every fifth of the pairs by interval width, beyond `interval_noise_sigmas`
standard errors of that fifth's coverage).
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from pokewatch.backtest import BacktestMetrics
from pokewatch.settings import Settings


class GateCheck(BaseModel):
    """One rule of the gate: the value measured, the bound it is held to, and the outcome."""

    passed: bool
    value: float
    threshold: float
    rule: str


class GateDecision(BaseModel):
    """The gate's verdict: passed only when every check passed; `reasons` lists the failures."""

    passed: bool
    reasons: list[str]
    checks: dict[str, GateCheck]


def _at_most(name: str, value: float, bound: float, what: str) -> tuple[str, GateCheck]:
    return name, GateCheck(
        passed=value <= bound, value=value, threshold=bound, rule=f"{what} <= {bound:.4g}"
    )


def _at_least(name: str, value: float, bound: float, what: str) -> tuple[str, GateCheck]:
    return name, GateCheck(
        passed=value >= bound, value=value, threshold=bound, rule=f"{what} >= {bound:.4g}"
    )


def _error_to_naive(metrics: BacktestMetrics) -> float:
    """The model's error relative to the naive forecast's on the same pairs: the champion's
    backtest covers earlier weeks than the candidate's, and a calmer or wilder market moves both
    models' errors alike, not their ratio to naive (1 when nothing moved at all)."""
    return metrics.mape_model / metrics.mape_naive if metrics.mape_naive > 0 else 1.0


def _worst_width_part(candidate: BacktestMetrics, settings: Settings) -> GateCheck:
    """The fifth of the pairs by interval width whose coverage is furthest from the level,
    counted in its own standard errors (a fifth of a small backtest is noisy)."""
    level, sigmas = settings.interval_level, settings.interval_noise_sigmas
    # Never less certain than independent pairs at the promised level: a small fifth that
    # happened to be all inside has a clustered standard error of 0.
    part_size = candidate.n_pairs / len(candidate.interval_coverage_by_width)
    binomial = math.sqrt(level * (1 - level) / max(part_size, 1))
    errors = [max(e, binomial) for e in candidate.interval_coverage_by_width_se]
    _, part, coverage, error = max(
        (abs(c - level) - sigmas * e, i, c, e)
        for i, (c, e) in enumerate(zip(candidate.interval_coverage_by_width, errors, strict=True))
    )
    _, check = _at_most(
        "interval_coverage_by_width",
        abs(coverage - level),
        settings.interval_coverage_tolerance + sigmas * error,
        f"|{coverage:.3f} − {level}| of width fifth {part + 1}/{len(errors)} (1: narrowest)"
        " vs interval_coverage_tolerance + interval_noise_sigmas × its s.e.",
    )
    return check


def evaluate_gate(
    candidate: BacktestMetrics,
    champion: BacktestMetrics | None,
    settings: Settings,
    card_coverage: float,
) -> GateDecision:
    """Judge `candidate` (its backtest) against the thresholds of `settings` and, when a model
    is in service, against `champion`'s backtest. `card_coverage` is the share of known cards
    the candidate predicts from a current price (`pokewatch.pipeline.train.card_coverage`)."""
    level = settings.interval_level
    checks = dict(
        [
            _at_most("mape", candidate.mape_model, settings.max_mape, "mape_model"),
            _at_least("card_coverage", card_coverage, settings.min_card_coverage, "card coverage"),
            _at_most(
                "naive",
                candidate.mape_model,
                candidate.mape_naive * (1 + settings.naive_tolerance)
                + settings.naive_noise_sigmas * (candidate.mape_difference_se or 0.0),
                "mape_model vs mape_naive × (1 + naive_tolerance)"
                " + naive_noise_sigmas × mape_difference_se",
            ),
            _at_most(
                "interval_coverage",
                abs(candidate.interval_coverage - level),
                settings.interval_coverage_tolerance,
                f"|{candidate.interval_coverage:.3f} − {level}|",  # the coverage, not only its gap
            ),
        ]
    )
    if candidate.interval_coverage_by_width:
        checks["interval_coverage_by_width"] = _worst_width_part(candidate, settings)
    if champion is not None:
        name, check = _at_most(
            "champion",
            _error_to_naive(candidate),
            _error_to_naive(champion) * (1 + settings.champion_tolerance),
            "mape_model / mape_naive vs the champion's × (1 + champion_tolerance)",
        )
        checks[name] = check
    reasons = [
        f"{name}: {check.value:.4g} fails {check.rule}"
        for name, check in checks.items()
        if not check.passed
    ]
    return GateDecision(passed=not reasons, reasons=reasons, checks=checks)
