"""dibble.compat.awe: Astro-WISE code runs with only its imports changed."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from dibble.compat.awe import HtmlTemplate, HtmlUtil, TextUtil, TrustedHTML
from dibble.templates import TemplateBlockError, TemplateFileError, TemplateWarning

PAGE = """\
<html><head><title>${TITLE}</title></head><body>
<form>${PROJECT_SELECT}</form>
<table>
${_BEGIN_NIGHT}<tr><th colspan="2">${NIGHT}</th></tr>
${_BEGIN_FRAME}<tr><td>${FILENAME}</td><td>${SIZE}</td></tr>
${_END_FRAME}${_END_NIGHT}</table>
${_BEGIN_EMPTY}<p>No frames for ${TITLE}.</p>${_END_EMPTY}
</body></html>
"""


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "frames.html"
    path.write_text(PAGE, encoding="utf-8")
    return path


def legacy_page(filename: Path, nights: dict[str, list[tuple[str, int]]]) -> str:
    # Written the Astro-WISE way, camelCase and all.
    template = HtmlTemplate(filename)
    template.setVariable("TITLE", "Frames <WFI>")
    template.setVariable(
        "PROJECT_SELECT",
        HtmlUtil.getSelect("project", ["KIDS", "OMEGA"], "OMEGA", labels=["KiDS", "Omega"]),
    )
    for night, frames in nights.items():
        template.beginBlock("NIGHT")
        template.setBlockVariable("NIGHT", night)
        for frame, size in frames:
            template.beginBlock("FRAME")
            template.setBlockVariable("FILENAME", frame)
            template.setBlockVariable("SIZE", TextUtil.humanSize(size))
            template.insertRepeatingBlock("FRAME")
        template.updateBlock("NIGHT")
    if not nights:
        template.insertBlock("EMPTY")
    return template.getHtml()


def test_legacy_page(page: Path) -> None:
    page_html = legacy_page(
        page, {"2004-01-01": [("a.fits", 2048), ("b&c.fits", 3 * 2**20)], "2004-01-02": []}
    )
    assert "<title>Frames &lt;WFI&gt;</title>" in page_html
    assert '<option value="OMEGA" selected>Omega</option>' in page_html
    assert '<tr><th colspan="2">2004-01-01</th></tr>\n' in page_html
    assert "<tr><td>a.fits</td><td>2.0 KB</td></tr>\n" in page_html
    assert "<tr><td>b&amp;c.fits</td><td>3.0 MB</td></tr>\n" in page_html
    assert '<tr><th colspan="2">2004-01-02</th></tr>\n</table>' in page_html
    assert "No frames" not in page_html


def test_empty_block_inserted_once(page: Path) -> None:
    assert "<p>No frames for Frames &lt;WFI&gt;.</p>" in legacy_page(page, {})


def test_variable_dict_list_and_save(page: Path, tmp_path: Path) -> None:
    template = HtmlTemplate(page)
    template.setVariableDict({"TITLE": "t"})
    template.setVariableList([("PROJECT_SELECT", TrustedHTML("<i>p</i>"))])
    template.setVariableList(["TITLE"], ["list"])
    template.beginBlock("NIGHT")
    template.setBlockVariableDict({"NIGHT": "n"})
    template.updateBlock("NIGHT")
    out = tmp_path / "out.html"
    template.saveHtml(out)
    saved = out.read_text(encoding="utf-8")
    assert "<title>list</title>" in saved
    assert "<form><i>p</i></form>" in saved
    assert saved == template.getHtml()
    template.reset()
    assert "<title></title>" in template.getHtml()
    with pytest.raises(TypeError, match="pair"):
        template.setVariableList(["TITLE"])


def test_errors_are_dibble_template_errors(page: Path, tmp_path: Path) -> None:
    with pytest.raises(TemplateFileError):
        HtmlTemplate(tmp_path / "missing.html")
    with pytest.raises(TemplateBlockError):
        HtmlTemplate(page).beginBlock("NIGHTS")


def test_from_string_and_autoescape_off() -> None:
    template = HtmlTemplate.fromString("${X}", autoescape=False)
    template.setVariable("X", "<b>legacy</b>")
    assert template.getHtml() == "<b>legacy</b>"


def test_warnings_point_at_the_caller() -> None:
    template = HtmlTemplate.fromString("${X}", True)
    template.setVariable("Y", 1)
    with pytest.warns(TemplateWarning) as caught:
        template.getHtml()
    assert {warning.filename for warning in caught.list} == {__file__}
    quiet = HtmlTemplate.fromString("${X}")
    quiet.setVariable("Y", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.getHtml()


def test_html_util_names() -> None:
    assert HtmlUtil.escape("<") == "&lt;"
    assert HtmlUtil.unescape("&lt;") == "<"
    assert HtmlUtil.getOptions([1, 2], 2) == (
        '<option value="1">1</option>\n<option value="2" selected>2</option>'
    )
    radios = HtmlUtil.getRadioButtons("r", ["a", "b"], "b", labels=["A", "B"], class_="x")
    assert 'value="b" checked class="x"> B' in radios
    assert HtmlUtil.getSelect("s", ["a"], class_="wide").startswith(
        '<select name="s" class="wide">'
    )
    assert "dibble-tip" in HtmlUtil.getToolTip("x", "tip")
    assert "dibble-tip" in HtmlUtil.getToolTipCss()
    assert "@" not in HtmlUtil.obfuscateEmail("a@b.c")
    assert HtmlUtil.splitColour("#010203") == (1, 2, 3)
    assert HtmlUtil.joinColour((1, 2, 3)) == "#010203"
    assert HtmlUtil.darkenColour("#ffffff", 0.5) == "#808080"
    assert HtmlUtil.lightenColour("#000000", 1) == "#ffffff"


def test_text_util_names() -> None:
    assert TextUtil.humanSize(1536) == "1.5 KB"
    assert TextUtil.getSizeString(2**30) == "1.0 GB"
    assert TextUtil.getPagedQuery("SELECT 1", 0, 10).endswith("LIMIT 10 OFFSET 0")
    assert TextUtil.getCountQuery("SELECT 1").startswith("SELECT COUNT(*)")
