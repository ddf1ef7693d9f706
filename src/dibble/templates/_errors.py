"""The template layer's exceptions and warning.

Every error names the template (its file path, or the name given to a
template made from a string) and, where one exists, the line in it, so a
message can be acted on without a debugger.  ``str(error)`` reads
``report.html, line 12: ${_END_ROW} closes ${_BEGIN_TABLE} ...``.
"""

from __future__ import annotations

import functools
from typing import Any


class TemplateError(Exception):
    """Base class of everything the template engine raises."""

    def __init__(self, message: str, *, template: str, line: int | None = None) -> None:
        self.message = message
        self.template = template
        self.line = line
        where = template if line is None else f"{template}, line {line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only arguments need spelling out for pickle (and so for
        # errors crossing a process boundary, as with worker processes).
        return (
            functools.partial(type(self), template=self.template, line=self.line),
            (self.message,),
        )


class TemplateSyntaxError(TemplateError):
    """The template text is malformed: unbalanced, misnamed or duplicated block markers."""


class TemplateFileError(TemplateError):
    """A template file cannot be found, read or decoded."""


class TemplateBlockError(TemplateError):
    """The imperative API named a block the template does not have, or misused one."""


class TemplateValueError(TemplateError):
    """A value given for a block is not a list of mappings (nor None, a bool or a mapping)."""


class TemplateWarning(UserWarning):
    """A variable never filled or a value never used (``warn_on_not_used_vars``)."""
