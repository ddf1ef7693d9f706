"""The compiler: the generated source keeps its invariants (see _compiler's docstring)."""

from __future__ import annotations

import ast
import re

import pytest

from dibble.templates import Template
from dibble.templates._compiler import compile_template
from dibble.templates._runtime import escape_value, text_value

# Every identifier the generated code may contain: all generated, none from a template.
GENERATED_NAME = re.compile(
    r"_(?:[vx]\d+_\d+|r\d+|block\d+|esc|rows|as_row|dict|out|a|ctx|"
    r"CONVERT|BLOCK_ROWS|AS_ROW|DICT|NAME)\Z"
)

NASTY_TEXT = [
    "'",
    '"',
    "'''",
    '"""',
    "\\",
    "\\n",
    "{",
    "}",
    "{{x}}",
    "f'{x}'",
    "\x00\x01\x7f",
    "\r\n",
    "'); import os; os.system('echo pwned'); ('",
    '" + __import__("os").getcwd() + "',
    "\u2028\u2029",
    "emoji 🚀 and \U0010ffff",
]


@pytest.mark.parametrize("text", NASTY_TEXT)
def test_literal_text_comes_out_exactly(text: str) -> None:
    source = f"{text}${{X}}{text}${{_BEGIN_B}}{text}${{_END_B}}{text}"
    rendered = Template(source).render(X="v", B=[{}, {}])
    assert rendered == f"{text}v{text}{text}{text}{text}"


@pytest.mark.parametrize(
    "name", ["class", "return", "_ctx", "_a", "_out", "_esc", "__builtins__", "_v0_0", "None"]
)
def test_names_that_are_keywords_or_internal_locals_are_just_keys(name: str) -> None:
    template = Template(f"<${{{name}}}>${{_BEGIN_B}}[${{{name}}}]${{_END_B}}")
    assert template.render({name: "top", "B": [{}, {name: "row"}]}) == "<top>[top][row]"


def identifiers(python_source: str) -> set[str]:
    tree = ast.parse(python_source)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    return names


@pytest.mark.parametrize("text", NASTY_TEXT)
def test_generated_code_has_only_generated_identifiers(text: str) -> None:
    template = Template(f"{text}${{os}}${{_BEGIN_eval}}${{exec}}{text}${{_END_eval}}")
    names = identifiers(template.python_source) - {"render"}
    assert all(GENERATED_NAME.match(name) for name in names), names


def test_generated_code_has_no_calls_but_helpers_and_methods() -> None:
    template = Template("${A}${_BEGIN_B}${C}${_BEGIN_D}${E}${_END_D}${_END_B}")
    tree = ast.parse(template.python_source)
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called.add(func.id if isinstance(func, ast.Name) else ast.unparse(func).split(".")[-1])
    assert called <= {"_esc", "_rows", "_as_row", "_a", "get", "join"}


def test_code_runs_without_builtins() -> None:
    program = compile_template("${X}")
    assert program.function.__globals__["__builtins__"] == {}


def test_compilation_is_cached_by_text_name_and_escaping() -> None:
    first = compile_template("cache me ${X}", "c")
    assert compile_template("cache me ${X}", "c") is first
    assert compile_template("cache me ${X}", "other") is not first
    assert compile_template("cache me ${X}", "c", autoescape=False) is not first


def test_conversion_function_follows_autoescape() -> None:
    assert compile_template("${X}").function.__globals__["_CONVERT"] is escape_value
    raw = compile_template("${X}", autoescape=False)
    assert raw.function.__globals__["_CONVERT"] is text_value


def test_each_name_is_looked_up_once_per_scope() -> None:
    template = Template("${A}${A}${_BEGIN_B}${A}${A}${C}${C}${_END_B}")
    source = template.python_source
    assert source.count("_ctx.get('A')") == 1
    assert source.count(".get('A',") == 1  # once per repetition of B
    assert source.count(".get('C',") == 1
    assert source.count("_esc(") == 3  # A at top, A and C in B


def test_text_and_values_between_markers_are_one_append() -> None:
    row = "".join(f"<td>${{C{i}}}</td>" for i in range(10))
    template = Template(f"<table>\n${{_BEGIN_ROW}}<tr>{row}</tr>\n${{_END_ROW}}</table>\n")
    appends = [line for line in template.python_source.splitlines() if "_a(" in line]
    assert len(appends) == 3  # before the loop, the row, after the loop


def test_empty_template_renders_empty() -> None:
    assert Template("").render() == ""
    assert "_a(" not in Template("").python_source


def test_line_map_points_each_generated_line_at_a_template_line() -> None:
    program = compile_template("a\n${X}\n${_BEGIN_B}\n${Y}\n${_END_B}\n")
    lines = program.python_source.splitlines()
    assert len(program.line_map) == len(lines)
    loop = next(index for index, line in enumerate(lines) if line.lstrip().startswith("for "))
    assert program.line_map[loop] == 3


class Exploding:
    def __str__(self) -> str:
        raise RuntimeError("boom")


def test_runtime_error_is_annotated_with_template_and_line() -> None:
    template = Template("one\ntwo\n${_BEGIN_B}\n<b>${BAD}</b>${_END_B}", name="page.html")
    with pytest.raises(RuntimeError, match="boom") as info:
        template.render(B=[{"BAD": Exploding()}])
    assert info.value.__notes__ == ["while rendering template page.html, line 4"]


def test_block_info_describes_nesting() -> None:
    program = compile_template(
        "${_BEGIN_A}${X}${_BEGIN_B}${Y}${_BEGIN_C}${_END_C}${_END_B}${_END_A}"
    )
    a, b, c = (program.blocks[name] for name in "ABC")
    assert (a.parent, b.parent, c.parent) == (None, "A", "B")
    assert (a.depth, b.depth, c.depth) == (1, 2, 3)
    assert a.names == {"X", "B", "Y", "C"}
    assert b.names == {"Y", "C"}
    assert c.names == frozenset()
    assert (a.children, b.children) == (("B",), ("C",))
    assert program.top_blocks == ("A",)
    assert program.variables == {"X", "Y"}


def nested(depth: int) -> str:
    opening = "".join(f"${{_BEGIN_B{level}}}<${{X}}" for level in range(depth))
    return opening + "".join(f"${{_END_B{level}}}>" for level in reversed(range(depth)))


@pytest.mark.parametrize("depth", [1, 16, 17, 20, 21, 100])
def test_nesting_depth_is_unlimited(depth: int) -> None:
    # CPython allows 20 nested loops per function; deeper blocks go to helper functions.
    context: dict[str, object] = {"X": "top"}
    row = context
    for level in range(depth):
        child: dict[str, object] = {"X": level} if level % 7 == 3 else {}
        row[f"B{level}"] = [child]
        row = child
    rendered = Template(nested(depth)).render(context)
    expected = "".join(
        f"<{max((n for n in range(level + 1) if n % 7 == 3), default='top')}"
        for level in range(depth)
    )
    assert rendered == expected + ">" * depth


def test_deep_helper_functions_keep_line_numbers_and_identifiers() -> None:
    source = "\n".join(f"${{_BEGIN_B{level}}}" for level in range(40)) + "${BAD}"
    source += "".join(f"${{_END_B{level}}}" for level in reversed(range(40)))
    template = Template(source, name="deep.html")
    assert "def _block" in template.python_source
    names = identifiers(template.python_source) - {"render"}
    assert all(GENERATED_NAME.match(name) for name in names), names
    context: dict[str, object] = {}
    row = context
    for level in range(40):
        child: dict[str, object] = {}
        row[f"B{level}"] = [child]
        row = child
    row["BAD"] = Exploding()
    with pytest.raises(RuntimeError) as info:
        template.render(context)
    assert info.value.__notes__ == ["while rendering template deep.html, line 40"]
