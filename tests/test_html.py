"""dibble.html: escaping, form controls, tooltips, e-mail obfuscation."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from dibble.html import (
    TOOLTIP_CSS,
    TrustedHTML,
    attributes,
    escape,
    obfuscate_email,
    options,
    radio_buttons,
    select,
    tooltip,
    unescape,
)
from dibble.templates import Template


def test_escape_every_special_character() -> None:
    assert escape("&<>\"'") == "&amp;&lt;&gt;&#34;&#39;"
    assert isinstance(escape("x"), TrustedHTML)


def test_escape_none_and_other_values() -> None:
    assert escape(None) == ""
    assert escape(3) == "3"
    assert escape(TrustedHTML("<b>")) == "<b>"
    assert escape(Markup("<i>")) == "<i>"


def test_escaping_twice_is_harmless() -> None:
    assert escape(escape("<")) == "&lt;"


@settings(database=None)
@given(st.text())
def test_unescape_inverts_escape(text: str) -> None:
    assert unescape(escape(text)) == text
    assert "<" not in escape(text)


def test_unescape_named_and_numeric_references() -> None:
    assert unescape("&eacute;&#233;&#xe9;&amp;lt;") == "ééé&lt;"


def test_trusted_html_is_a_str_whose_trust_is_not_inherited() -> None:
    trusted = TrustedHTML("<b>")
    assert trusted == "<b>"
    assert trusted.__html__() == "<b>"
    assert type(trusted + "x") is str
    assert repr(trusted) == "TrustedHTML('<b>')"
    assert Template("${V}").render(V=trusted + "<") == "&lt;b&gt;&lt;"


def test_attributes() -> None:
    assert attributes(None) == ""
    assert attributes({"id": "a", "class_": 'x "y"', "hidden": True, "off": False, "n": None}) == (
        ' id="a" class="x &#34;y&#34;" hidden'
    )


@pytest.mark.parametrize("name", ['a"b', "a b", "on>x", "", "=", "a=b", "1x"])
def test_bad_attribute_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="attribute name"):
        attributes({name: "x"})


def test_options_with_labels_selected_and_disabled() -> None:
    assert options([(1, "one"), (2, "two <2>"), 3], selected="2", disabled=[3]) == (
        '<option value="1">one</option>\n'
        '<option value="2" selected>two &lt;2&gt;</option>\n'
        '<option value="3" disabled>3</option>'
    )


def test_select_with_extra_attributes_and_multiple_selection() -> None:
    rendered = select(
        "project",
        ["a&b", "c"],
        selected=["a&b", "c"],
        multiple=True,
        attrs={"id": "p", "onchange": "this.form.submit()"},
    )
    assert rendered == (
        '<select name="project" multiple id="p" onchange="this.form.submit()">\n'
        '<option value="a&amp;b" selected>a&amp;b</option>\n'
        '<option value="c" selected>c</option>\n'
        "</select>"
    )


def test_empty_select() -> None:
    assert select("x", []) == '<select name="x"></select>'


def test_select_is_inserted_unescaped_by_templates() -> None:
    rendered = Template("<form>${S}</form>").render(S=select("n", ["<v>"]))
    option = '<option value="&lt;v&gt;">&lt;v&gt;</option>'
    assert rendered == f'<form><select name="n">\n{option}\n</select></form>'


def test_radio_buttons() -> None:
    rendered = radio_buttons(
        "size",
        [("s", "Small"), ("l", "Large & more")],
        checked="l",
        disabled="s",
        attrs={"class": "r"},
        separator="<br>",
    )
    assert rendered == (
        '<label><input type="radio" name="size" value="s" disabled class="r"> Small</label><br>'
        '<label><input type="radio" name="size" value="l" checked class="r"> Large &amp; more'
        "</label>"
    )


def test_tooltip_escapes_and_is_css_only() -> None:
    rendered = tooltip("ra", "Right <ascension>", title="RA")
    assert rendered == (
        '<span class="dibble-tip" tabindex="0">ra<span class="dibble-tip-body" role="tooltip">'
        "<strong>RA</strong>Right &lt;ascension&gt;</span></span>"
    )
    assert "<script" not in rendered
    assert ".dibble-tip:hover > .dibble-tip-body" in TOOLTIP_CSS
    assert "<strong>" not in tooltip("a", "b")


def test_obfuscated_email_has_no_plain_address_but_decodes_to_it() -> None:
    rendered = obfuscate_email("user@example.org")
    assert "@" not in rendered
    assert "example" not in rendered
    assert "mailto" not in rendered
    assert html.unescape(rendered) == '<a href="mailto:user@example.org">user@example.org</a>'
    # Decimal and hexadecimal references alternate.
    assert re.search(r"&#\d+;&#x[0-9a-f]+;", rendered)


def test_obfuscated_email_text_and_no_link() -> None:
    linked = obfuscate_email("a@b.c", "Mail <me>")
    assert linked.endswith(">Mail &lt;me&gt;</a>")
    bare = obfuscate_email("a@b.c", link=False)
    assert "<a" not in bare
    assert html.unescape(bare) == "a@b.c"
