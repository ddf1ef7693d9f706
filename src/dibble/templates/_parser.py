"""Parser: tokens to a :class:`~._nodes.TemplateTree`.

Besides nesting the blocks, the parser enforces the rules that make a
template unambiguous to fill:

* every ``${_BEGIN_X}`` is closed by ``${_END_X}``, innermost first;
* a block name appears once in the whole template, because the imperative
  API (``begin_block("X")``) addresses blocks by name alone.

A block and a variable may share a name (``${_BEGIN_GROUP}<h2>${GROUP}</h2>``
is common in Astro-WISE templates): a name means whatever the innermost
scope holds for it, which is the rows in the scope around the block and,
typically, the row's own value inside it.

Each violation is a :class:`TemplateSyntaxError` naming the template and the
line of the offending marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._errors import TemplateSyntaxError
from ._lexer import Token, TokenKind, tokenize
from ._nodes import Block, Node, TemplateTree, Text, Variable

__all__ = ["parse"]


@dataclass
class _OpenBlock:
    name: str
    line: int
    body: list[Node] = field(default_factory=list)


def parse(source: str, name: str = "<string>") -> TemplateTree:
    """Lex and parse ``source``; ``name`` is used in error messages."""
    return _build(tokenize(source, name), name)


def _build(tokens: list[Token], name: str) -> TemplateTree:
    top: list[Node] = []
    stack: list[_OpenBlock] = []
    block_lines: dict[str, int] = {}

    def error(message: str, line: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(message, template=name, line=line)

    for token in tokens:
        body = stack[-1].body if stack else top
        if token.kind is TokenKind.TEXT:
            body.append(Text(token.value, token.line))
        elif token.kind is TokenKind.VARIABLE:
            body.append(Variable(token.value, token.line))
        elif token.kind is TokenKind.BEGIN:
            if token.value in block_lines:
                raise error(
                    f"block {token.value} is defined twice (first at line "
                    f"{block_lines[token.value]}); block names must be unique",
                    token.line,
                )
            block_lines[token.value] = token.line
            stack.append(_OpenBlock(token.value, token.line))
        else:
            if not stack:
                raise error(
                    f"${{_END_{token.value}}} without a matching ${{_BEGIN_{token.value}}}",
                    token.line,
                )
            opened = stack[-1]
            if opened.name != token.value:
                raise error(
                    f"${{_END_{token.value}}} closes ${{_BEGIN_{opened.name}}} "
                    f"(line {opened.line}); expected ${{_END_{opened.name}}}",
                    token.line,
                )
            stack.pop()
            parent = stack[-1].body if stack else top
            parent.append(Block(opened.name, tuple(opened.body), opened.line, token.line))
    if stack:
        unclosed = stack[-1]
        raise error(
            f"${{_BEGIN_{unclosed.name}}} is never closed (expected ${{_END_{unclosed.name}}})",
            unclosed.line,
        )
    return TemplateTree(name, tuple(top))
