"""The train step's own measures, besides the model and its backtest."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pokewatch.pipeline.train import card_coverage
from pokewatch.settings import Settings

AS_OF = dt.date(2025, 6, 30)


def test_card_coverage_counts_the_cards_predicted_from_a_current_price() -> None:
    days_ago = {"fresh": 0, "last_week": 6, "stale": 7, "gone": 60}
    predicted = pd.DataFrame(
        {
            "card_id": list(days_ago),
            "date": [pd.Timestamp(AS_OF) - pd.Timedelta(days=d) for d in days_ago.values()],
        }
    )
    # The catalogue: every card of the serving window, also one with no price to predict from.
    history = pd.DataFrame({"card_id": [*days_ago, "unpriced"]})
    assert card_coverage(history, predicted, AS_OF, Settings()) == pytest.approx(2 / 5)
    # The price at a date is never older than the horizon.
    short = Settings(horizon_days=3)
    assert card_coverage(history, predicted, AS_OF, short) == pytest.approx(1 / 5)


def test_card_coverage_of_an_empty_catalogue_is_zero() -> None:
    empty = pd.DataFrame({"card_id": [], "date": pd.to_datetime([])})
    assert card_coverage(empty, empty, AS_OF, Settings()) == 0.0
