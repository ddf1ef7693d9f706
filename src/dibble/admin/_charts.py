"""Bar charts as SVG, rendered on the server: no script, no external file.

Pure functions from numbers to markup, so every rule is tested without a
server.  A chart is an ``<svg role="img">`` with an ``aria-label`` that
says what it shows, a ``<title>``, a value axis with ticks at round numbers
(1, 2 or 5 times a power of ten; for bytes, in the one unit that suits the
largest value: ``0 B, 200 MB, 400 MB``), and one ``<rect class="bar">`` per
value, each with a ``<title>`` child that browsers show as a tooltip.
Every bar is drawn, a zero as a bar of no height, so a chart of 31 days has
31 bars whatever the traffic was.  Every text that comes from data (labels,
series names, the title) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from ..html import TrustedHTML, escape_text

__all__ = [
    "Unit",
    "bar_chart",
    "format_value",
    "grouped_bar_chart",
    "nice_ticks",
    "tick_label",
    "value_ticks",
]

Unit = Literal["count", "bytes", "ms"]

_BYTE_UNITS: Final = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
#: Colours of the series of a grouped chart, in order (then repeated).
PALETTE: Final = ("#3b6ea5", "#e08a2c", "#5a9e4b", "#b0413e", "#7d5ba6", "#8c8c8c")

_LEFT: Final = 64
_RIGHT: Final = 12
_TOP: Final = 30
_BOTTOM: Final = 44
_MAX_LABELS: Final = 16


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least ``maximum`` at a round step (1, 2 or 5 times a power of ten).

    About ``count`` intervals; ``[0, 1]`` when there is nothing to show.
    """
    if not maximum > 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / max(1, count)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for multiple in (1, 2, 5):
        if multiple * magnitude >= raw * (1 - 1e-9):
            step = multiple * magnitude
            break
    intervals = math.ceil(maximum / step - 1e-9)
    return [_tidy(i * step) for i in range(intervals + 1)]


def _tidy(value: float) -> float:
    """``value`` without binary noise (0.30000000000000004 → 0.3)."""
    return float(f"{value:.12g}")


def _byte_unit(maximum: float) -> int:
    """The power of 1024 whose unit shows ``maximum`` as a number below 1024."""
    unit = 0
    while unit < len(_BYTE_UNITS) - 1 and maximum >= 1024 ** (unit + 1):
        unit += 1
    return unit


def value_ticks(maximum: float, unit: Unit = "count") -> list[float]:
    """Axis ticks for values up to ``maximum``: round numbers in the unit's terms.

    Counts never get fractional ticks; bytes get round numbers of the one
    unit (KB, MB, ...) that suits ``maximum``.
    """
    if unit == "bytes":
        scale = 1024 ** _byte_unit(maximum)
        return [_tidy(t * scale) for t in nice_ticks(maximum / scale)]
    ticks = nice_ticks(maximum)
    if unit == "count" and ticks[1] < 1:
        ticks = [0.0, 1.0]
    return ticks


def tick_label(value: float, unit: Unit = "count", top: float | None = None) -> str:
    """How an axis tick reads: ``"2.5k"``, ``"400 MB"``, ``"20 ms"``.

    ``top`` (the largest tick) fixes the byte unit for every tick of an axis.
    """
    if unit == "bytes":
        power = _byte_unit(top if top is not None else value)
        return f"{value / 1024**power:g} {_BYTE_UNITS[power]}"
    if unit == "ms":
        return f"{value:g} ms"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{_tidy(value / size):g}{suffix}"
    return f"{value:g}"


def format_value(value: float, unit: Unit = "count") -> str:
    """A value as a tooltip or table shows it: ``"1,234"``, ``"1.5 MB"``, ``"12.3 ms"``."""
    if not math.isfinite(value):
        return "-"
    if unit == "bytes":
        if value < 1024:
            return f"{int(value)} B"
        power = _byte_unit(value)
        return f"{value / 1024**power:.1f} {_BYTE_UNITS[power]}"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"


@dataclass(frozen=True, slots=True)
class _Series:
    name: str
    values: Sequence[float]
    color: str


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    unit: Unit = "count",
    tips: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    width: int = 720,
    height: int = 240,
) -> TrustedHTML:
    """One bar per value, labelled below; ``tips`` replace the default tooltips
    (``label: value``) and ``colors`` the default colour, bar by bar."""
    if len(labels) != len(values):
        raise ValueError("a bar chart needs as many labels as values")
    series = [_Series(title, values, PALETTE[0])]
    return _render(labels, series, title, unit, width, height, tips, colors)


def grouped_bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    unit: Unit = "count",
    width: int = 720,
    height: int = 260,
) -> TrustedHTML:
    """A group of bars per label, one bar per series (with a legend): latency
    percentiles per service, say."""
    for _, values in series:
        if len(values) != len(labels):
            raise ValueError("every series needs one value per label")
    drawn = [
        _Series(name, values, PALETTE[i % len(PALETTE)]) for i, (name, values) in enumerate(series)
    ]
    return _render(labels, drawn, title, unit, width, height, None, None)


def _f(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _render(
    labels: Sequence[str],
    series: Sequence[_Series],
    title: str,
    unit: Unit,
    width: int,
    height: int,
    tips: Sequence[str] | None,
    colors: Sequence[str] | None,
) -> TrustedHTML:
    count = len(labels)
    values = [v for s in series for v in s.values if math.isfinite(v)]
    largest = max(values, default=0.0)
    ticks = value_ticks(largest, unit)
    top = ticks[-1]
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    base = _TOP + plot_h
    bars = sum(len(s.values) for s in series)
    summary = (
        f"{title}: {bars} bars, highest {format_value(largest, unit)}"
        if bars
        else f"{title}: no data"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="{escape_text(summary)}">',
        f"<title>{escape_text(title)}</title>",
        f'<text class="chart-title" x="{_LEFT}" y="18" font-size="14" '
        f'font-weight="bold">{escape_text(title)}</text>',
    ]
    for tick in ticks:
        y = base - tick / top * plot_h
        out.append(
            f'<line class="grid" x1="{_LEFT}" y1="{_f(y)}" x2="{_LEFT + plot_w}" '
            f'y2="{_f(y)}" stroke="#ddd" stroke-width="1"/>'
        )
        out.append(
            f'<text class="tick" x="{_LEFT - 6}" y="{_f(y + 4)}" font-size="11" '
            f'text-anchor="end">{escape_text(tick_label(tick, unit, top))}</text>'
        )
    if count == 0:
        out.append(
            f'<text class="empty" x="{_f(_LEFT + plot_w / 2)}" y="{_f(_TOP + plot_h / 2)}" '
            f'font-size="13" text-anchor="middle" fill="#888">No data</text>'
        )
    slot = plot_w / max(1, count)
    group_w = slot * 0.8
    bar_w = group_w / max(1, len(series))
    every = max(1, math.ceil(count / _MAX_LABELS))
    for i, label in enumerate(labels):
        left = _LEFT + i * slot + (slot - group_w) / 2
        for j, one in enumerate(series):
            value = one.values[i]
            shown = value if math.isfinite(value) and value > 0 else 0.0
            h = min(shown, top) / top * plot_h
            color = colors[i] if colors is not None else one.color
            if tips is not None:
                tip = tips[i]
            elif len(series) > 1:
                tip = f"{label}, {one.name}: {format_value(value, unit)}"
            else:
                tip = f"{label}: {format_value(value, unit)}"
            out.append(
                f'<rect class="bar" x="{_f(left + j * bar_w)}" y="{_f(base - h)}" '
                f'width="{_f(max(bar_w - 1, 1))}" height="{_f(h)}" fill="{escape_text(color)}">'
                f"<title>{escape_text(tip)}</title></rect>"
            )
        if i % every == 0:
            x = left + group_w / 2
            out.append(
                f'<text class="label" x="{_f(x)}" y="{base + 16}" font-size="11" '
                f'text-anchor="middle">{escape_text(label)}</text>'
            )
    out.append(
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" '
        f'stroke="#444" stroke-width="1"/>'
    )
    out.append(
        f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{_LEFT + plot_w}" y2="{base}" '
        f'stroke="#444" stroke-width="1"/>'
    )
    if len(series) > 1:
        x = float(_LEFT)
        for one in series:
            out.append(
                f'<rect class="legend" x="{_f(x)}" y="{height - 14}" width="10" height="10" '
                f'fill="{escape_text(one.color)}"/>'
                f'<text x="{_f(x + 14)}" y="{height - 5}" font-size="11">'
                f"{escape_text(one.name)}</text>"
            )
            x += 24 + 7 * len(one.name)
    out.append("</svg>")
    return TrustedHTML("".join(out))
