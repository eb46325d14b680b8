"""The model report page: charts and tables from the backtest pairs and the latest predictions."""

from __future__ import annotations

import datetime as dt
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from pokewatch.backtest import metrics_of_pairs, with_signals
from pokewatch.report import render_report
from pokewatch.settings import Settings


def _pairs(settings: Settings) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    price = rng.uniform(5, 50, n)
    fair = price * np.exp(rng.normal(0, 0.12, n))
    actual = fair * np.exp(rng.normal(0, 0.05, n))
    origins = pd.to_datetime("2026-01-04") + pd.to_timedelta(rng.integers(0, 8, n) * 7, "D")
    pairs = pd.DataFrame(
        {
            "origin": origins,
            "card_id": [f"sv1-{i % 90}_holofoil" for i in range(n)],
            "market_price": price,
            "actual_price": actual,
            "rolling_mean_3": price * np.exp(rng.normal(0, 0.05, n)),
            "fair_price": fair,
            "fair_price_low": fair * 0.9,
            "fair_price_high": fair * 1.1,
            "expected_price": fair * 1.02,
            "fitted_on": origins.min(),
        }
    )
    return with_signals(pairs, settings)


def test_report_has_charts_tables_and_escaped_names() -> None:
    settings = Settings()
    pairs = _pairs(settings)
    metrics = metrics_of_pairs(pairs, settings)
    opportunities = pd.DataFrame(
        {
            "card_id": ["a-1_holofoil", "b-2_holofoil", "c-3_normal"],
            "name": ["<script>Mew</script>", "Pikachu", "Eevee"],
            "set_name": ["Base", "Jungle", "Fossil"],
            "market_price": [5.0, 30.0, 10.0],
            "fair_price": [10.0, 20.0, 10.0],
            "fair_price_low": [8.0, 18.0, 9.0],
            "fair_price_high": [12.0, 22.0, 11.0],
            "expected_price": [10.5, 19.0, 10.0],
            "deviation_pct": [-0.5, 0.5, 0.0],
            "signal": ["BUY", "SELL", "HOLD"],
        }
    )
    html = render_report("v1", dt.date(2026, 3, 1), metrics, pairs, opportunities, settings)
    assert html.count("<svg") == 4
    assert "Coverage for quiet and volatile cards" in html
    for svg in html.split("<svg")[1:]:
        ElementTree.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # well-formed
    assert "<script>" not in html and "&lt;script&gt;Mew" in html
    assert f"{metrics.mape_model:.2%}" in html and f"{metrics.mape_naive:.2%}" in html
    assert metrics.mape_difference_se is not None
    assert f"± {metrics.mape_difference_se / metrics.mape_naive:.1%} s.e." in html
    buy = html.split("Biggest BUY")[1].split("Biggest SELL")[0]
    sell = html.split("Biggest SELL")[1]
    assert "Mew" in buy and "Pikachu" not in buy and "Eevee" not in buy
    assert "Pikachu" in sell


def test_report_states_the_configured_thresholds() -> None:
    settings = Settings(buy_threshold=-0.2, sell_threshold=0.25)
    pairs = _pairs(settings)
    empty = pd.DataFrame(columns=["signal", "deviation_pct"])
    html = render_report(
        "v1", dt.date(2026, 3, 1), metrics_of_pairs(pairs, settings), pairs, empty, settings
    )
    assert "least 20% below the expected price, SELL when 25% above" in html


def test_report_says_which_sets_the_signals_come_from() -> None:
    settings = Settings()
    pairs = _pairs(settings)
    sets = ["Evolving Skies"] * 5 + ["Crown Zenith", "Fossil", "Base", "Jungle"]
    n = len(sets)
    opportunities = pd.DataFrame(
        {
            "card_id": [f"x-{i}_holofoil" for i in range(n)],
            "name": [f"Card {i}" for i in range(n)],
            "set_name": sets,
            "market_price": [5.0] * (n - 1) + [30.0],
            "fair_price": [10.0] * (n - 1) + [20.0],
            "fair_price_low": [8.0] * (n - 1) + [18.0],
            "fair_price_high": [12.0] * (n - 1) + [22.0],
            "expected_price": [10.0] * (n - 1) + [20.0],
            "deviation_pct": [-0.5] * (n - 1) + [0.5],
            "signal": ["BUY"] * (n - 1) + ["SELL"],
        }
    )
    html = render_report(
        "v1", dt.date(2026, 3, 1), metrics_of_pairs(pairs, settings), pairs, opportunities, settings
    )
    buy = html.split("Biggest BUY")[1].split("Biggest SELL")[0]
    assert "8 BUY signals today, from 4 sets, 88% of the signals from Evolving Skies (5), " in buy
    sell = html.split("Biggest SELL")[1]
    assert "1 SELL signal today, from Jungle (1).</p>" in sell
    assert "move together" in buy and "move together" not in sell


def test_report_opportunities_name_the_print_not_only_the_card_name() -> None:
    # A set holds several cards of one name (Base Set 2 has two Feraligatr, 26 and 44) and each
    # in several prints at very different prices: by name and set alone a collector could not
    # tell which one the row is about.
    settings = Settings()
    pairs = _pairs(settings)
    opportunities = pd.DataFrame(
        {
            "card_id": ["base4-26_holofoil", "base4-44_reverse_holofoil"],
            "name": ["Feraligatr", "Feraligatr"],
            "set_name": ["Base Set 2", "Base Set 2"],
            "market_price": [60.0, 5.0],
            "fair_price": [60.0, 5.0],
            "fair_price_low": [55.0, 4.5],
            "fair_price_high": [65.0, 5.5],
            "expected_price": [75.0, 6.0],
            "deviation_pct": [-0.2, -0.1667],
            "signal": ["BUY", "BUY"],
        }
    )
    html = render_report(
        "v1", dt.date(2026, 3, 1), metrics_of_pairs(pairs, settings), pairs, opportunities, settings
    )
    buy = html.split("Biggest BUY")[1].split("Biggest SELL")[0]
    assert "base4-26_holofoil" in buy and "base4-44_reverse_holofoil" in buy
