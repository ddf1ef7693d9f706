"""The optional Jinja2 adapter: same shape and defaults as TemplateLoader."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from dibble.html import TrustedHTML
from dibble.templates import TemplateFileError, TemplateSyntaxError, TemplateWarning
from dibble.templates.jinja import JinjaLoader


@pytest.fixture
def loader(tmp_path: Path) -> JinjaLoader:
    (tmp_path / "page.html").write_text(
        "<h1>{{ title }}</h1>{% for row in rows %}<p>{{ row.name }}</p>{% endfor %}\n",
        encoding="utf-8",
    )
    (tmp_path / "bad.html").write_text("ok\n{% for x in %}\n", encoding="utf-8")
    return JinjaLoader(tmp_path)


def test_render_escapes_and_keeps_trailing_newline(loader: JinjaLoader) -> None:
    rendered = loader.render("page.html", title="a<b", rows=[{"name": "x&y"}])
    assert rendered == "<h1>a&lt;b</h1><p>x&amp;y</p>\n"


def test_trusted_html_is_not_escaped(loader: JinjaLoader) -> None:
    rendered = loader.get("page.html").render({"title": TrustedHTML("<i>t</i>")}, rows=[])
    assert rendered == "<h1><i>t</i></h1>\n"


def test_template_name(loader: JinjaLoader) -> None:
    assert loader.get("page.html").name == "page.html"
    assert loader.from_string("{{ x }}").name == "<string>"


def test_missing_template_is_a_template_file_error(loader: JinjaLoader) -> None:
    with pytest.raises(TemplateFileError, match=r"nope\.html: template not found"):
        loader.get("nope.html")


def test_syntax_error_is_translated_with_line(loader: JinjaLoader) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        loader.get("bad.html")
    assert info.value.line == 2
    assert info.value.template.endswith("bad.html")
    with pytest.raises(TemplateSyntaxError) as from_string:
        loader.from_string("{% if %}")
    assert from_string.value.line == 1


def test_warning_for_undefined_variables(tmp_path: Path) -> None:
    warning_loader = JinjaLoader(tmp_path, warn_on_not_used_vars=True)
    with pytest.warns(TemplateWarning, match="'missing' is never filled"):
        assert warning_loader.from_string("[{{ missing }}]").render() == "[]"
    assert JinjaLoader(tmp_path).from_string("[{{ missing }}]").render() == "[]"


def test_clear_message_when_jinja2_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    monkeypatch.delitem(sys.modules, "dibble.templates.jinja")
    with pytest.raises(ImportError, match=r"pip install 'dibble\[jinja\]'"):
        importlib.import_module("dibble.templates.jinja")
