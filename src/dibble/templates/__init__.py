"""dibble's template engine: ``${VAR}`` variables and nested repeating blocks.

::

    from dibble.templates import Template

    page = Template("<h1>${TITLE}</h1><ul>${_BEGIN_ITEM}<li>${NAME}</li>${_END_ITEM}</ul>")
    page.render(TITLE="Fruit", ITEM=[{"NAME": "apple"}, {"NAME": "pear"}])

Templates are lexed, parsed and compiled to a Python function once; values
are HTML-escaped unless wrapped in :class:`TrustedHTML`.  See
``docs/templates.md`` for the syntax and both ways of filling a template.
"""

from __future__ import annotations

from ..html import TrustedHTML
from ._errors import (
    TemplateBlockError,
    TemplateError,
    TemplateFileError,
    TemplateSyntaxError,
    TemplateValueError,
    TemplateWarning,
)
from ._loader import TemplateLoader
from ._template import Template

__all__ = [
    "Template",
    "TemplateBlockError",
    "TemplateError",
    "TemplateFileError",
    "TemplateLoader",
    "TemplateSyntaxError",
    "TemplateValueError",
    "TemplateWarning",
    "TrustedHTML",
]
