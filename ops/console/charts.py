"""Charts as plain geometry for server-side inline SVG: no JavaScript, no CDN, no floats.

Heights and widths are integer pixels computed with integer arithmetic from integer minor units; every
bar carries its exact amount as text (a tooltip and a table beside the chart say the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger.money import format_money_safe

WIDTH = 300
HEIGHT = 80


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    label: str  # "2026-11-27: $100.00"


@dataclass(frozen=True)
class BarChart:
    title: str
    total: str
    peak: str
    bars: list[Bar]
    rows: list[tuple[str, str]]  # (day, amount) for the table behind the chart
    width: int = WIDTH
    height: int = HEIGHT


def daily_bar_chart(*, title: str, days: list[date], values: list[int], currency: str) -> BarChart:
    """One bar per day, scaled to the largest day; zero days have no bar."""
    peak = max([abs(v) for v in values] + [0])
    step = WIDTH // max(len(values), 1)
    bars, rows = [], []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        amount = format_money_safe(value, currency)
        rows.append((f"{day:%Y-%m-%d}", amount))
        height = abs(value) * (HEIGHT - 2) // peak if peak else 0
        if value and height == 0:
            height = 1  # a small day still shows
        bars.append(
            Bar(
                x=i * step + 1,
                y=HEIGHT - height,
                width=max(step - 2, 1),
                height=height,
                label=f"{day:%Y-%m-%d}: {amount}",
            )
        )
    return BarChart(
        title=title,
        total=format_money_safe(sum(values), currency),
        peak=format_money_safe(peak, currency),
        bars=bars,
        rows=rows,
    )


@dataclass(frozen=True)
class Segment:
    x: int
    width: int
    label: str
    share: str  # "62.5 %"
    css: str


def share_text(part: int, whole: int) -> str:
    """A share in per-mille, written as a percent with one decimal: integers only."""
    if whole <= 0:
        return "—"
    permille = (part * 1000 * 2 + whole) // (whole * 2)  # rounded half up
    return f"{permille // 10}.{permille % 10} %"


def split_bar(parts: list[tuple[str, int, str, str]]) -> list[Segment]:
    """A 100 % stacked bar: [(label, value, value_text, css_class)] -> segments of integer width."""
    whole = sum(value for _, value, _, _ in parts)
    segments, x = [], 0
    for i, (label, value, text, css) in enumerate(parts):
        width = (WIDTH - x) if i == len(parts) - 1 and whole else (value * WIDTH // whole if whole else 0)
        segments.append(Segment(x=x, width=width, label=f"{label}: {text}", share=share_text(value, whole), css=css))
        x += width
    return segments
