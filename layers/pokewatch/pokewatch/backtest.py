"""The walk-forward backtest of SPEC section 6: honest, out-of-time quality of the fair price.

Origins are the dates of the last `backtest_days` whose actual (first price on or after
t + horizon, within 7 days) can be observed, at least `backtest_origin_step_days` apart. A
card's price at t is its latest observation in the step before t (no older than the horizon),
so cards priced on different weekdays are all backtested; its actual is counted from that
observation. The model is refitted every `backtest_refit_days`; an origin t is predicted by the
latest refit at or before t, which saw only rows whose target was known by its own date
(target_date <= refit date <= t), while every actual of t lies after t, so no pair ever informs
its own prediction. Features at t use prices up to t only.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from pokewatch.card_day import epoch_days
from pokewatch.fair_price_model import VALIDATION_DAYS, FairPriceModel, NotEnoughHistory
from pokewatch.features import TARGET_WINDOW_DAYS, build_features, median_step_days
from pokewatch.settings import Settings
from pokewatch.signals import Signal, deviation_pct

#: A date is an origin candidate when at least this share of the cards of the busiest date within
#: `CALENDAR_NEIGHBOURHOOD_DAYS` of it have a price on it (skips the odd off-calendar day of a
#: weekly history).
MAIN_CALENDAR_SHARE = 0.5
#: Every day is this close to a day of a weekly calendar, and no two weekly days are this close
#: (a wider neighbourhood compared the first week after a catalogue shrank with the week before
#: it, and dropped that origin).
CALENDAR_NEIGHBOURHOOD_DAYS = 3


class BacktestMetrics(BaseModel):
    """What the backtest measured (the keys of `pokewatch backtest --json`)."""

    horizon_days: int
    mape_model: float
    mape_naive: float
    mape_rolling_mean_3: float
    interval_coverage: float
    #: The same share in each fifth of the pairs by the interval's relative width, narrowest
    #: first: an interval must hold for quiet and volatile cards alike, not only on average
    #: (empty in the metrics of versions that did not measure it).
    interval_coverage_by_width: list[float] = Field(default_factory=list)
    #: The standard error of each, its pairs clustered as in `mape_difference_se`.
    interval_coverage_by_width_se: list[float] = Field(default_factory=list)
    #: Standard error of mape_model − mape_naive, its pairs clustered by card and by origin
    #: (None in the metrics of versions that did not measure it).
    mape_difference_se: float | None = None
    #: Mean forward return of BUY pairs minus SELL pairs; None when either side is empty.
    signal_spread_model: float | None
    signal_spread_rule: float | None
    n_pairs: int
    n_cards: int
    n_origins: int
    n_refits: int
    first_origin: dt.date
    last_origin: dt.date
    buy_count: int
    sell_count: int
    rule_buy_count: int
    rule_sell_count: int


def signals_of(deviation: np.ndarray, buy_threshold: float, sell_threshold: float) -> np.ndarray:
    """The rule of `pokewatch.signals.signal_of`, over an array of deviations."""
    return np.select(
        [deviation <= buy_threshold, deviation >= sell_threshold],
        [Signal.BUY.value, Signal.SELL.value],
        default=Signal.HOLD.value,
    )


def _spaced(dates: list[pd.Timestamp], step_days: int, from_latest: bool) -> list[pd.Timestamp]:
    """Dates at least `step_days` apart (ascending), anchored on the latest or the earliest."""
    kept: list[pd.Timestamp] = []
    for date in sorted(dates, reverse=from_latest):
        if not kept or abs((kept[-1] - date).days) >= step_days:
            kept.append(date)
    return sorted(kept)


def origin_dates(features: pd.DataFrame, settings: Settings) -> list[pd.Timestamp]:
    """The backtest's origins: main-calendar dates with observable actuals (see module doc)."""
    counts = features.loc[features["target"].notna(), "date"].value_counts().sort_index()
    if counts.empty:
        return []
    calendar = counts.index[counts >= MAIN_CALENDAR_SHARE * _nearby_max(counts)]
    last = calendar.max()
    # A refit at an origin needs targets known before its validation window, which itself ends
    # a horizon before the origin: origins closer to the start of the history cannot be fitted.
    earliest = features["date"].min() + pd.Timedelta(days=min_history_days(settings))
    in_window = [d for d in calendar if (last - d).days < settings.backtest_days and d >= earliest]
    return _spaced(in_window, settings.backtest_origin_step_days, from_latest=True)


def _nearby_max(counts: pd.Series) -> np.ndarray:
    """For each date of `counts` (sorted by date), the largest count within
    `CALENDAR_NEIGHBOURHOOD_DAYS` of it (inclusive). Compared with the busiest date of the whole
    history instead, a catalogue that shrank (half the cards no longer priced in the last
    months) made every later date "off-calendar" and moved the backtest's window back to months
    before the history's end, without a word."""
    days = epoch_days(counts.index.to_series())
    starts = np.searchsorted(days, days - CALENDAR_NEIGHBOURHOOD_DAYS, side="left")
    ends = np.searchsorted(days, days + CALENDAR_NEIGHBOURHOOD_DAYS, side="right")
    values = counts.to_numpy()
    return np.array([values[s:e].max() for s, e in zip(starts, ends, strict=True)])


def min_history_days(settings: Settings) -> int:
    """Days of history before the first origin a walk-forward refit can be fitted on."""
    return 2 * settings.horizon_days + VALIDATION_DAYS + 14


def walk_forward_pairs(history: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """One row per (origin, card) with a price at the origin and an observed actual: the price
    and its date (`price_date`, see `priced_at`), the actual, the model's fair price, interval
    and expected price, the rule's rolling-mean-3 fair value, both signals, the forward return,
    and the refit date of the model that predicted it."""
    return walk_forward_pairs_of_features(
        build_features(history, settings.horizon_days, settings.price_spike_factor), settings
    )


def walk_forward_pairs_of_features(features: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """`walk_forward_pairs` of the history whose `build_features` table (at the settings'
    horizon) is `features`: the train step has it already, and a large daily history's table
    is better not built twice."""
    horizon = settings.horizon_days
    if features.empty:
        raise NotEnoughHistory("the history has no priced rows")
    origins = origin_dates(features, settings)
    if not origins:
        step = median_step_days(features)
        if step > horizon + TARGET_WINDOW_DAYS:
            # However long the history, an actual is rarely observed: its prices are further
            # apart than the horizon's window (a monthly history at a 7-day horizon), and "too
            # short, collect a longer history" would be wrong advice.
            raise NotEnoughHistory(
                f"the history's prices are {step:g} days apart: a card rarely has a price "
                f"{horizon} to {horizon + TARGET_WINDOW_DAYS} days after another (the actual of "
                f"a {horizon}-day forecast); choose a horizon of that spacing or a multiple of it"
            )
        needed = min_history_days(settings) + horizon
        first, last = features["date"].min(), features["date"].max()
        raise NotEnoughHistory(
            f"the history is too short for a {horizon}-day walk-forward backtest: its prices "
            f"span {(last - first).days} days ({first.date()} to {last.date()}); an origin needs "
            f"{min_history_days(settings)} days of prices before it and an observed price "
            f"{horizon} to {horizon + TARGET_WINDOW_DAYS} days after it, at least {needed} "
            "days in all (collect a longer history)"
        )
    models = _refitted(
        features, _spaced(origins, settings.backtest_refit_days, from_latest=False), settings
    )

    window_days = current_price_days(settings)
    frames: list[pd.DataFrame] = []
    fitted_on = origins[0]  # the first origin is always a refit
    for origin in origins:
        if origin in models:
            fitted_on = origin
        at_origin = priced_at(features, origin, window_days)
        frames.append(predicted_pairs(models[fitted_on], at_origin, origin, fitted_on))
    return with_signals(pd.concat(frames, ignore_index=True), settings)


def predicted_pairs(
    model: FairPriceModel, at_origin: pd.DataFrame, origin: pd.Timestamp, fitted_on: pd.Timestamp
) -> pd.DataFrame:
    """The pairs of one origin (`priced_at` rows) with `model`'s predictions, the actual and the
    rule's fair value: the columns of `walk_forward_pairs` before the signals."""
    predicted = model.predict(at_origin)
    price = at_origin["market_price"].to_numpy()
    return pd.DataFrame(
        {
            "origin": origin,
            "card_id": at_origin["card_id"].to_numpy(),
            "price_date": at_origin["date"].to_numpy(),
            "market_price": price,
            "actual_price": price * np.exp(at_origin["target"].to_numpy()),
            "actual_date": at_origin["target_date"].to_numpy(),
            "rolling_mean_3": at_origin["rolling_mean_3"].to_numpy(),
            **{c: predicted[c].to_numpy() for c in predicted.columns},
            "fitted_on": fitted_on,
        }
    )


def current_price_days(settings: Settings) -> int:
    """How old a card's latest price may be and still be its price at a date: the step of the
    backtest's origins, but never more than the horizon (an actual must lie after the origin,
    beyond what its refit may have seen)."""
    return min(settings.backtest_origin_step_days, settings.horizon_days)


def priced_at(features: pd.DataFrame, origin: pd.Timestamp, window_days: int) -> pd.DataFrame:
    """The backtest pairs of one origin: every card's latest observation in the `window_days`
    up to the origin (its price at the origin), when that observation has an observed actual.

    On a history where all cards share a calendar this is each card's row on the origin itself;
    on one where cards are priced on different weekdays, a card priced two days before the
    origin is still a card with a price at it (and its actual is counted from that price, so
    the horizon stays exact). Everything it uses was known at the origin.
    """
    dates = features["date"]
    window = features[(dates > origin - pd.Timedelta(days=window_days)) & (dates <= origin)]
    # Rows are ordered by card then date (`build_features`), so a card's last row is its latest.
    latest = window[~window["card_id"].duplicated(keep="last")]
    return latest[latest["target"].notna()]


def add_signal(
    frame: pd.DataFrame, reference: str, settings: Settings, prefix: str = ""
) -> pd.DataFrame:
    """Add `{prefix}deviation_pct` of `market_price` from the `reference` column and the
    `{prefix}signal` of that deviation (the model's signal: reference `expected_price`)."""
    deviation = deviation_pct(frame["market_price"], frame[reference])
    frame[f"{prefix}deviation_pct"] = deviation
    frame[f"{prefix}signal"] = signals_of(
        deviation.to_numpy(), settings.buy_threshold, settings.sell_threshold
    )
    return frame


def _refitted(
    features: pd.DataFrame, refit_days: list[pd.Timestamp], settings: Settings
) -> dict[pd.Timestamp, FairPriceModel]:
    """The walk-forward models, one per refit date, each fitted on the rows whose target was
    known by then. The refits are independent, so `model_fit_workers` threads fit them side by
    side: the trees' compiled loops release the GIL (1.3× on 2 cores, more on Lambda's)."""

    def fit(day: pd.Timestamp) -> FairPriceModel:
        return FairPriceModel(
            settings.horizon_days,
            settings.interval_level,
            max_train_rows=settings.model_max_train_rows,
        ).fit(features, known_by=day)

    # One OpenMP thread held for the whole pool: each fit's own limit restores the process-wide
    # setting when it ends, which must not hand a fit still running in another thread more.
    with (
        threadpool_limits(limits=1, user_api="openmp"),
        ThreadPoolExecutor(max_workers=settings.model_fit_workers) as pool,
    ):
        return dict(zip(refit_days, pool.map(fit, refit_days), strict=True))


def with_signals(pairs: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Add the forward return and, for the model and for the rule, the deviation and signal of
    each pair (columns market_price, actual_price, expected_price, rolling_mean_3 are required)."""
    pairs["forward_return"] = pairs["actual_price"] / pairs["market_price"] - 1
    add_signal(pairs, "expected_price", settings)
    return add_signal(pairs, "rolling_mean_3", settings, prefix="rule_")


def _pair_ape(predicted: pd.Series, actual: pd.Series) -> pd.Series:
    """|predicted − actual| / actual of every pair."""
    return (predicted - actual).abs() / actual


def _ape(predicted: pd.Series, actual: pd.Series) -> float:
    return float(_pair_ape(predicted, actual).mean())


def _spread(pairs: pd.DataFrame, signal_column: str) -> tuple[float | None, int, int]:
    """Mean forward return of BUY pairs minus SELL pairs, and the two counts."""
    returns = pairs["forward_return"]
    buy, sell = pairs[signal_column] == Signal.BUY, pairs[signal_column] == Signal.SELL
    spread = float(returns[buy].mean() - returns[sell].mean()) if buy.any() and sell.any() else None
    return spread, int(buy.sum()), int(sell.sum())


def clustered_standard_error(values: pd.Series, pairs: pd.DataFrame) -> float:
    """Standard error of the mean of a per-pair quantity (`values`, aligned with `pairs`).

    A card's pairs at neighbouring origins share most of their horizon, and one origin's pairs
    share the market's move, so the pairs are not independent: the variance is two-way
    cluster-robust (by card and by origin: V_card + V_origin − V_pair), and never less than
    either one-way variance, so a small backtest cannot look more certain than it is. Each
    variance has the small-sample factor G / (G − 1) of its G clusters: a short history has
    only a few origins.
    """
    residual = values - values.mean()
    n = len(residual)

    def variance(clusters: np.ndarray) -> float:
        sums = residual.groupby(clusters, observed=True).sum()
        groups = len(sums)
        return float((sums**2).sum()) / n**2 * (groups / (groups - 1) if groups > 1 else 1.0)

    by_card = variance(pairs["card_id"].to_numpy())
    by_origin = variance(pairs["origin"].to_numpy())
    by_pair = variance(np.arange(n))
    return math.sqrt(max(by_card + by_origin - by_pair, by_card, by_origin))


def mape_difference_se(pairs: pd.DataFrame) -> float:
    """Standard error of the mean of |fair − actual| / actual − |price − actual| / actual."""
    actual = pairs["actual_price"]
    gap = _pair_ape(pairs["fair_price"], actual) - _pair_ape(pairs["market_price"], actual)
    return clustered_standard_error(gap, pairs)


#: Parts of `interval_coverage_by_width`.
WIDTH_PARTS = 5


def interval_coverage_by_width(
    pairs: pd.DataFrame, inside: pd.Series
) -> tuple[list[float], list[float]]:
    """Share of `inside` pairs, and its standard error, in each of `WIDTH_PARTS` equal parts of
    the pairs ordered by their interval's relative width (high / low), narrowest first. Ties
    are split in pair order, so the parts stay equal when many cards share the narrowest
    interval."""
    if len(pairs) < WIDTH_PARTS:
        return [], []
    width = (pairs["fair_price_high"] / pairs["fair_price_low"]).rank(method="first")
    part = pd.qcut(width, WIDTH_PARTS, labels=False)
    shares, errors = [], []
    for _, members in inside.astype(float).groupby(part):
        shares.append(float(members.mean()))
        errors.append(clustered_standard_error(members, pairs.loc[members.index]))
    return shares, errors


def metrics_of_pairs(pairs: pd.DataFrame, settings: Settings) -> BacktestMetrics:
    """The SPEC section 6 metrics of a `walk_forward_pairs` frame."""
    actual = pairs["actual_price"]
    inside = (pairs["fair_price_low"] <= actual) & (actual <= pairs["fair_price_high"])
    by_width, by_width_se = interval_coverage_by_width(pairs, inside)
    spread_model, buy, sell = _spread(pairs, "signal")
    spread_rule, rule_buy, rule_sell = _spread(pairs, "rule_signal")
    return BacktestMetrics(
        horizon_days=settings.horizon_days,
        mape_model=_ape(pairs["fair_price"], actual),
        mape_naive=_ape(pairs["market_price"], actual),
        mape_rolling_mean_3=_ape(pairs["rolling_mean_3"], actual),
        interval_coverage=float(inside.mean()),
        interval_coverage_by_width=by_width,
        interval_coverage_by_width_se=by_width_se,
        mape_difference_se=mape_difference_se(pairs),
        signal_spread_model=spread_model,
        signal_spread_rule=spread_rule,
        n_pairs=len(pairs),
        n_cards=int(pairs["card_id"].nunique()),
        n_origins=int(pairs["origin"].nunique()),
        n_refits=int(pairs["fitted_on"].nunique()),
        first_origin=pairs["origin"].min().date(),
        last_origin=pairs["origin"].max().date(),
        buy_count=buy,
        sell_count=sell,
        rule_buy_count=rule_buy,
        rule_sell_count=rule_sell,
    )


#: Fewer walk-forward refits than this, and the metrics rest on one or two fits of the model.
FEW_REFITS = 3


class Backtest(BaseModel):
    """A backtest's metrics, and what a reader of them should know about how much they rest on."""

    metrics: BacktestMetrics
    caveats: list[str]


def caveats(metrics: BacktestMetrics, step_days: float) -> list[str]:
    """The caveats of `metrics`, measured on a history whose observations are `step_days` apart."""
    found = []
    if metrics.n_refits < FEW_REFITS:
        found.append(
            f"only {metrics.n_refits} walk-forward refit(s) fit in this history: the metrics "
            "rest on the first models a short history allows, whose intervals are calibrated "
            "on few weeks (a longer history gives steadier numbers)"
        )
    if metrics.horizon_days < step_days:
        found.append(
            f"the horizon ({metrics.horizon_days} days) is shorter than the history's spacing "
            f"({step_days:g} days): each actual is the next observed price, "
            f"{step_days:g} days or more ahead"
        )
    return found


#: When the largest errors of this share of the pairs (at least one pair) carry more than
#: `DOMINATED_SHARE` of a MAPE, the MAPE says little about the others: one typo's pair did that
#: to every MAPE of a year's backtest. (On the real weekly history they carry 3%.)
DOMINANT_PAIRS = 0.001
DOMINATED_SHARE = 0.5
#: How many of the worst pairs a note on a dominated MAPE names.
QUOTED_PAIRS = 3


def dominated_mape(pairs: pd.DataFrame) -> str | None:
    """A note when the largest `DOMINANT_PAIRS` of the pairs' errors carry more than
    `DOMINATED_SHARE` of the model's or the naive MAPE, naming the worst pairs (by the naive
    error, which is the data's own: an actual far from its price); None when neither is."""
    actual = pairs["actual_price"]
    errors = {
        "mape_model": _pair_ape(pairs["fair_price"], actual),
        "mape_naive": _pair_ape(pairs["market_price"], actual),
    }
    top = max(1, math.ceil(DOMINANT_PAIRS * len(pairs)))
    shares = {
        name: float(error.nlargest(top).sum() / error.sum())
        for name, error in errors.items()
        if error.sum() > 0
    }
    dominated = {name: share for name, share in shares.items() if share > DOMINATED_SHARE}
    if not dominated:
        return None
    worst = pairs.loc[errors["mape_naive"].nlargest(QUOTED_PAIRS).index]
    named = "; ".join(
        f"{pair.card_id} priced {pair.market_price:g} on {pd.Timestamp(pair.price_date):%Y-%m-%d}"
        f", {pair.actual_price:g} on {pd.Timestamp(pair.actual_date):%Y-%m-%d}"
        for pair in worst.itertuples()
    )
    carried = " and ".join(f"{share:.0%} of {name}" for name, share in dominated.items())
    return (
        f"the largest {top} of {len(pairs)} pairs' errors carry {carried}: a mean over the pairs "
        f"is not a fair summary of this backtest; its worst pairs: {named}"
    )


def backtest_notes(
    metrics: BacktestMetrics, pairs: pd.DataFrame, features: pd.DataFrame
) -> list[str]:
    """What a reader of `metrics` (of `pairs`, backtested on `features`) should know: its
    `caveats`, and a MAPE that a few pairs dominate (`dominated_mape`)."""
    notes = caveats(metrics, median_step_days(features))
    if (dominated := dominated_mape(pairs)) is not None:
        notes.append(dominated)
    return notes


def walk_forward(history: pd.DataFrame, settings: Settings) -> Backtest:
    """The walk-forward backtest of `history` (SPEC section 6) at `settings.horizon_days`, with
    its `backtest_notes`. The isolated price spikes it leaves out are not among them: the
    source names them where it read them (the csv source: with their lines). Raises
    `NotEnoughHistory` when the history is too short or too small to backtest."""
    features = build_features(history, settings.horizon_days, settings.price_spike_factor)
    pairs = walk_forward_pairs_of_features(features, settings)
    metrics = metrics_of_pairs(pairs, settings)
    return Backtest(metrics=metrics, caveats=backtest_notes(metrics, pairs, features))
