"""Jinja2 templates with dibble's conventions, for those who prefer Jinja's syntax.

Install with ``pip install 'dibble[jinja]'``.  :class:`JinjaLoader` has the
shape of :class:`~dibble.templates.TemplateLoader` (``get(name)``,
``render(name, **values)``), and the same defaults: autoescape on, templates
reloaded when their file changes, :class:`~dibble.html.TrustedHTML` values
inserted as they are (Jinja honours ``__html__``).  Jinja's own errors are
translated at this boundary: a missing file is a
:class:`~dibble.templates.TemplateFileError` and a syntax error a
:class:`~dibble.templates.TemplateSyntaxError`, each with name and line.
With ``warn_on_not_used_vars`` an undefined variable that is output gives a
:class:`~dibble.templates.TemplateWarning`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

try:
    import jinja2
except ImportError as exc:  # pragma: no cover - exercised by a test that hides jinja2
    raise ImportError(
        "dibble.templates.jinja needs Jinja2, which is not installed; "
        "install it with: pip install 'dibble[jinja]'"
    ) from exc

from ._errors import TemplateFileError, TemplateSyntaxError, TemplateWarning

__all__ = ["JinjaLoader", "JinjaTemplate"]


class _WarningUndefined(jinja2.Undefined):
    """Renders as empty text, like dibble's own templates, but warns."""

    __slots__ = ()

    def __str__(self) -> str:
        warnings.warn(
            f"variable {self._undefined_name!r} is never filled", TemplateWarning, stacklevel=2
        )
        return ""


class JinjaTemplate:
    """A compiled Jinja2 template with dibble's ``render(context, **values)`` signature."""

    def __init__(self, template: jinja2.Template) -> None:
        self.jinja_template = template

    @property
    def name(self) -> str:
        return self.jinja_template.name or "<string>"

    def render(self, context: Mapping[str, object] | None = None, /, **values: object) -> str:
        """Render with the values of ``context`` and the keyword arguments."""
        merged: dict[str, Any] = dict(context or {})
        merged.update(values)
        return self.jinja_template.render(merged)


class JinjaLoader:
    """Jinja2 templates from ``directory``; other keyword arguments configure the Environment."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        encoding: str = "utf-8",
        autoescape: bool = True,
        warn_on_not_used_vars: bool = False,
        auto_reload: bool = True,
        **environment_options: Any,
    ) -> None:
        self.directory = directory
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory, encoding=encoding),
            autoescape=autoescape,  # noqa: S701  # on unless the caller opts out
            auto_reload=auto_reload,
            undefined=_WarningUndefined if warn_on_not_used_vars else jinja2.Undefined,
            keep_trailing_newline=True,
            **environment_options,
        )

    def get(self, name: str) -> JinjaTemplate:
        """The template ``name`` (compiled once, recompiled when the file changes)."""
        try:
            return JinjaTemplate(self.environment.get_template(name))
        except jinja2.TemplateNotFound as exc:
            raise TemplateFileError("template not found", template=name) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(
                exc.message or "syntax error", template=exc.filename or name, line=exc.lineno
            ) from exc

    def from_string(self, source: str) -> JinjaTemplate:
        """A template from text, with this loader's settings."""
        try:
            return JinjaTemplate(self.environment.from_string(source))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(
                exc.message or "syntax error", template="<string>", line=exc.lineno
            ) from exc

    def render(
        self, name: str, context: Mapping[str, object] | None = None, /, **values: object
    ) -> str:
        """``get(name).render(context, **values)``."""
        return self.get(name).render(context, **values)
