"""The lexer: text to tokens, with lines, escapes and literal look-alikes."""

from __future__ import annotations

import pytest

from dibble.templates import TemplateSyntaxError
from dibble.templates._lexer import Token, TokenKind, tokenize

TEXT, VAR, BEGIN, END = TokenKind.TEXT, TokenKind.VARIABLE, TokenKind.BEGIN, TokenKind.END


def kinds(source: str) -> list[tuple[TokenKind, str]]:
    return [(token.kind, token.value) for token in tokenize(source)]


def test_empty_template_has_no_tokens() -> None:
    assert tokenize("") == []


def test_plain_text_is_one_token() -> None:
    assert tokenize("<p>hello</p>\n") == [Token(TEXT, "<p>hello</p>\n", 1)]


def test_variable_between_text() -> None:
    assert kinds("a${NAME}b") == [(TEXT, "a"), (VAR, "NAME"), (TEXT, "b")]


def test_block_markers_carry_the_bare_name() -> None:
    assert kinds("${_BEGIN_ROW}x${_END_ROW}") == [(BEGIN, "ROW"), (TEXT, "x"), (END, "ROW")]


def test_adjacent_placeholders_have_no_text_between() -> None:
    assert kinds("${A}${B}") == [(VAR, "A"), (VAR, "B")]


def test_lines_are_counted_from_one() -> None:
    tokens = tokenize("one\ntwo ${A}\n\n${_BEGIN_B}\n${_END_B}")
    assert [(token.kind, token.line) for token in tokens] == [
        (TEXT, 1),
        (VAR, 2),
        (TEXT, 2),
        (BEGIN, 4),
        (TEXT, 4),
        (END, 5),
    ]


@pytest.mark.parametrize(
    "source",
    [
        "${ NAME }",
        "${a.b}",
        "${x + 1}",
        "${1abc}",
        "${}",
        "${name",
        "$NAME",
        "{NAME}",
        "${naïve}",
        "${__import__('os').system('x')}",
        "`${count + 1} items`",
    ],
)
def test_anything_but_a_bare_identifier_is_literal_text(source: str) -> None:
    assert tokenize(source) == [Token(TEXT, source, 1)]


def test_brace_after_a_variable_is_text() -> None:
    assert kinds("${a}}") == [(VAR, "a"), (TEXT, "}")]


def test_dollar_dollar_brace_is_a_literal_placeholder() -> None:
    assert kinds("cost: $${PRICE} and ${PRICE}") == [
        (TEXT, "cost: ${PRICE} and "),
        (VAR, "PRICE"),
    ]


def test_escaped_marker_is_literal_too() -> None:
    assert kinds("$${_BEGIN_X}") == [(TEXT, "${_BEGIN_X}")]


def test_text_line_is_where_merged_text_starts() -> None:
    tokens = tokenize("a\n$${X}\nb")
    assert tokens == [Token(TEXT, "a\n${X}\nb", 1)]


def test_names_are_case_sensitive() -> None:
    assert kinds("${name}${NAME}") == [(VAR, "name"), (VAR, "NAME")]


def test_prefix_like_variable_names_are_variables() -> None:
    assert kinds("${_BEGIN}${_ENDING}${BEGIN_X}") == [
        (VAR, "_BEGIN"),
        (VAR, "_ENDING"),
        (VAR, "BEGIN_X"),
    ]


@pytest.mark.parametrize("marker", ["${_BEGIN_}", "${_END_}"])
def test_marker_without_a_name_is_a_syntax_error(marker: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        tokenize(f"line one\n{marker}", "page.html")
    assert info.value.template == "page.html"
    assert info.value.line == 2
    assert str(info.value).startswith("page.html, line 2: ")


def test_unicode_text_passes_through() -> None:
    assert kinds("Łódź ${CITY} · 東京 🚀") == [
        (TEXT, "Łódź "),
        (VAR, "CITY"),
        (TEXT, " · 東京 🚀"),
    ]
