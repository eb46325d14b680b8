"""Model features and the forecast target, computed for every (card, date) of a price history.

Everything is vectorised over all cards at once: the history is sorted by (card, date) and each
card's rows are a contiguous block, so "the price d days ago" and "the first price on or after
t + horizon" are binary searches on a combined (card, day) key, and rolling statistics are
pandas grouped windows. No feature at date t reads a price observed after t (the tests check
this property); only `target` / `target_date` look ahead.

Windows are defined in days so that the same features mean the same on daily and weekly
histories: day lags are exact; rolling statistics over a window of d days use the number of
observations that typically fit in d days (from the history's median spacing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from pokewatch.card_day import KEY_SPAN, epoch_days, priced_card_days
from pokewatch.price_spikes import isolated_spikes

#: How long after `date + horizon` an observation still counts as the actual (SPEC section 6).
TARGET_WINDOW_DAYS = 7

#: Day lags of the log-return features.
RETURN_DAYS: tuple[int, ...] = (7, 14, 28, 56, 91)
#: Observation lags of the log-return features (recent moves whatever the spacing).
RETURN_OBS: tuple[int, ...] = (1, 2)
#: Windows (in days) of the rolling level / volatility / staleness features.
WINDOW_DAYS: tuple[int, ...] = (28, 91)
#: Day lag of the return compared with the card's set's mean return (one of `RETURN_DAYS`).
SET_RETURN_DAYS = 28
#: A log-price move smaller than this is "unchanged" (prices carried forward are rounded).
STALE_TOLERANCE = 1e-3

CATEGORICAL_FEATURES: tuple[str, ...] = ("rarity", "variant")
NUMERIC_FEATURES: tuple[str, ...] = (
    "log_price",
    *(f"ret_{d}d" for d in RETURN_DAYS),
    *(f"ret_{k}obs" for k in RETURN_OBS),
    "dev_mean3",
    *(f"vol_{w}d" for w in WINDOW_DAYS),
    *(f"dist_max_{w}d" for w in WINDOW_DAYS),
    *(f"dist_min_{w}d" for w in WINDOW_DAYS),
    *(f"dist_mean_{w}d" for w in WINDOW_DAYS),
    "zero_volume_share_91d",
    "log_volume",
    "stale_days",
    "age_days",
    f"rel_set_ret_{SET_RETURN_DAYS}d",
)
FEATURE_COLUMNS: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

#: Columns of `build_features` that say which card, when and at what price (besides the
#: features, the rule's fair value and the target).
ID_COLUMNS: tuple[str, ...] = ("card_id", "set_id", "date", "market_price")


def _clean_rows(history: pd.DataFrame, spike_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """`priced_card_days` of `history` without its isolated price spikes (`price_spikes`): a
    typo's row would be a feature of its neighbours, a target of rows a horizon before it, and a
    backtest pair whose error outweighs all the others."""
    rows, codes = priced_card_days(history)
    prices = history["market_price"].to_numpy(dtype=np.float64)[rows]
    kept = ~isolated_spikes(codes, prices, spike_factor)
    return rows[kept], codes[kept]


def clean_history(history: pd.DataFrame, spike_factor: float) -> pd.DataFrame:
    """The rows `build_features` reads: priced (market_price > 0), one per (card_id, date),
    without isolated price spikes, sorted by card then date."""
    needed = [*ID_COLUMNS, *CATEGORICAL_FEATURES, "release_date", "volume"]
    return history[needed].take(_clean_rows(history, spike_factor)[0]).reset_index(drop=True)


def _median_gap(codes: np.ndarray, days: np.ndarray) -> float:
    """Median spacing in days of consecutive observations of the same card (sorted rows)."""
    same_card = codes[1:] == codes[:-1]
    gaps = np.diff(days)[same_card]
    return float(np.median(gaps)) if len(gaps) else 1.0


def median_step_days(history: pd.DataFrame) -> float:
    """The typical spacing of a card's observations in days (1 on daily data, 7 on weekly),
    of a history sorted by card then date (`clean_history`)."""
    codes = pd.factorize(history["card_id"])[0]
    return _median_gap(codes, epoch_days(history["date"]))


class _Positions:
    """Binary searches on the sorted (card, day) key of a cleaned history."""

    def __init__(self, card_codes: np.ndarray, days: np.ndarray) -> None:
        self.codes = card_codes
        self.days = days
        self.key = card_codes.astype(np.int64) * KEY_SPAN + (days - days.min(initial=0))

    def last_on_or_before(self, days_back: int) -> tuple[np.ndarray, np.ndarray]:
        """Row of each card's last observation on or before date − days_back, and validity."""
        pos = np.searchsorted(self.key, self.key - days_back, side="right") - 1
        clipped = np.clip(pos, 0, None)
        valid = (pos >= 0) & (self.codes[clipped] == self.codes)
        return clipped, valid

    def first_in(self, start_days: int, end_days: int) -> tuple[np.ndarray, np.ndarray]:
        """Row of each card's first observation in [date + start, date + end], and validity."""
        pos = np.searchsorted(self.key, self.key + start_days, side="left")
        clipped = np.clip(pos, 0, len(self.key) - 1)
        valid = (
            (pos < len(self.key))
            & (self.codes[clipped] == self.codes)
            & (self.days[clipped] - self.days <= end_days)
        )
        return clipped, valid


class _CardWindow(BaseIndexer):
    """Rolling window of a row's last `window_size` observations of its own card (fewer at the
    card's start): one pass over all cards, without a groupby's regrouping and MultiIndex."""

    def __init__(self, first_row: np.ndarray, window_size: int) -> None:
        super().__init__(window_size=window_size)
        self.first_row = first_row

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        end = np.arange(1, num_values + 1, dtype=np.int64)
        return np.maximum(end - self.window_size, self.first_row), end


def _rolling(values: np.ndarray, first_row: np.ndarray, window: int, how: str) -> np.ndarray:
    """A rolling statistic over each card's last `window` observations (itself included)."""
    rolled = pd.Series(values).rolling(_CardWindow(first_row, window), min_periods=1)
    return getattr(rolled, how)().to_numpy()


def _group_mean(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mean of the finite `values` of each row's group (NaN when the group has none)."""
    finite = np.isfinite(values)
    sums = np.bincount(groups, weights=np.where(finite, values, 0.0))
    counts = np.bincount(groups, weights=finite.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts)[groups]


def _categorical(column: pd.Series, rows: np.ndarray) -> pd.Categorical:
    """`column` at `rows` as a categorical of its strings (missing: "")."""
    codes, categories = pd.factorize(column.take(rows).fillna(""), sort=True)
    return pd.Categorical.from_codes(codes, categories=categories.astype(str))


def build_features(history: pd.DataFrame, horizon_days: int, spike_factor: float) -> pd.DataFrame:
    """One row per priced (card_id, date) of `history`: ids, the price, `FEATURE_COLUMNS`,
    `target` = log(actual / market_price) and `target_date` (the actual's date). Isolated price
    spikes (`price_spikes.isolated_spikes` at `spike_factor`) are left out, as if unobserved.

    The actual is the card's first observed price on or after date + `horizon_days`, at most
    `TARGET_WINDOW_DAYS` later; target and target_date are NaN / NaT when there is none yet.
    Features are float32 (trees bin them anyway; half the memory of a daily history).
    """
    rows, codes = _clean_rows(history, spike_factor)
    n = len(rows)
    dates = history["date"].take(rows)
    days = epoch_days(dates)
    index = np.arange(n, dtype=np.int64)
    new_card = np.append(True, codes[1:] != codes[:-1])[:n]
    first_row = np.maximum.accumulate(np.where(new_card, index, 0))
    step = max(_median_gap(codes, days), 1.0)
    market_price = history["market_price"].to_numpy(dtype=np.float64)[rows]
    log_price = np.log(market_price)

    # Each feature is stored as float32 as soon as it is computed, so the float64 working arrays
    # of a large history never all exist at once.
    out: dict[str, np.ndarray] = {}

    def put(name: str, values: np.ndarray) -> np.ndarray:
        out[name] = values.astype(np.float32)
        return values

    def rolling(values: np.ndarray, window_days: int, how: str) -> np.ndarray:
        """`how` over the observations that typically fit in `window_days` (at least 2)."""
        return _rolling(values, first_row, max(2, round(window_days / step)), how)

    put("log_price", log_price)
    pos = _Positions(codes, days)
    for d in RETURN_DAYS:
        lag, valid = pos.last_on_or_before(d)
        ret = put(f"ret_{d}d", np.where(valid, log_price - log_price[lag], np.nan))
        if d == SET_RETURN_DAYS:
            set_return_base = ret
    target_row, known = pos.first_in(horizon_days, horizon_days + TARGET_WINDOW_DAYS)
    target = np.where(known, log_price[target_row] - log_price, np.nan)
    target_date = np.where(known, dates.to_numpy()[target_row], np.datetime64("NaT", "ns"))
    # The working arrays go as soon as they are used: on a large history each is ~8 bytes a row.
    del pos, codes, new_card, target_row, known, lag, valid
    for k in RETURN_OBS:
        ret = put(
            f"ret_{k}obs",
            np.where(
                index - first_row >= k, log_price - log_price[np.maximum(index - k, 0)], np.nan
            ),
        )
        if k == 1:
            step_return = ret
    del ret

    # The original rule's fair value: the mean of the last 3 observations.
    mean3 = _rolling(market_price, first_row, 3, "mean")
    put("dev_mean3", log_price - np.log(mean3))

    for w in WINDOW_DAYS:
        # Volatility per observation, rescaled to per-sqrt-day so it means the same on any spacing.
        put(f"vol_{w}d", rolling(step_return, w, "std") / np.sqrt(step))
        for stat in ("max", "min", "mean"):
            put(f"dist_{stat}_{w}d", log_price - rolling(log_price, w, stat))

    volume = history["volume"].take(rows).to_numpy(dtype=np.float64, na_value=np.nan)
    zero_volume = np.where(np.isnan(volume), np.nan, (volume == 0).astype(np.float64))
    put("zero_volume_share_91d", rolling(zero_volume, 91, "mean"))
    del zero_volume
    put("log_volume", np.log1p(volume))

    # Days since the price last moved: the row of the last change, carried forward (a card's
    # first row counts as a change, so the carry never crosses into the previous card).
    changed = ~(np.abs(np.nan_to_num(step_return, nan=np.inf)) <= STALE_TOLERANCE)
    last_change = np.maximum.accumulate(np.where(changed, index, 0))
    put("stale_days", days - days[last_change])
    del changed, last_change, step_return, volume
    put(
        "age_days",
        (dates - history["release_date"].take(rows)).dt.days.to_numpy(
            dtype=np.float64, na_value=np.nan
        ),
    )

    # A card's move relative to its set's mean move on the same date (known at t). Market- and
    # set-wide levels themselves are left out: with a year of history they take few distinct
    # values, and the trees used them to memorise dates (worse than naive on validation).
    set_codes = pd.factorize(history["set_id"].take(rows))[0].astype(np.int64)
    set_day = pd.factorize(set_codes * KEY_SPAN + (days - days.min(initial=0)))[0]
    put(
        f"rel_set_ret_{SET_RETURN_DAYS}d",
        set_return_base - _group_mean(set_return_base, set_day),
    )

    # Strings as pandas categoricals (sorted categories, so they sort as the strings do): a
    # small integer per row instead of a string.
    columns: dict[str, object] = {
        "card_id": _categorical(history["card_id"], rows),
        "set_id": _categorical(history["set_id"], rows),
        "date": dates.to_numpy(),
        "market_price": market_price,
    }
    columns.update({c: out.pop(c) for c in NUMERIC_FEATURES})
    columns.update({c: _categorical(history[c], rows) for c in CATEGORICAL_FEATURES})
    # The original rule's fair value, exact (float64) so the rule's signals are too.
    columns["rolling_mean_3"] = mean3
    columns["target"] = target
    columns["target_date"] = target_date
    return pd.DataFrame(columns, copy=False)
