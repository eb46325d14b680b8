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

#: How long after `date + horizon` an observation still counts as the actual (SPEC section 6).
TARGET_WINDOW_DAYS = 7

#: Day lags of the log-return features.
RETURN_DAYS: tuple[int, ...] = (7, 14, 28, 56, 91)
#: Observation lags of the log-return features (recent moves whatever the spacing).
RETURN_OBS: tuple[int, ...] = (1, 2)
#: Windows (in days) of the rolling level / volatility / staleness features.
WINDOW_DAYS: tuple[int, ...] = (28, 91)
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
    "rel_set_ret_28d",
)
FEATURE_COLUMNS: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

#: Columns of `build_features` besides the features (the rule's fair value, the target).
ID_COLUMNS: tuple[str, ...] = ("card_id", "set_id", "date", "market_price")
TARGET_COLUMNS: tuple[str, ...] = ("rolling_mean_3", "target", "target_date")


def clean_history(history: pd.DataFrame) -> pd.DataFrame:
    """Priced rows only (market_price > 0), one per (card_id, date), sorted by card then date.

    A source may repeat a day (re-collected snapshot): the last row wins, as in the store.
    """
    needed = [*ID_COLUMNS, *CATEGORICAL_FEATURES, "release_date", "volume"]
    priced = history.loc[
        history["market_price"].gt(0) & np.isfinite(history["market_price"]), needed
    ]
    priced = priced.drop_duplicates(["card_id", "date"], keep="last")
    return priced.sort_values(["card_id", "date"], kind="stable").reset_index(drop=True)


def median_step_days(history: pd.DataFrame) -> float:
    """The typical spacing of a card's observations in days (1 on daily data, 7 on weekly)."""
    gaps = history.groupby("card_id", sort=False)["date"].diff().dropna().dt.days
    return float(gaps.median()) if len(gaps) else 1.0


class _Positions:
    """Binary searches on the sorted (card, day) key of a cleaned history."""

    def __init__(self, card_codes: np.ndarray, days: np.ndarray) -> None:
        self.codes = card_codes
        self.days = days
        # Cards never overlap on the key: the span exceeds any day offset we search with.
        self.span = int(days.max() - days.min()) + 10_000 if len(days) else 1
        self.key = card_codes.astype(np.int64) * self.span + (days - days.min())

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


def _grouped_rolling(values: pd.Series, groups: np.ndarray, window: int, how: str) -> np.ndarray:
    """A rolling statistic over each card's last `window` observations (itself included)."""
    rolled = values.groupby(groups, sort=False).rolling(window, min_periods=1)
    return getattr(rolled, how)().reset_index(level=0, drop=True).sort_index().to_numpy()


def build_features(history: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """One row per priced (card_id, date) of `history`: ids, the price, `FEATURE_COLUMNS`,
    `target` = log(actual / market_price) and `target_date` (the actual's date).

    The actual is the card's first observed price on or after date + `horizon_days`, at most
    `TARGET_WINDOW_DAYS` later; target and target_date are NaN / NaT when there is none yet.
    """
    h = clean_history(history)
    n = len(h)
    codes = pd.factorize(h["card_id"], sort=False)[0]
    days = (h["date"].to_numpy().astype("datetime64[D]").astype(np.int64)).astype(np.int64)
    pos = _Positions(codes, days)
    log_price = np.log(h["market_price"].to_numpy(dtype=np.float64))
    obs_index = h.groupby(codes, sort=False).cumcount().to_numpy()
    step = max(median_step_days(h), 1.0)

    out: dict[str, np.ndarray] = {"log_price": log_price}
    for d in RETURN_DAYS:
        lag, valid = pos.last_on_or_before(d)
        out[f"ret_{d}d"] = np.where(valid, log_price - log_price[lag], np.nan)
    rows = np.arange(n)
    for k in RETURN_OBS:
        valid = obs_index >= k
        out[f"ret_{k}obs"] = np.where(
            valid, log_price - log_price[np.clip(rows - k, 0, None)], np.nan
        )

    price = pd.Series(h["market_price"].to_numpy(dtype=np.float64))
    # The original rule's fair value: the mean of the last 3 observations.
    mean3 = _grouped_rolling(price, codes, 3, "mean")
    out["dev_mean3"] = log_price - np.log(mean3)

    log_series = pd.Series(log_price)
    step_return = pd.Series(out["ret_1obs"])
    volume = h["volume"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    zero_volume = pd.Series(np.where(np.isnan(volume), np.nan, (volume == 0).astype(float)))
    for w in WINDOW_DAYS:
        n_obs = max(2, round(w / step))
        # Volatility per observation, rescaled to per-sqrt-day so it means the same on any spacing.
        out[f"vol_{w}d"] = _grouped_rolling(step_return, codes, n_obs, "std") / np.sqrt(step)
        out[f"dist_max_{w}d"] = log_price - _grouped_rolling(log_series, codes, n_obs, "max")
        out[f"dist_min_{w}d"] = log_price - _grouped_rolling(log_series, codes, n_obs, "min")
        out[f"dist_mean_{w}d"] = log_price - _grouped_rolling(log_series, codes, n_obs, "mean")
    out["zero_volume_share_91d"] = _grouped_rolling(
        zero_volume, codes, max(2, round(91 / step)), "mean"
    )
    out["log_volume"] = np.log1p(volume)

    # Days since the price last moved: carry the day of the last change forward within the card.
    changed = ~(np.abs(np.nan_to_num(out["ret_1obs"], nan=np.inf)) <= STALE_TOLERANCE)
    last_change = pd.Series(np.where(changed, days, np.nan)).groupby(codes, sort=False).ffill()
    out["stale_days"] = days - last_change.to_numpy()
    out["age_days"] = (h["date"] - h["release_date"]).dt.days.to_numpy(
        dtype=np.float64, na_value=np.nan
    )

    # A card's move relative to its set's mean move on the same date (known at t). Market- and
    # set-wide levels themselves are left out: with a year of history they take few distinct
    # values, and the trees used them to memorise dates (worse than naive on validation).
    ret_28d = pd.Series(out["ret_28d"])
    set_ret = ret_28d.groupby([h["set_id"].to_numpy(), days], sort=False).transform("mean")
    out["rel_set_ret_28d"] = (ret_28d - set_ret).to_numpy()

    target_row, known = pos.first_in(horizon_days, horizon_days + TARGET_WINDOW_DAYS)
    columns: dict[str, object] = {c: h[c].to_numpy() for c in ID_COLUMNS}
    # float32 halves the table of a large daily history; trees bin features anyway.
    columns.update({c: out[c].astype(np.float32) for c in NUMERIC_FEATURES})
    columns.update({c: h[c].fillna("").astype(str).to_numpy() for c in CATEGORICAL_FEATURES})
    # The original rule's fair value, exact (float64) so the rule's signals are too.
    columns["rolling_mean_3"] = mean3
    columns["target"] = np.where(known, log_price[target_row] - log_price, np.nan)
    columns["target_date"] = pd.Series(h["date"].to_numpy()[target_row]).where(known).to_numpy()
    return pd.DataFrame(columns, copy=False)
