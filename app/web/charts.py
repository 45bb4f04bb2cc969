"""Charts as inline SVG, drawn on the server: the console's pages carry no script and load nothing, so
a chart is markup like the rest (its colours come from the console's stylesheet, by class, which keeps
them readable in dark mode and inside the CSP: no ``style`` attributes).

Every chart is a ``<figure>`` whose ``<svg role="img">`` has a ``<title>`` and a ``<desc>`` (the totals
in words, for a screen reader), axis labels, and a legend. Every text is escaped. Values below 0 are
drawn as 0; an empty or all-zero chart says "nothing counted" instead of drawing nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36  # the plot's margins: room for the axes' labels
TONES = 6  # classes t0…t5 in the console stylesheet


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


def nice_max(value: float) -> float:
    """A round top for the y axis at or above ``value``: 1, 2, 4, 6 or 8 times a power of ten, at least 2,
    so the middle grid line of a count is a whole number too."""
    if not math.isfinite(value) or value <= 2:
        return 2.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 6, 8, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power  # unreachable: value <= 10 * power always holds


def number(value: float) -> str:
    """A count as the axes and legends say it: whole numbers plain, others with one decimal."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def _clean(values: Sequence[float]) -> list[float]:
    return [v if math.isfinite(v) and v > 0 else 0.0 for v in values]


def _frame(key: str, title: str, desc: str, top: float, labels: Sequence[str], plot: str) -> str:
    """The svg around a plot: title, desc, y axis (0, middle, top) and x labels (first, middle, last)."""
    ident = escape(_slug(key))
    inner_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + inner_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">')
        parts.append(f"{escape(number(top * fraction))}</text>")
    parts.append(plot)
    if labels:
        width = WIDTH - LEFT - RIGHT
        picks = sorted({0, len(labels) // 2, len(labels) - 1})
        for i in picks:
            x = LEFT + width * (i + 0.5) / len(labels)
            anchor = "start" if i == 0 and len(labels) > 1 else "end" if i == len(labels) - 1 else "middle"
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">')
            parts.append(f"{escape(labels[i])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[Series], totals: Sequence[float]) -> str:
    items = "".join(
        f'<li><span class="key t{i % TONES}" aria-hidden="true"></span>{escape(s.name)}: '
        f"<strong>{escape(number(total))}</strong></li>"
        for i, (s, total) in enumerate(zip(series, totals, strict=True))
    )
    return f'<ul class="legend">{items}</ul>'


def _figure(key: str, title: str, svg: str, legend: str) -> str:
    caption = f"<figcaption>{escape(title)}</figcaption>"
    return f'<figure class="chart" id="{escape(_slug(key))}">{caption}{svg}{legend}</figure>'


def _empty_plot() -> str:
    x, y = (LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2
    return f'<text class="empty" x="{x:.0f}" y="{y:.0f}" text-anchor="middle">nothing counted</text>'


def bars(key: str, title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "") -> str:
    """Stacked bars, one per bucket (``labels`` names the buckets; every series has one value each)."""
    count = len(labels)
    cleaned = [_clean(list(s.values)[:count]) + [0.0] * max(0, count - len(s.values)) for s in series]
    stacks = [sum(column) for column in zip(*cleaned, strict=True)] if cleaned else [0.0] * count
    totals = [sum(v) for v in cleaned]
    top = nice_max(max(stacks, default=0))
    words = ", ".join(f"{s.name} {number(t)}" for s, t in zip(series, totals, strict=True))
    desc = f"Totals over {count} buckets{f' ({unit})' if unit else ''}: {words or 'none'}."
    if not any(stacks):
        plot = _empty_plot()
    else:
        inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        slot = inner_w / count
        bar = max(1.0, slot * 0.8)
        rects = []
        for i in range(count):
            base = 0.0
            for tone, values in enumerate(cleaned):
                v = values[i]
                if v <= 0:
                    continue
                h = inner_h * v / top
                y = TOP + inner_h * (1 - (base + v) / top)
                x = LEFT + slot * i + (slot - bar) / 2
                label = f"{labels[i]}: {series[tone].name} {number(v)}"
                rects.append(
                    f'<rect class="t{tone % TONES}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                    f"<title>{escape(label)}</title></rect>"
                )
                base += v
        plot = "".join(rects)
    svg = _frame(key, title, desc, top, labels, plot)
    return _figure(key, title, svg, _legend(series, totals))


def lines(key: str, title: str, labels: Sequence[str], series: Sequence[Series], *, summary: str = "") -> str:
    """One line per series over the buckets (a level, like the live accounts, not a count per bucket);
    the legend gives each series' last value."""
    count = len(labels)
    cleaned = [_clean(list(s.values)[:count]) for s in series]
    top = nice_max(max((max(v, default=0) for v in cleaned), default=0))
    lasts = [v[-1] if v else 0.0 for v in cleaned]
    desc = summary or ", ".join(f"{s.name} now {number(last)}" for s, last in zip(series, lasts, strict=True))
    if count == 0 or not any(any(v) for v in cleaned):
        plot = _empty_plot()
    else:
        inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        paths = []
        for tone, values in enumerate(cleaned):
            points = " ".join(
                f"{LEFT + inner_w * (i + 0.5) / count:.1f},{TOP + inner_h * (1 - v / top):.1f}"
                for i, v in enumerate(values)
            )
            paths.append(f'<polyline class="line t{tone % TONES}" points="{points}"/>')
        plot = "".join(paths)
    svg = _frame(key, title, desc or "No series.", top, labels, plot)
    return _figure(key, title, svg, _legend(series, lasts))


def funnel(key: str, title: str, steps: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars, one per step of a funnel, each with its count and its share of the first step."""
    values = _clean([n for _, n in steps])
    first = values[0] if values else 0.0
    top = max(values, default=0.0) or 1.0
    row = 30
    height = TOP + row * len(steps) + 4
    label_w = 150
    inner_w = WIDTH - label_w - 180  # room for the count and share after the longest bar
    parts = []
    words = []
    for i, ((name, _), v) in enumerate(zip(steps, values, strict=True)):
        y = TOP + row * i
        share = f"{100 * v / first:.0f}%" if first else "n/a"
        words.append(f"{name} {number(v)} ({share})")
        parts.append(f'<text class="axis" x="{label_w - 8}" y="{y + 18}" text-anchor="end">{escape(name)}</text>')
        w = inner_w * v / top
        parts.append(f'<rect class="t{i % TONES}" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 10}"/>')
        parts.append(
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 18}">{escape(number(v))} · {escape(share)}</text>'
        )
    ident = escape(_slug(key))
    desc = "; ".join(words) or "No steps."
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
        + "".join(parts)
        + "</svg>"
    )
    return _figure(key, title, svg, "")
