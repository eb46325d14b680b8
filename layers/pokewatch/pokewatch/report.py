"""`models/<version>/report.html`: what a collector needs to judge a model, on one page —
backtest error next to the baselines, interval calibration, what the signals earned, and the
biggest BUY and SELL opportunities now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

import pandas as pd

from pokewatch.backtest import BacktestMetrics
from pokewatch.charts import bar_chart, line_chart
from pokewatch.settings import Settings
from pokewatch.signals import Signal

TOP_OPPORTUNITIES = 15
_STYLE = " ".join(
    (
        "body{font-family:system-ui,sans-serif;max-width:1180px;margin:2rem auto;padding:0 1rem}",
        "h1{margin-bottom:.2rem} .sub{color:#6b7280;margin-top:0}",
        ".grid{display:grid;gap:1.5rem;grid-template-columns:repeat(auto-fit,minmax(560px,1fr))}",
        "table{border-collapse:collapse;width:100%;font-size:.9rem}",
        "td,th{padding:.3rem .5rem;text-align:right} th{background:#f3f4f6}",
        "td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}",
        "tr:nth-child(even){background:#fafafa} .note{color:#4b5563;font-size:.9rem}",
        ".BUY{color:#16a34a;font-weight:600} .SELL{color:#dc2626;font-weight:600}",
        ".kpi{display:flex;gap:1rem;flex-wrap:wrap} .kpi b{display:block;font-size:1.3rem}",
        ".kpi div{background:#f3f4f6;padding:.6rem 1rem;border-radius:.5rem}",
    )
)


def render_report(
    version: str,
    data_as_of: dt.date,
    metrics: BacktestMetrics,
    pairs: pd.DataFrame,
    opportunities: pd.DataFrame,
    settings: Settings,
    notes: Sequence[str] = (),
) -> str:
    """The report page. `pairs` is the backtest's per-pair frame (`walk_forward_pairs`);
    `opportunities` has one row per card at its latest date with card_id, name, set_name,
    market_price, fair_price, fair_price_low, fair_price_high, expected_price, deviation_pct and
    signal; `notes` say what a reader of the numbers should know (`backtest_notes`, the price
    spikes left out)."""
    sections = [
        _summary(version, data_as_of, metrics),
        _notes(notes),
        '<div class="grid">',
        _error_chart(metrics),
        _calibration_chart(pairs, settings.interval_level),
        _coverage_by_width_chart(metrics, settings.interval_level),
        _signal_returns_chart(pairs, metrics.horizon_days),
        _pair_counts(metrics),
        "</div>",
        _opportunities(opportunities, Signal.BUY),
        _opportunities(opportunities, Signal.SELL),
        _method(metrics, settings),
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>PokeWatch model {escape(version)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )


def _summary(version: str, data_as_of: dt.date, m: BacktestMetrics) -> str:
    gain = 1 - m.mape_model / m.mape_naive if m.mape_naive else 0.0
    # How much of that improvement is measurement noise, in the same units (when measured).
    noise = (
        f"<small> ± {m.mape_difference_se / m.mape_naive:.1%} s.e.</small>"
        if m.mape_difference_se is not None and m.mape_naive
        else ""
    )
    return (
        f"<h1>PokeWatch fair-price model</h1><p class='sub'>version {escape(version)} · "
        f"data as of {data_as_of} · fair price = median forecast of the market price "
        f"{m.horizon_days} days ahead</p><div class='kpi'>"
        f"<div>model error<b>{m.mape_model:.2%}</b></div>"
        f"<div>repeat-last-price error<b>{m.mape_naive:.2%}</b></div>"
        f"<div>improvement over it<b>{gain:+.1%}{noise}</b></div>"
        f"<div>interval coverage<b>{m.interval_coverage:.1%}</b></div>"
        f"<div>backtest pairs<b>{m.n_pairs:,}</b></div></div>"
    )


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f"<section><h3>Read these numbers with this in mind</h3><ul>{items}</ul></section>"


def _error_chart(m: BacktestMetrics) -> str:
    chart = bar_chart(
        "Backtest error (mean absolute % error, lower is better)",
        ["PokeWatch model", "last price (naive)", "rolling mean of 3"],
        [m.mape_model, m.mape_naive, m.mape_rolling_mean_3],
        fmt=".2%",
    )
    return (
        f"<section>{chart}<p class='note'>Walk-forward: each origin is predicted by a model "
        "fitted only on what was known then.</p></section>"
    )


def _calibration_chart(pairs: pd.DataFrame, interval_level: float) -> str:
    inside = (pairs["fair_price_low"] <= pairs["actual_price"]) & (
        pairs["actual_price"] <= pairs["fair_price_high"]
    )
    by_origin = inside.groupby(pairs["origin"]).mean().sort_index()
    chart = line_chart(
        f"Interval calibration: share of actual prices inside the {interval_level:.0%} interval",
        [pd.Timestamp(d).strftime("%Y-%m-%d") for d in by_origin.index],
        {"observed coverage": by_origin.tolist()},
        reference=interval_level,
    )
    return (
        f"<section>{chart}<p class='note'>Dashed: the promised {interval_level:.0%}.</p></section>"
    )


def _coverage_by_width_chart(m: BacktestMetrics, interval_level: float) -> str:
    if not m.interval_coverage_by_width:
        return ""
    parts = len(m.interval_coverage_by_width)
    labels = [
        "narrowest" if i == 0 else "widest" if i == parts - 1 else f"fifth {i + 1}"
        for i in range(parts)
    ]
    chart = bar_chart(
        "Coverage for quiet and volatile cards: pairs in fifths by interval width",
        labels,
        m.interval_coverage_by_width,
        colors=["#2563eb"],
        reference=interval_level,
    )
    return (
        f"<section>{chart}<p class='note'>A narrow interval (a quiet card) must hold as often as "
        f"a wide one; dashed: the promised {interval_level:.0%}.</p></section>"
    )


def _signal_returns_chart(pairs: pd.DataFrame, horizon_days: int) -> str:
    labels, values, colors = [], [], []
    for prefix, who in (("", "model"), ("rule_", "old rule")):
        returns = pairs.groupby(f"{prefix}signal")["forward_return"].mean()
        for signal, color in (
            (Signal.BUY, "#16a34a"),
            (Signal.HOLD, "#9ca3af"),
            (Signal.SELL, "#dc2626"),
        ):
            labels.append(f"{signal.value}\n{who}")
            values.append(float(returns.get(signal.value, 0.0)))
            colors.append(color)
    chart = bar_chart(
        "Mean forward return after each signal (BUY should be high, SELL low)",
        labels,
        values,
        colors=colors,
    )
    return (
        f"<section>{chart}<p class='note'>Forward return: the actual price {horizon_days} days "
        "later ÷ the price at the signal − 1. The old rule compares the price with the mean of "
        "its last 3 observations.</p></section>"
    )


def _pair_counts(m: BacktestMetrics) -> str:
    rows = [
        ("BUY signals", m.buy_count, m.rule_buy_count),
        ("SELL signals", m.sell_count, m.rule_sell_count),
        ("BUY − SELL forward return", _pct(m.signal_spread_model), _pct(m.signal_spread_rule)),
    ]
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return (
        "<section><h3>Signals in the backtest</h3><table><tr><th></th><th>model</th>"
        f"<th>old rule</th></tr>{body}</table><p class='note'>{m.n_pairs:,} pairs of "
        f"{m.n_cards:,} cards over {m.n_origins} origins ({m.first_origin} to {m.last_origin}), "
        f"{m.n_refits} refits.</p></section>"
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2%}"


def _opportunities(frame: pd.DataFrame, signal: Signal) -> str:
    every = frame[frame["signal"] == signal.value]
    chosen = every.sort_values("deviation_pct", ascending=signal is Signal.BUY)
    chosen = chosen.head(TOP_OPPORTUNITIES)
    title = (
        "Biggest BUY opportunities (price below expected)"
        if signal is Signal.BUY
        else "Biggest SELL opportunities (price above expected)"
    )
    if chosen.empty:
        return f"<h2>{title}</h2><p class='note'>None today.</p>"
    rows = "".join(
        # The card id too: a set has several cards of one name, each in several prints.
        f"<tr><td>{escape(str(r.name))}<br><small>{escape(str(r.card_id))}</small></td>"
        f"<td>{escape(str(r.set_name))}</td>"
        f"<td>${r.market_price:,.2f}</td><td>${r.fair_price:,.2f}</td>"
        f"<td>${r.fair_price_low:,.2f} – ${r.fair_price_high:,.2f}</td>"
        f"<td>${r.expected_price:,.2f}</td>"
        f"<td class='{signal.value}'>{r.deviation_pct:+.1%}</td></tr>"
        for r in chosen.itertuples()
    )
    return (
        f"<h2>{title}</h2><table><tr><th>card</th><th>set</th><th>price</th><th>fair</th>"
        f"<th>interval</th><th>expected</th><th>deviation</th></tr>{rows}</table>"
        f"{_concentration(every, signal)}"
    )


def _concentration(signalled: pd.DataFrame, signal: Signal) -> str:
    """Which sets today's signals of one kind come from. The expected price carries set-wide
    moves, so signals cluster by set; cards of a set rise and fall together, and a collector
    should know that ten BUYs in one set are closer to one bet than to ten."""
    by_set = signalled["set_name"].astype("string").fillna("unknown set").value_counts()
    top = by_set.head(3)
    names = ", ".join(f"{escape(name)} ({count:,})" for name, count in top.items())
    n = len(signalled)
    where = (
        f"from {names}"
        if len(by_set) == len(top)
        else f"from {len(by_set):,} sets, {top.sum() / n:.0%} of the signals from {names}"
    )
    caution = (
        " Cards of one set tend to move together: several signals in one set are closer to one "
        "bet than to several."
        if top.iloc[0] > 1
        else ""
    )
    return (
        f"<p class='note'>{n:,} {signal.value} signal{'' if n == 1 else 's'} today, "
        f"{where}.{caution}</p>"
    )


def _method(m: BacktestMetrics, settings: Settings) -> str:
    return (
        "<h2>How to read this</h2><p class='note'>The fair price is the model's median "
        f"forecast of the market price {m.horizon_days} days later (as likely above as below), "
        "with its interval; the expected price is its mean, which counts the card's chances of a "
        "large move up or down. BUY when the price is at "
        f"least {-settings.buy_threshold:.0%} below the expected price, SELL when "
        f"{settings.sell_threshold:.0%} above. Errors are measured "
        "walk-forward on the card's real later price, against two simple alternatives: "
        "repeating the last price, and the original system's mean of the last three prices.</p>"
    )
