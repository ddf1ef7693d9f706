"""``warn_on_not_used_vars``: report variables never filled and values never used.

The compiled render function does not track what it looked up (that would
cost every render); when warnings are on, this module walks the tree beside
the values instead, once per render.  It resolves names exactly as the
compiled code does (innermost repetition first, then outward) and reports:

* a variable or block that no scope provides a value for;
* a top-level value whose name the template never uses;
* a row value whose name its block (and the blocks inside it) never uses.

Rows given as a one-shot iterator (a generator) are not inspected, since
reading them here would leave nothing for the render itself.

Each problem is reported once per render as a :class:`TemplateWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping

from ._compiler import Program
from ._errors import TemplateWarning
from ._nodes import Block, Node, Variable
from ._runtime import as_row, block_rows

__all__ = ["check_usage"]


def check_usage(
    program: Program,
    context: Mapping[str, object],
    *,
    stacklevel: int,
    report_unfilled_blocks: bool = True,
) -> None:
    """Warn about every unfilled name and unused value of one render.

    ``stacklevel`` is that of the caller's caller, as for ``warnings.warn``.
    """
    problems: dict[str, None] = {}  # an ordered set: warn in template order, once each

    def report(message: str, line: int | None = None) -> None:
        where = program.name if line is None else f"{program.name}, line {line}"
        problems.setdefault(f"{where}: {message}")

    for key in context:
        if key not in program.names:
            report(f"value {key!r} is set but the template never uses it")

    def visit(body: tuple[Node, ...], chain: tuple[Mapping[str, object], ...]) -> None:
        for node in body:
            if isinstance(node, Variable):
                if not any(node.name in scope for scope in chain):
                    report(f"variable ${{{node.name}}} is never filled", node.line)
            elif isinstance(node, Block):
                visit_block(node, chain)

    def visit_block(node: Block, chain: tuple[Mapping[str, object], ...]) -> None:
        for scope in chain:
            if node.name in scope:
                value = scope[node.name]
                break
        else:
            if report_unfilled_blocks:
                report(f"block {node.name} is never filled", node.line)
            return
        if isinstance(value, Iterator):
            return  # a one-shot iterator: reading it here would leave nothing to render
        allowed = program.blocks[node.name].names
        for raw_row in block_rows(value, node.name, program.name, node.line):
            row = as_row(raw_row, node.name, program.name, node.line)
            for key in row:
                if key not in allowed:
                    report(
                        f"value {key!r} in a row of block {node.name} is never used by the block",
                        node.line,
                    )
            visit(node.body, (row, *chain))

    visit(program.tree.body, (context,))
    for message in problems:
        warnings.warn(message, TemplateWarning, stacklevel=stacklevel + 1)
