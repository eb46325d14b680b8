"""Small self-contained SVG charts for the model report (no plotting library in the Lambda layer,
and the page must render offline)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 560, 260
MARGIN = {"left": 60, "right": 20, "top": 30, "bottom": 50}
PALETTE = ("#2563eb", "#9ca3af", "#f59e0b", "#16a34a", "#dc2626")


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def _frame(title: str, body: str, y_ticks: str) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="system-ui, sans-serif" font-size="12">'
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-weight="600">'
        f"{escape(title)}</text>"
        f"{y_ticks}{body}</svg>"
    )


def _y_axis(low: float, high: float, fmt: str) -> tuple[str, float, float]:
    top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"]
    ticks = []
    for i in range(5):
        value = low + (high - low) * i / 4
        y = _scale(value, low, high, bottom, top)
        ticks.append(
            f'<line x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{MARGIN["left"] - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{format(value, fmt)}</text>"
        )
    return "".join(ticks), bottom, top


def _reference_line(y: float) -> str:
    """A dashed horizontal line across the plot: the target a chart is read against."""
    return (
        f'<line x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{y:.1f}" y2="{y:.1f}" '
        'stroke="#111827" stroke-dasharray="5,4"/>'
    )


def _lines(label: str, x: float) -> str:
    """A label on several lines (split at newlines), as SVG tspans."""
    first, *rest = label.split("\n")
    return escape(first) + "".join(
        f'<tspan x="{x:.1f}" dy="14">{escape(line)}</tspan>' for line in rest
    )


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: str = ".1%",
    colors: Sequence[str] = PALETTE,
    reference: float | None = None,
) -> str:
    """Vertical bars with value labels (a label may hold a newline); `reference` draws a
    dashed target line."""
    low = min(0.0, *values, *([reference] if reference is not None else []))
    high = max(0.0, *values, *([reference] if reference is not None else [])) or 1.0
    high += (high - low) * 0.1
    ticks, bottom, top = _y_axis(low, high, fmt)
    plot_width = WIDTH - MARGIN["left"] - MARGIN["right"]
    slot = plot_width / max(len(values), 1)
    zero = _scale(0.0, low, high, bottom, top)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = MARGIN["left"] + i * slot + slot * 0.2
        y = _scale(value, low, high, bottom, top)
        color = colors[i % len(colors)]
        bars.append(
            f'<rect x="{x:.1f}" y="{min(y, zero):.1f}" width="{slot * 0.6:.1f}" '
            f'height="{abs(zero - y):.1f}" fill="{color}"><title>{escape(label)}: '
            f"{format(value, fmt)}</title></rect>"
            f'<text x="{x + slot * 0.3:.1f}" y="{min(y, zero) - 4:.1f}" text-anchor="middle">'
            f"{format(value, fmt)}</text>"
            f'<text x="{x + slot * 0.3:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{_lines(label, x + slot * 0.3)}</text>"
        )
    if reference is not None:
        bars.append(_reference_line(_scale(reference, low, high, bottom, top)))
    return _frame(title, "".join(bars), ticks)


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    fmt: str = ".0%",
    reference: float | None = None,
) -> str:
    """Lines over a shared categorical x axis, with a legend; `reference` as a dashed line."""
    values = [v for line in series.values() for v in line]
    extra = [reference] if reference is not None else []
    low, high = min([*values, *extra]), max([*values, *extra])
    pad = (high - low) * 0.1 or 0.05
    low, high = low - pad, high + pad
    ticks, bottom, top = _y_axis(low, high, fmt)
    n = max(len(x_labels), 2)
    left, right = MARGIN["left"] + 10, WIDTH - MARGIN["right"] - 10

    def x_of(i: int) -> float:
        return _scale(i, 0, n - 1, left, right)

    parts = []
    step = max(1, len(x_labels) // 6)
    for i in range(0, len(x_labels), step):
        parts.append(
            f'<text x="{x_of(i):.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{escape(x_labels[i])}</text>"
        )
    for k, (name, line) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(
            f"{x_of(i):.1f},{_scale(v, low, high, bottom, top):.1f}" for i, v in enumerate(line)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(
            f'<rect x="{left + k * 150}" y="{HEIGHT - 18}" width="12" height="12" fill="{color}"/>'
            f'<text x="{left + k * 150 + 16}" y="{HEIGHT - 8}">{escape(name)}</text>'
        )
    if reference is not None:
        parts.append(_reference_line(_scale(reference, low, high, bottom, top)))
    return _frame(title, "".join(parts), ticks)
