"""Lexer: template text to a flat list of tokens.

The syntax is deliberately tiny.  ``${NAME}`` is a variable, where NAME is an
ASCII identifier (``[A-Za-z_][A-Za-z0-9_]*``).  ``${_BEGIN_X}`` and
``${_END_X}`` open and close the repeating block ``X``.  ``$${NAME}`` is the
escape for a literal ``${NAME}`` (useful for JavaScript template strings).
Anything else, including a ``${`` whose contents are not a bare identifier
(``${a.b}``, ``${ x }``, ``${x + 1}``), is literal text: the template language
has no expressions, so there is nothing there to evaluate and no way for a
template to run code.

Every token carries the 1-based line on which it starts.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ._errors import TemplateSyntaxError

__all__ = ["Token", "TokenKind", "tokenize"]

BEGIN_PREFIX = "_BEGIN_"
END_PREFIX = "_END_"

_PLACEHOLDER = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TokenKind(enum.Enum):
    TEXT = "text"
    VARIABLE = "variable"
    BEGIN = "begin"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical unit: literal text, a variable, or a block marker.

    ``value`` is the text for ``TEXT`` and the bare name (without the
    ``_BEGIN_``/``_END_`` prefix) for the other kinds.
    """

    kind: TokenKind
    value: str
    line: int


def tokenize(source: str, name: str = "<string>") -> list[Token]:
    """Split ``source`` into tokens; adjacent literal text is merged into one token."""
    tokens: list[Token] = []
    text_parts: list[str] = []
    text_line = 1
    line = 1
    position = 0

    def flush_text() -> None:
        if text_parts:
            tokens.append(Token(TokenKind.TEXT, "".join(text_parts), text_line))
            text_parts.clear()

    for match in _PLACEHOLDER.finditer(source):
        before = source[position : match.start()]
        if before:
            if not text_parts:
                text_line = line
            text_parts.append(before)
            line += before.count("\n")
        position = match.end()
        escaped, word = match.groups()
        if escaped:
            if not text_parts:
                text_line = line
            text_parts.append("${" + word + "}")
            continue
        flush_text()
        tokens.append(_placeholder_token(word, line, name))
    rest = source[position:]
    if rest:
        if not text_parts:
            text_line = line
        text_parts.append(rest)
    flush_text()
    return tokens


def _placeholder_token(word: str, line: int, name: str) -> Token:
    for prefix, kind in ((BEGIN_PREFIX, TokenKind.BEGIN), (END_PREFIX, TokenKind.END)):
        if word.startswith(prefix):
            block = word[len(prefix) :]
            if not block:
                raise TemplateSyntaxError(
                    f"block marker ${{{word}}} has no block name", template=name, line=line
                )
            return Token(kind, block, line)
    return Token(TokenKind.VARIABLE, word, line)
