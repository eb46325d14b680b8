"""The fair-price model: a card's market price `horizon_days` ahead, with a conformal interval.

The model predicts the log change y = log(actual / price) with gradient-boosted trees under an
absolute (median) loss: the median of the future price minimises absolute percentage error far
better than the mean on fat-tailed card prices. (The exact minimiser of |fair − actual| /
actual is the median of y weighted by e^{−y}; fitting with those weights was measured on the
real data's validation window before its first backtest origin: 0.15% better than the plain
median, at up to three times the fit time, so it is not a candidate.) Every `fit` chooses its
own configuration on a validation window that ends before the training rows end (an inner
walk-forward), so nothing is tuned to the data it is later judged on:

1. rows are split in time: the *calibration* rows are the last `validation_days` of origins,
   the *inner* rows are those whose target was known before the first calibration origin;
2. each candidate configuration is fitted on the inner rows and scored by MAPE on the
   calibration rows, together with a shrink factor toward "no change" (0 = the naive forecast)
   that guards against a model that does not beat repeating the last price;
3. the interval is split-conformal: calibration residuals of the chosen configuration, divided
   by a per-card volatility scale so quiet cards get tight intervals and volatile cards wide
   ones, give the lower and upper quantiles of the `interval_level` band, separately for each
   of `INTERVAL_BUCKETS` bands of that scale (group-conditional, "Mondrian" conformal): one
   quantile for all would make the band hold on average only, too narrow for the quiet cards
   that do move and too wide for the volatile ones;
4. the chosen configuration is refitted on all rows for prediction.

Next to that median the model fits the *expected* price: the mean forward return, under a
squared loss (returns above `EXPECTED_RETURN_CAP` count as the cap). The median answers "what
will it cost, as likely more as less", and is what MAPE and the interval judge; it is today's
price for nearly every card, because most cards do not move in four weeks. The mean also weighs
the minority that move a lot (a crashed card that recovers, a spike that fades, a new set that
sags), which is what a BUY or SELL is about, so the signal is computed on it
(`pokewatch.signals`). Its trees are the "medium" candidate, fixed in code (docs/model.md says
how it and the cap were chosen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from pokewatch.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES

#: The only types `from_bytes` lets skops rebuild (beyond skops' own safe defaults).
TRUSTED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    # The trees keep `partial(check_array, ...)`; skops audits the wrapped function as well.
    "functools.partial",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.loss.AbsoluteError",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)

#: Days of the most recent origins each fit holds out to choose its configuration and calibrate.
VALIDATION_DAYS = 56

#: Format version of the serialised state; bumped when its layout or meaning changes (4: the
#: interval's quantiles are per band of the `INTERVAL_SCALE_FEATURE` scale).
FORMAT_VERSION = 4

#: The per-card volatility that scales the interval. Four weeks, not thirteen: the conformal
#: quantiles are calibrated on the weeks before a fit and applied to the weeks after it, so the
#: scale must follow the market's current volatility. On the first six months of the real
#: history (origins before the backtest's), a 91-day scale still carried the jumpy first weeks
#: of the series into the calibration window, twice the volatility of the weeks it was then
#: applied to, and covered 60% instead of 80%; the 28-day scale covered 76%.
INTERVAL_SCALE_FEATURE = "vol_28d"
#: Bands of the interval scale (equal shares of the calibration rows; tied scales such as the
#: floor of every card that did not move share one band), each calibrated on its own rows.
INTERVAL_BUCKETS = 5

#: Forward returns above this are counted as this when fitting the expected price: the mean of a
#: leaf should describe its cards, not the one card in it that tripled.
EXPECTED_RETURN_CAP = 1.0


class NotEnoughHistory(ValueError):
    """The history is too short, or has too few priced cards, to fit or backtest the model."""


@dataclass(frozen=True)
class Candidate:
    """One configuration the fit chooses among: tree hyperparameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


#: Small, deliberately different capacities; the inner validation picks one per fit.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("shallow", {"max_leaf_nodes": 7, "max_iter": 100, "min_samples_leaf": 200}),
    Candidate("medium", {"max_leaf_nodes": 15, "max_iter": 150, "min_samples_leaf": 100}),
)
#: The trees of the expected price (a mean, so a squared loss; see the module docstring).
EXPECTED_CANDIDATE = next(c for c in CANDIDATES if c.name == "medium")
#: Multipliers of the predicted log change tried on the validation window (0 = naive; above 1
#: undoes the trees' own shrinkage toward the median of no change).
SHRINKS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def mape_of_log_change(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean |fair − actual| / actual, fair = price·exp(predicted), actual = price·exp(target)."""
    return float(np.mean(np.abs(np.expm1(predicted - target))))


class FairPriceModel:
    """Fair price `horizon_days` ahead and its `interval_level` interval, from `build_features`."""

    #: Floor of the interval scale (log units over the horizon), so stale cards keep some width.
    SCALE_FLOOR: ClassVar[float] = 0.01
    #: Fewest rows on each side of the validation split.
    MIN_ROWS: ClassVar[int] = 50
    #: Rows predicted per call of the trees: the estimator copies its input a few times while
    #: encoding the categories, which on a large serving window is gigabytes at once.
    PREDICT_BLOCK_ROWS: ClassVar[int] = 100_000

    def __init__(
        self,
        horizon_days: int = 28,
        interval_level: float = 0.8,
        random_state: int = 0,
        *,
        validation_days: int = VALIDATION_DAYS,
        max_train_rows: int = 100_000,
    ) -> None:
        self.horizon_days = horizon_days
        self.interval_level = interval_level
        self.random_state = random_state
        self.validation_days = validation_days
        self.max_train_rows = max_train_rows
        self.estimator_: HistGradientBoostingRegressor | None = None
        self.expected_estimator_: HistGradientBoostingRegressor | None = None
        self.categories_: dict[str, list[str]] = {}
        self.candidate_: str = ""
        self.shrink_: float = 1.0
        #: Interior edges of the bands of the interval scale, and each band's lower and upper
        #: quantile of the scaled residuals (shape: bands × 2).
        self.interval_edges_: np.ndarray = np.empty(0)
        self.interval_quantiles_: np.ndarray = np.zeros((1, 2))
        self.validation_: dict[str, float] = {}

    # --- fitting ------------------------------------------------------------------------------

    def fit(self, features: pd.DataFrame, known_by: pd.Timestamp | None = None) -> FairPriceModel:
        """Fit on the rows of `features` with a known target (choosing the configuration and
        calibrating the interval on the most recent of them, see the module docstring); with
        `known_by`, only on rows whose target was observed by then (a walk-forward refit)."""
        # One OpenMP thread: the trees synchronise threads at every split, and on a shared or
        # busy machine a descheduled thread turns each barrier into milliseconds (a backtest
        # measured 10x slower with 2 threads under load); one thread is steady everywhere.
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._fit(self._training_rows(features, known_by))

    def _fit(self, rows: pd.DataFrame) -> FairPriceModel:
        self.categories_ = {
            c: sorted(rows[c].astype(str).unique().tolist()) for c in CATEGORICAL_FEATURES
        }
        inner, calibration = self._split(rows)
        x_inner, x_cal = self._matrix(inner), self._matrix(calibration)
        y_cal = calibration["target"].to_numpy()

        best: tuple[float, Candidate, float, np.ndarray] | None = None
        for candidate in CANDIDATES:
            estimator = self._fitted(candidate, x_inner, inner["target"].to_numpy())
            raw = estimator.predict(x_cal)
            for shrink in SHRINKS:
                score = mape_of_log_change(shrink * raw, y_cal)
                if best is None or score < best[0]:
                    best = (score, candidate, shrink, raw)
        assert best is not None  # CANDIDATES and SHRINKS are non-empty
        score, candidate, shrink, raw = best

        self._calibrate_interval(y_cal - shrink * raw, self._scale(calibration))
        self.candidate_, self.shrink_ = candidate.name, shrink
        self.validation_ = {
            "mape_model": score,
            "mape_naive": mape_of_log_change(np.zeros_like(y_cal), y_cal),
            "n_inner": float(len(inner)),
            "n_calibration": float(len(calibration)),
        }
        x, y = self._matrix(rows), rows["target"].to_numpy()
        self.estimator_ = self._fitted(candidate, x, y)
        forward_return = np.clip(np.expm1(y), -1.0, EXPECTED_RETURN_CAP)
        self.expected_estimator_ = self._fitted(
            EXPECTED_CANDIDATE, x, forward_return, loss="squared_error"
        )
        return self

    def _training_rows(self, features: pd.DataFrame, known_by: pd.Timestamp | None) -> pd.DataFrame:
        """Rows with a known target (by `known_by`), subsampled to `max_train_rows` (daily
        histories of many cards carry far more rows than the trees need; neighbouring days are
        near duplicates). Positions are chosen first and only the kept rows are copied: a
        boolean filter of a large feature table would copy nearly all of it."""
        known = features["target"].notna().to_numpy()
        if known_by is not None:
            known = known & (features["target_date"] <= known_by).to_numpy()
        positions = np.flatnonzero(known)
        if len(positions) > self.max_train_rows:
            rng = np.random.default_rng(self.random_state)
            positions = np.sort(rng.choice(positions, size=self.max_train_rows, replace=False))
        return features.take(positions)

    def _split(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Inner rows (target known by the cutoff) and calibration rows (origin after it)."""
        if rows.empty:
            raise NotEnoughHistory("no priced rows with a known target to fit on")
        dates = rows["date"]
        cutoff = min(
            dates.max() - pd.Timedelta(days=self.validation_days),
            dates.quantile(0.75),
        )
        inner = rows[rows["target_date"] <= cutoff]
        calibration = rows[dates > cutoff]
        if len(inner) < self.MIN_ROWS or len(calibration) < self.MIN_ROWS:
            raise NotEnoughHistory(
                f"not enough rows with a known target to fit and validate: {len(inner)} before "
                f"and {len(calibration)} after {cutoff.date()} (need {self.MIN_ROWS} each: more "
                "cards or a longer history)"
            )
        return inner, calibration

    def _fitted(
        self, candidate: Candidate, x: np.ndarray, y: np.ndarray, loss: str = "absolute_error"
    ) -> HistGradientBoostingRegressor:
        """A candidate's trees fitted on (x, y) under `loss`."""
        # A feature never observed in a short history (a 91-day return in the first weeks) is
        # all NaN, which the binner rejects; as a constant it is simply never split on.
        x = np.where(np.isnan(x).all(axis=0), 0.0, x)
        categorical = [c in CATEGORICAL_FEATURES for c in FEATURE_COLUMNS]
        return HistGradientBoostingRegressor(
            loss=loss,
            learning_rate=0.1,
            l2_regularization=1.0,
            categorical_features=categorical,
            early_stopping=False,
            random_state=self.random_state,
            **candidate.params,
        ).fit(x, y)

    def _calibrate_interval(self, residuals: np.ndarray, scale: np.ndarray) -> None:
        """Band edges of the calibration rows' `scale`, and per band the conformal quantiles of
        `residuals / scale`. Bands are closed on the right, so the many rows tied at the scale's
        floor (cards that did not move) make a band of their own instead of joining the next
        quietest. A band too small for `MIN_ROWS` or for the level takes the quantiles of all."""
        edges = np.unique(np.quantile(scale, np.linspace(0, 1, INTERVAL_BUCKETS + 1)[1:-1]))
        band = np.searchsorted(edges, scale, side="left")
        scores = residuals / scale
        overall = self._conformal_quantiles(scores) or (float(scores.min()), float(scores.max()))
        self.interval_edges_ = edges
        in_band = [scores[band == b] for b in range(len(edges) + 1)]
        self.interval_quantiles_ = np.array(
            [
                (len(members) >= self.MIN_ROWS and self._conformal_quantiles(members)) or overall
                for members in in_band
            ]
        )

    def _interval_offsets(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The interval's lower and upper log offsets from the fair price, row by row."""
        scale = self._scale(features)
        quantiles = self.interval_quantiles_[
            np.searchsorted(self.interval_edges_, scale, side="left")
        ]
        return quantiles[:, 0] * scale, quantiles[:, 1] * scale

    def _conformal_quantiles(self, scores: np.ndarray) -> tuple[float, float] | None:
        """Lower / upper split-conformal limits of the scaled residuals: the j-th and k-th
        smallest, j = ⌊(n + 1)·tail⌋ and k = ⌈(n + 1)·(1 − tail)⌉, so that each side misses at
        most `tail` of exchangeable new rows. None when n is too small for the level (a limit
        would be unbounded)."""
        n = len(scores)
        tail = (1 - self.interval_level) / 2
        # The nudges keep a product such as 11 × 0.1 = 1.0999999999999999 on the right integer.
        lower = math.floor((n + 1) * tail + 1e-9)
        upper = math.ceil((n + 1) * (1 - tail) - 1e-9)
        if lower < 1 or upper > n:
            return None
        ordered = np.sort(scores)
        return float(ordered[lower - 1]), float(ordered[upper - 1])

    # --- prediction ---------------------------------------------------------------------------

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        """Feature matrix; categories become their index in the fitted list (unknown: NaN)."""
        columns = [features[c].to_numpy(dtype=np.float64) for c in NUMERIC_FEATURES]
        for c in CATEGORICAL_FEATURES:
            codes = pd.Index(self.categories_[c]).get_indexer(features[c].astype(str))
            columns.append(np.where(codes >= 0, codes, np.nan).astype(np.float64))
        return np.column_stack(columns)

    def _scale(self, features: pd.DataFrame) -> np.ndarray:
        """Expected size of a move over the horizon: recent volatility × √horizon, floored."""
        vol = features[INTERVAL_SCALE_FEATURE].to_numpy(dtype=np.float64)
        vol = np.where(np.isfinite(vol), vol, np.nanmedian(vol) if np.isfinite(vol).any() else 0)
        return np.sqrt(vol**2 * self.horizon_days + self.SCALE_FLOOR**2)

    def _predicted(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The (shrunk) predicted log change and the expected forward return of every row, in
        blocks of `PREDICT_BLOCK_ROWS` (encoding the categories copies the rows it encodes)."""
        if self.estimator_ is None or self.expected_estimator_ is None:
            raise RuntimeError("FairPriceModel is not fitted")
        changes, returns = [], []
        # One block at least, so that an empty table fails as the estimator says it does.
        starts = range(0, max(len(features), 1), self.PREDICT_BLOCK_ROWS)
        with threadpool_limits(limits=1, user_api="openmp"):
            for i in starts:
                x = self._matrix(features.iloc[i : i + self.PREDICT_BLOCK_ROWS])
                changes.append(self.estimator_.predict(x))
                returns.append(self.expected_estimator_.predict(x))
        return self.shrink_ * np.concatenate(changes), np.concatenate(returns)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """`fair_price`, `fair_price_low`, `fair_price_high` and `expected_price` of every row
        (index aligned)."""
        change, expected_return = self._predicted(features)
        low, high = self._interval_offsets(features)
        price = features["market_price"].to_numpy(dtype=np.float64)
        return pd.DataFrame(
            {
                "fair_price": price * np.exp(change),
                "fair_price_low": price * np.exp(change + low),
                "fair_price_high": price * np.exp(change + high),
                # A mean of returns >= −1 is >= −1; the floor keeps the price positive anyway.
                "expected_price": price * (1 + np.maximum(expected_return, -0.9)),
            },
            index=features.index,
        )

    # --- persistence --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The fitted model as skops bytes (no pickle: loading rebuilds only trusted types)."""
        if self.estimator_ is None:
            raise RuntimeError("FairPriceModel is not fitted")
        state = {
            "format_version": FORMAT_VERSION,
            "horizon_days": self.horizon_days,
            "interval_level": self.interval_level,
            "random_state": self.random_state,
            "validation_days": self.validation_days,
            "max_train_rows": self.max_train_rows,
            "feature_columns": list(FEATURE_COLUMNS),
            "estimator": self.estimator_,
            "expected_estimator": self.expected_estimator_,
            "categories": self.categories_,
            "candidate": self.candidate_,
            "shrink": self.shrink_,
            "interval_edges": self.interval_edges_,
            "interval_quantiles": self.interval_quantiles_,
            "validation": self.validation_,
        }
        return sio.dumps(state, compression=8)

    @classmethod
    def from_bytes(cls, data: bytes) -> FairPriceModel:
        """A model saved by `to_bytes`; refuses any type outside `TRUSTED_TYPES`."""
        state = sio.loads(data, trusted=list(TRUSTED_TYPES))
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {state.get('format_version')!r}")
        if state["feature_columns"] != list(FEATURE_COLUMNS):
            raise ValueError("the model was trained on other feature columns")
        model = cls(
            state["horizon_days"],
            state["interval_level"],
            state["random_state"],
            validation_days=state["validation_days"],
            max_train_rows=state["max_train_rows"],
        )
        model.estimator_ = state["estimator"]
        model.expected_estimator_ = state["expected_estimator"]
        model.categories_ = state["categories"]
        model.candidate_ = state["candidate"]
        model.shrink_ = state["shrink"]
        model.interval_edges_ = state["interval_edges"]
        model.interval_quantiles_ = state["interval_quantiles"]
        model.validation_ = state["validation"]
        return model
