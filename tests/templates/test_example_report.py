"""examples/report.py: the nested-block report renders what the data says."""

from __future__ import annotations

import html
import importlib.util
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

import dibble
from dibble.templates import TemplateLoader

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    if not hasattr(dibble, "Plugin"):
        pytest.skip("examples/report.py needs dibble.Plugin (the application layer)")
    spec = importlib.util.spec_from_file_location("dibble_example_report", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_report_nests_nights_frames_and_flags(report: ModuleType) -> None:
    page: str = report.render_report(report.SAMPLE_NIGHTS)
    assert page.count("<h2>Night of ") == 2
    assert page.count("<tr style=") == 4
    assert page.count('class="flag"') == 3
    assert "observer: B. &lt;Observer&gt; &amp; co; 1 frames, 256.2 MB" in page
    assert "<td>OMEGA.2024-03-11T02:15:00.fits</td><td>r</td>" in page
    assert '<td class="number">30.5</td><td class="number">256.2 MB</td>' in page
    assert "dibble-tip-body" in page
    assert "No observations" not in page
    assert '<option value="all" selected>all</option>' in page


def test_band_filter_and_empty_result(report: ModuleType) -> None:
    page: str = report.render_report(report.SAMPLE_NIGHTS, band="r")
    assert page.count("<h2>Night of ") == 1
    assert page.count("<tr style=") == 2
    assert '<option value="r" selected>r</option>' in page
    empty: str = report.render_report(report.SAMPLE_NIGHTS, band="<z>")
    assert "<h2>" not in empty
    assert "<p>No observations match the filter <em>&lt;z&gt;</em>.</p>" in empty


def test_report_fills_every_variable_and_uses_every_value(
    report: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = TemplateLoader(EXAMPLE.parent / "templates", warn_on_not_used_vars=True)
    monkeypatch.setattr(report, "TEMPLATES", strict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page: str = report.render_report(report.SAMPLE_NIGHTS)
        empty: str = report.render_report(report.SAMPLE_NIGHTS, band="none")
    assert html.unescape(re.sub(r"<[^>]+>", "", page)).count("OMEGA.") == 4
    assert "No observations" in empty
