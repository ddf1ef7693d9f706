"""The SVG bar charts: ticks, units, bars, tooltips, escaping, accessibility."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dibble.admin import bar_chart, format_value, grouped_bar_chart, nice_ticks, value_ticks
from dibble.admin._charts import tick_label
from dibble.html import TrustedHTML

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own markup, parsed to check it is XML


def bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (10, [0, 2, 4, 6, 8, 10]),
        (7, [0, 2, 4, 6, 8]),
        (1234, [0, 500, 1000, 1500]),
        (95, [0, 20, 40, 60, 80, 100]),
        (1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (0.03, [0, 0.01, 0.02, 0.03]),
        (250_000, [0, 50_000, 100_000, 150_000, 200_000, 250_000]),
    ],
)
def test_nice_ticks_are_round_numbers(maximum: float, expected: list[float]) -> None:
    assert nice_ticks(maximum) == expected


@pytest.mark.parametrize("maximum", [0, -5, math.nan, math.inf])
def test_nothing_to_show_gets_a_unit_axis(maximum: float) -> None:
    assert nice_ticks(maximum) == [0, 1]


@given(st.floats(min_value=1e-6, max_value=1e15))
def test_ticks_cover_the_maximum_with_a_round_step(maximum: float) -> None:
    ticks = nice_ticks(maximum)
    assert ticks[0] == 0
    assert ticks[-1] >= maximum * (1 - 1e-9)
    assert 2 <= len(ticks) <= 11
    step = ticks[1]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5)
    assert all(math.isclose(b - a, step, rel_tol=1e-6) for a, b in itertools.pairwise(ticks))


def test_counts_never_get_fractional_ticks() -> None:
    assert value_ticks(1, "count") == [0, 1]
    assert value_ticks(3, "count") == [0, 1, 2, 3]


def test_byte_ticks_are_round_in_one_unit() -> None:
    mib = 1024 * 1024
    ticks = value_ticks(900 * mib, "bytes")
    assert [tick_label(t, "bytes", ticks[-1]) for t in ticks] == [
        "0 MB",
        "200 MB",
        "400 MB",
        "600 MB",
        "800 MB",
        "1000 MB",
    ]
    ticks = value_ticks(3 * 1024 * mib, "bytes")
    assert tick_label(ticks[-1], "bytes", ticks[-1]) == "3 GB"
    assert value_ticks(500, "bytes")[-1] == 500


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (1234, "count", "1,234"),
        (2.5, "count", "2.50"),
        (512, "bytes", "512 B"),
        (1536, "bytes", "1.5 KB"),
        (3 * 1024**3, "bytes", "3.0 GB"),
        (1.234, "ms", "1.23 ms"),
        (1234.5, "ms", "1,234.5 ms"),
    ],
)
def test_values_as_people_read_them(value: float, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown  # type: ignore[arg-type]


def test_axis_labels_are_compact() -> None:
    assert tick_label(2500) == "2.5k"
    assert tick_label(3_000_000) == "3M"
    assert tick_label(40) == "40"
    assert tick_label(20, "ms") == "20 ms"


def test_a_bar_chart_has_one_bar_per_value_zeros_included() -> None:
    labels = [f"05-{d:02d}" for d in range(1, 32)]
    values = [float(0 if d % 7 == 0 else d * 10) for d in range(1, 32)]
    svg = bar_chart(labels, values, title="Requests per day")
    assert isinstance(svg, TrustedHTML)
    root = parse(svg)
    drawn = bars(root)
    assert len(drawn) == 31
    assert svg.count('class="bar"') == 31
    zero = drawn[6]
    assert float(zero.get("height", "x")) == 0
    tallest = max(drawn, key=lambda e: float(e.get("height", "0")))
    assert tallest is drawn[-1]
    assert tallest.findtext(f"{SVG}title") == "05-31: 310"


def test_a_chart_is_accessible() -> None:
    root = parse(bar_chart(["a", "b"], [3.0, 5.0], title="Things"))
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Things: 2 bars, highest 5"
    assert root.findtext(f"{SVG}title") == "Things"
    assert root.get("viewBox") == "0 0 720 240"


def test_bar_heights_follow_the_axis() -> None:
    root = parse(bar_chart(["a", "b", "c"], [10.0, 5.0, 0.0], title="t"))
    heights = [float(e.get("height", "0")) for e in bars(root)]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert heights[2] == 0
    ticks = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "tick"]
    assert ticks == ["0", "2", "4", "6", "8", "10"]


def test_labels_titles_and_tips_are_escaped() -> None:
    svg = bar_chart(
        ['<script>alert("x")</script>', "a&b"],
        [1.0, 2.0],
        title="<b>Title</b>",
        tips=["<i>tip</i>", "fine"],
        colors=['red" onload="x', "#fff"],
    )
    assert "<script>" not in svg
    assert "<b>" not in svg and "<i>" not in svg
    assert 'onload="' not in svg
    root = parse(svg)  # still well-formed XML
    assert root.findtext(f"{SVG}title") == "<b>Title</b>"
    assert [b.findtext(f"{SVG}title") for b in bars(root)] == ["<i>tip</i>", "fine"]
    labels = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "label"]
    assert labels == ['<script>alert("x")</script>', "a&b"]


def test_many_bars_get_thinned_labels_but_every_bar() -> None:
    labels = [str(i) for i in range(100)]
    root = parse(bar_chart(labels, [1.0] * 100, title="t"))
    assert len(bars(root)) == 100
    shown = [e for e in root.iter(f"{SVG}text") if e.get("class") == "label"]
    assert 10 <= len(shown) <= 17


def test_an_empty_chart_says_so() -> None:
    svg = bar_chart([], [], title="Latency")
    root = parse(svg)
    assert bars(root) == []
    assert "No data" in svg
    assert root.get("aria-label") == "Latency: no data"


def test_values_and_labels_must_match() -> None:
    with pytest.raises(ValueError, match="as many labels as values"):
        bar_chart(["a"], [1.0, 2.0], title="t")
    with pytest.raises(ValueError, match="one value per label"):
        grouped_bar_chart(["a", "b"], [("p50", [1.0])], title="t")


def test_a_grouped_chart_has_a_bar_per_series_and_a_legend() -> None:
    svg = grouped_bar_chart(
        ["home", "report"],
        [("p50", [1.0, 20.0]), ("p90", [3.0, 60.0]), ("p99", [9.0, 200.0])],
        title="Latency",
        unit="ms",
    )
    root = parse(svg)
    drawn = bars(root)
    assert len(drawn) == 6
    assert drawn[5].findtext(f"{SVG}title") == "report, p99: 200.0 ms"
    legend = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "legend"]
    assert len(legend) == 3
    assert {b.get("fill") for b in drawn[:3]} == {key.get("fill") for key in legend}


def test_bytes_charts_label_their_axis_in_units() -> None:
    svg = bar_chart(["a", "b"], [200 * 1024**2, 700 * 1024**2], title="Bytes", unit="bytes")
    root = parse(svg)
    ticks = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "tick"]
    assert ticks[-1] == "800 MB"
    assert bars(root)[1].findtext(f"{SVG}title") == "b: 700.0 MB"


def test_negative_and_missing_values_draw_no_bar_height() -> None:
    root = parse(bar_chart(["a", "b", "c"], [-3.0, math.nan, 4.0], title="t"))
    heights = [float(e.get("height", "x")) for e in bars(root)]
    assert heights[:2] == [0, 0]
    assert heights[2] > 0
