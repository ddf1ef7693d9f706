"""The parser: nesting, line numbers and every structural error."""

from __future__ import annotations

import pickle

import pytest

from dibble.templates import TemplateSyntaxError
from dibble.templates._nodes import Block, TemplateTree, Text, Variable, walk
from dibble.templates._parser import parse


def test_flat_template() -> None:
    assert parse("a${X}b", "t") == TemplateTree(
        "t", (Text("a", 1), Variable("X", 1), Text("b", 1))
    )


def test_nested_blocks_three_deep_with_lines() -> None:
    source = (
        "${_BEGIN_A}\n"  # 1
        "${X}${_BEGIN_B}\n"  # 2
        "${_BEGIN_C}${Y}${_END_C}\n"  # 3
        "${_END_B}\n"  # 4
        "${_END_A}"  # 5
    )
    tree = parse(source)
    (a,) = tree.body
    assert isinstance(a, Block)
    assert (a.name, a.line, a.end_line) == ("A", 1, 5)
    b = a.body[2]
    assert isinstance(b, Block)
    assert (b.name, b.line, b.end_line) == ("B", 2, 4)
    c = b.body[1]
    assert c == Block("C", (Variable("Y", 3),), 3, 3)
    assert [node.name for node in walk(tree.body) if isinstance(node, Block)] == ["A", "B", "C"]


def test_empty_block() -> None:
    assert parse("${_BEGIN_E}${_END_E}").body == (Block("E", (), 1, 1),)


def test_nodes_are_frozen() -> None:
    node = Variable("X", 1)
    with pytest.raises(AttributeError):
        node.name = "Y"  # type: ignore[misc]


def error_of(source: str) -> TemplateSyntaxError:
    with pytest.raises(TemplateSyntaxError) as info:
        parse(source, "page.html")
    assert info.value.template == "page.html"
    return info.value


def test_end_without_begin() -> None:
    error = error_of("a\nb ${_END_ROW}")
    assert error.line == 2
    assert "${_END_ROW} without a matching ${_BEGIN_ROW}" in str(error)


def test_begin_never_closed_points_at_the_begin() -> None:
    error = error_of("x\n${_BEGIN_ROW}\n\n\n")
    assert error.line == 2
    assert "${_BEGIN_ROW} is never closed" in error.message


def test_inner_begin_never_closed_is_reported_first() -> None:
    error = error_of("${_BEGIN_A}\n${_BEGIN_B}\n")
    assert (error.line, "_BEGIN_B" in error.message) == (2, True)


def test_misnamed_end() -> None:
    error = error_of("${_BEGIN_TABLE}\n${_BEGIN_ROW}\n${_END_TABLE}")
    assert error.line == 3
    assert error.message == "${_END_TABLE} closes ${_BEGIN_ROW} (line 2); expected ${_END_ROW}"


def test_crossed_blocks() -> None:
    assert error_of("${_BEGIN_A}${_BEGIN_B}${_END_A}${_END_B}").line == 1


def test_block_names_are_unique_in_the_template() -> None:
    error = error_of("${_BEGIN_A}${_END_A}\n${_BEGIN_B}${_BEGIN_A}${_END_A}${_END_B}")
    assert error.line == 2
    assert "block A is defined twice (first at line 1)" in error.message


def test_a_block_and_a_variable_may_share_a_name() -> None:
    tree = parse("${_BEGIN_GROUP}<h2>${GROUP}</h2>${_END_GROUP}")
    assert tree.body == (
        Block("GROUP", (Text("<h2>", 1), Variable("GROUP", 1), Text("</h2>", 1)), 1, 1),
    )


def test_same_variable_in_several_blocks_is_fine() -> None:
    tree = parse("${X}${_BEGIN_A}${X}${_END_A}${_BEGIN_B}${X}${_END_B}")
    assert sum(isinstance(node, Variable) for node in walk(tree.body)) == 3


def test_template_errors_survive_pickling() -> None:
    error = error_of("${_END_X}")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301  # our own bytes
    assert type(copy) is TemplateSyntaxError
    assert (copy.template, copy.line, copy.message, str(copy)) == (
        error.template,
        error.line,
        error.message,
        str(error),
    )
