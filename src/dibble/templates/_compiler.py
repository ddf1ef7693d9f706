"""Compiler: a template tree to one Python function, compiled once and cached.

A template becomes the source of one function ``render(_ctx)`` that
takes the top-level values as a dict and returns the page.  Reading the
generated code (``Template.python_source``) is the best way to understand
this module; for::

    <h1>${TITLE}</h1>${_BEGIN_ROW}<td>${NAME}</td>${_END_ROW}

it is, give or take the helper bindings::

    def render(_ctx):
        _out = []
        _a = _out.append
        _v0_0 = _ctx.get('TITLE')
        _v1_0 = _ctx.get('ROW')
        _v2_0 = _ctx.get('NAME')
        _x0_0 = _esc(_v0_0)
        _a('<h1>' f'{_x0_0}' '</h1>')
        for _r1 in _rows(_v1_0, 'ROW', _NAME, 1):
            if _r1.__class__ is not _dict: _r1 = _as_row(_r1, 'ROW', _NAME, 1)
            _v2_1 = _r1.get('NAME', _v2_0)
            _x2_1 = _esc(_v2_1)
            _a('<td>' f'{_x2_1}' '</td>')
        return ''.join(_out)

A block nested more than 16 loops deep inside one function continues in a
function of its own (``_block3(_a, ...)``, given the outer values it may
fall back to), because CPython allows only 20 nested blocks per function;
nesting depth is therefore unlimited and ordinary templates never see this.

The invariants, which the rest of the engine and its tests rely on:

1. **Template text never becomes code.**  Literal text and names enter the
   generated source only as ``repr()`` of a ``str``; every identifier in the
   source is generated here (``_v3_1``, ``_r2``), never taken from the
   template.  The code runs with an empty ``__builtins__`` and sees only the
   helpers put in its namespace.  A template therefore cannot run Python;
   the worst it can do is ask for a value by name.
2. **Every value passes through exactly one conversion** (``escape_value``
   with autoescape, ``text_value`` without) before it is output, and the
   conversion returns an exact ``str``.
3. **Resolution is innermost first, then outward, and done once per scope.**
   A *scope* is the top level or one repetition of a block at depth *d*.
   Each name used anywhere below a scope gets a local there:
   ``raw(n, 0) = _ctx.get(n)`` and ``raw(n, d) = row_d.get(n, raw(n, d-1))``.
   So a row value shadows an outer one, a missing key falls back outward at
   the cost of one ``dict.get``, and no lookup is repeated per use.  Block
   values resolve the same way as variables.
4. **One list, one join.**  All output is appended to a single list bound to
   a local ``append``; runs of literal text and values between block markers
   are one implicitly concatenated f-string, which CPython builds in one
   step (``BUILD_STRING``).
5. **Every generated line maps to a template line** (``Program.line_map``),
   so an exception raised while rendering (a value whose ``__str__`` fails)
   is annotated with the template's name and line.

Compilation is pure: the same text, name and escaping mode always give the
same source.  :func:`compile_template` caches its results by those three.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType, FunctionType, MappingProxyType, TracebackType

from ._nodes import Block, Node, TemplateTree, Text, Variable, walk
from ._parser import parse
from ._runtime import as_row, block_rows, escape_value, text_value

__all__ = ["BlockInfo", "Program", "compile_template", "compile_tree"]

RenderFunction = Callable[[dict[str, object]], str]


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What the imperative API and the usage checks need to know about a block."""

    name: str
    line: int
    parent: str | None
    depth: int
    names: frozenset[str]
    """Variables and blocks used anywhere inside the block: the keys a row may usefully have."""
    children: tuple[str, ...]
    """The blocks directly inside this one."""


@dataclass(frozen=True, eq=False, slots=True)
class Program:
    """A compiled template: the tree, the generated source and the function."""

    name: str
    autoescape: bool
    tree: TemplateTree
    python_source: str
    function: RenderFunction
    line_map: tuple[int, ...]
    codes: frozenset[CodeType]
    """The code of ``function`` and of the functions it calls for deeply nested blocks."""
    blocks: Mapping[str, BlockInfo]
    variables: frozenset[str]
    names: frozenset[str]
    top_blocks: tuple[str, ...]

    def template_line(self, traceback: TracebackType | None) -> int | None:
        """The template line being rendered where ``traceback`` left this program's code."""
        line = None
        while traceback is not None:
            if traceback.tb_frame.f_code in self.codes:
                index = traceback.tb_lineno - 1
                if 0 <= index < len(self.line_map) and self.line_map[index]:
                    line = self.line_map[index]
            traceback = traceback.tb_next
        return line


def _first_lines(body: tuple[Node, ...]) -> dict[str, int]:
    """Each name used in ``body`` (at any depth) with the line of its first use."""
    lines: dict[str, int] = {}
    for node in walk(body):
        if isinstance(node, Variable | Block):
            lines.setdefault(node.name, node.line)
    return lines


# CPython refuses more than 20 statically nested blocks in one function
# ("too many statically nested blocks"); a block nested deeper than this many
# loops continues in a function of its own, so nesting depth is unlimited.
_LOOPS_PER_FUNCTION = 16

_HELPER_BINDINGS = ("_esc = _CONVERT", "_rows = _BLOCK_ROWS", "_as_row = _AS_ROW", "_dict = _DICT")


@dataclass
class _Function:
    """The generated lines of one function, with the template line of each."""

    lines: list[str]
    line_map: list[int]
    loops: int = 0


class _CodeGenerator:
    def __init__(self, tree: TemplateTree, autoescape: bool) -> None:
        self.tree = tree
        self.autoescape = autoescape
        self.slots: dict[str, int] = {}
        self.functions: list[_Function] = []
        self.function = self.new_function()

    def new_function(self) -> _Function:
        function = _Function([], [])
        self.functions.append(function)
        return function

    def emit(self, code: str, indent: int, line: int = 0) -> None:
        self.function.lines.append("    " * indent + code)
        self.function.line_map.append(line)

    def slot(self, name: str) -> int:
        return self.slots.setdefault(name, len(self.slots))

    def generate(self) -> tuple[str, list[int]]:
        """The module source and, for each of its lines, the template line (0: none)."""
        self.emit("def render(_ctx):", 0)
        # Helpers bound to locals: LOAD_FAST is the cheapest load there is.
        for binding in _HELPER_BINDINGS:
            self.emit(binding, 1)
        self.emit("_out = []", 1)
        self.emit("_a = _out.append", 1)
        self.scope(self.tree.body, 0, 1)
        self.emit("return ''.join(_out)", 1)
        lines = [line for function in self.functions for line in function.lines]
        line_map = [line for function in self.functions for line in function.line_map]
        return "\n".join(lines) + "\n", line_map

    def scope(self, body: tuple[Node, ...], depth: int, indent: int) -> None:
        """Bind every name used below this scope, then emit the body."""
        used = _first_lines(body)
        for name in used:
            self.slot(name)
        for name, line in sorted(used.items(), key=lambda item: self.slots[item[0]]):
            index = self.slots[name]
            if depth == 0:
                self.emit(f"_v{index}_0 = _ctx.get({name!r})", indent, line)
            else:
                self.emit(
                    f"_v{index}_{depth} = _r{depth}.get({name!r}, _v{index}_{depth - 1})",
                    indent,
                    line,
                )
        converted: set[str] = set()
        for node in body:
            if isinstance(node, Variable) and node.name not in converted:
                converted.add(node.name)
                index = self.slots[node.name]
                self.emit(f"_x{index}_{depth} = _esc(_v{index}_{depth})", indent, node.line)
        self.body(body, depth, indent)

    def body(self, body: tuple[Node, ...], depth: int, indent: int) -> None:
        pieces: list[str] = []
        first_line = 0

        def flush() -> None:
            if pieces:
                self.emit(f"_a({' '.join(pieces)})", indent, first_line)
                pieces.clear()

        for node in body:
            if isinstance(node, Block):
                flush()
                self.block(node, depth, indent)
                continue
            if not pieces:
                first_line = node.line
            if isinstance(node, Text):
                pieces.append(repr(node.text))
            else:
                pieces.append(f"f'{{_x{self.slots[node.name]}_{depth}}}'")
        flush()

    def block(self, node: Block, depth: int, indent: int) -> None:
        if self.function.loops >= _LOOPS_PER_FUNCTION:
            self.block_in_new_function(node, depth, indent)
            return
        inner = depth + 1
        row = f"_r{inner}"
        where = f"{node.name!r}, _NAME, {node.line}"
        self.emit(
            f"for {row} in _rows(_v{self.slots[node.name]}_{depth}, {where}):", indent, node.line
        )
        # Rows are almost always dicts; anything else is copied to one once,
        # so that the per-value lookups below can all be dict.get.
        self.emit(
            f"if {row}.__class__ is not _dict: {row} = _as_row({row}, {where})",
            indent + 1,
            node.line,
        )
        self.function.loops += 1
        self.scope(node.body, inner, indent + 1)
        self.function.loops -= 1

    def block_in_new_function(self, node: Block, depth: int, indent: int) -> None:
        """Emit ``node`` as a call to a new function that gets the outer values it needs."""
        needed = [node.name, *_first_lines(node.body)]
        parameters = ", ".join(
            f"_v{self.slots[name]}_{depth}" for name in sorted(needed, key=self.slots.__getitem__)
        )
        function_name = f"_block{len(self.functions)}"
        self.emit(f"{function_name}(_a, {parameters})", indent, node.line)
        outer = self.function
        self.function = self.new_function()
        self.emit(f"def {function_name}(_a, {parameters}):", 0, node.line)
        for binding in _HELPER_BINDINGS:
            self.emit(binding, 1)
        self.block(node, depth, 1)
        self.function = outer


def _block_infos(tree: TemplateTree) -> dict[str, BlockInfo]:
    infos: dict[str, BlockInfo] = {}

    def visit(body: tuple[Node, ...], parent: str | None, depth: int) -> None:
        for node in body:
            if isinstance(node, Block):
                children = tuple(child.name for child in node.body if isinstance(child, Block))
                infos[node.name] = BlockInfo(
                    name=node.name,
                    line=node.line,
                    parent=parent,
                    depth=depth + 1,
                    names=frozenset(_first_lines(node.body)),
                    children=children,
                )
                visit(node.body, node.name, depth + 1)

    visit(tree.body, None, 0)
    return infos


def compile_tree(tree: TemplateTree, *, autoescape: bool = True) -> Program:
    """Generate, compile and load the render function for a parsed template."""
    source, line_map = _CodeGenerator(tree, autoescape).generate()
    filename = f"<template {tree.name}>"
    code = compile(source, filename, "exec")
    namespace: dict[str, object] = {
        "__builtins__": {},
        "_CONVERT": escape_value if autoescape else text_value,
        "_BLOCK_ROWS": block_rows,
        "_AS_ROW": as_row,
        "_DICT": dict,
        "_NAME": tree.name,
    }
    exec(code, namespace)  # noqa: S102  # our own generated code; see invariant 1
    function = namespace["render"]
    assert isinstance(function, FunctionType)
    # Only the functions the generated source defined, not the helpers passed in.
    codes = frozenset(
        value.__code__
        for value in namespace.values()
        if isinstance(value, FunctionType) and value.__code__.co_filename == filename
    )
    all_nodes = list(walk(tree.body))
    return Program(
        name=tree.name,
        autoescape=autoescape,
        tree=tree,
        python_source=source,
        function=function,
        line_map=tuple(line_map),
        codes=codes,
        blocks=MappingProxyType(_block_infos(tree)),
        variables=frozenset(node.name for node in all_nodes if isinstance(node, Variable)),
        names=frozenset(_first_lines(tree.body)),
        top_blocks=tuple(node.name for node in tree.body if isinstance(node, Block)),
    )


@functools.lru_cache(maxsize=256)
def compile_template(source: str, name: str = "<string>", *, autoescape: bool = True) -> Program:
    """Parse and compile ``source``; results are cached by (source, name, autoescape)."""
    return compile_tree(parse(source, name), autoescape=autoescape)
