"""The syntax tree: what the parser builds and the compiler walks.

A template is a sequence of three kinds of node.  Nodes are frozen and hold
only tuples, so a parsed tree can be shared between threads and cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Block", "Node", "TemplateTree", "Text", "Variable", "walk"]


@dataclass(frozen=True, slots=True)
class Text:
    """Literal template text, output as it is."""

    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Variable:
    """``${name}``: a value looked up in the innermost repetition first, then outward."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Block:
    """``${_BEGIN_name}`` body ``${_END_name}``: the body repeated once per row."""

    name: str
    body: tuple[Node, ...]
    line: int
    end_line: int


Node = Text | Variable | Block


@dataclass(frozen=True, slots=True)
class TemplateTree:
    """A whole parsed template: its name (for messages) and its top-level nodes."""

    name: str
    body: tuple[Node, ...]


def walk(body: tuple[Node, ...]) -> Iterator[Node]:
    """Every node in ``body`` and below it, depth first, in template order."""
    for node in body:
        yield node
        if isinstance(node, Block):
            yield from walk(node.body)
