"""``Template``: a compiled template and the two ways to fill it.

``render(**values)`` is stateless and thread-safe: a block gets a list of
dicts, a nested block a list inside each of those dicts.

The imperative API is the Astro-WISE ``HtmlTemplate`` model, kept because a
lot of page code is written that way and because it suits pages built in
loops.  The template object holds a tree of *repetitions*: the top level is
one repetition that never closes; ``begin_block(X)`` opens a new repetition
of ``X`` inside the open repetition of its enclosing block;
``set_block_variable`` writes into the most recently begun repetition that is
still open; ``update_block(X)`` closes the open repetition of ``X`` and
appends it, with whatever repetitions of inner blocks were appended into it,
to its enclosing repetition.  ``get_html()`` turns the tree into the same
nested lists ``render()`` takes and renders them.  An imperative template is
therefore one page's worth of state: make one per page (the loader hands out
a fresh one per call), never share one between threads.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from ._checks import check_usage
from ._compiler import BlockInfo, Program, compile_template
from ._errors import TemplateBlockError, TemplateError, TemplateFileError, TemplateWarning

__all__ = ["Template", "read_source"]

Values = Mapping[str, object] | Iterable[tuple[str, object]]
"""A mapping of names to values, or an iterable of ``(name, value)`` pairs."""


def read_source(
    path: str | os.PathLike[str], encoding: str = "utf-8", *, name: str | None = None
) -> str:
    """The text of a template file; failures are :class:`TemplateFileError` naming ``name``."""
    name = os.fspath(path) if name is None else name
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TemplateFileError(f"cannot read template: {reason}", template=name) from exc
    try:
        source = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TemplateFileError(
            f"not valid {encoding} ({exc.reason} at byte {exc.start})", template=name, line=line
        ) from exc
    # Editors on Windows like to start UTF-8 files with a byte-order mark;
    # it is not part of the page.
    return source.removeprefix("\ufeff")


@dataclass
class _Repetition:
    """One repetition of a block (or the top level): its values and inner repetitions."""

    values: dict[str, object] = field(default_factory=dict)
    blocks: dict[str, list[_Repetition]] = field(default_factory=dict)

    def as_context(self) -> dict[str, object]:
        context = dict(self.values)
        for name, repetitions in self.blocks.items():
            context[name] = [repetition.as_context() for repetition in repetitions]
        return context


class Template:
    """A template with ``${VAR}`` variables and ``${_BEGIN_X}`` … ``${_END_X}`` blocks.

    ``Template(source, name=...)`` compiles ``source`` (compiled code is cached
    by text, so making the same template again is cheap);
    :meth:`from_file` reads a file.  ``name`` is what errors and warnings call
    the template.

    Values are converted with ``str()``; ``None`` renders as the empty string.
    With ``autoescape`` (the default) ``& < > " '`` in values are escaped,
    except in values that are trusted HTML (:class:`dibble.html.TrustedHTML`,
    or anything with an ``__html__`` method).  With ``warn_on_not_used_vars``
    every render warns (:class:`TemplateWarning`) about variables never filled
    and values never used.
    """

    def __init__(
        self,
        source: str,
        *,
        name: str = "<string>",
        autoescape: bool = True,
        warn_on_not_used_vars: bool = False,
    ) -> None:
        self._program = compile_template(source, name, autoescape=autoescape)
        self.warn_on_not_used_vars = warn_on_not_used_vars
        # Compatibility wrappers add a frame between the user and us; they
        # raise this so that warnings point at the user's line.
        self._warning_depth = 0
        self.reset()

    @classmethod
    def from_string(
        cls,
        source: str,
        *,
        name: str = "<string>",
        autoescape: bool = True,
        warn_on_not_used_vars: bool = False,
    ) -> Self:
        """The same as the constructor, for symmetry with :meth:`from_file`."""
        return cls(
            source, name=name, autoescape=autoescape, warn_on_not_used_vars=warn_on_not_used_vars
        )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        encoding: str = "utf-8",
        autoescape: bool = True,
        warn_on_not_used_vars: bool = False,
    ) -> Self:
        """Read and compile a template file; its path is the template's name.

        An unreadable or undecodable file raises :class:`TemplateFileError`.
        For templates used on every request prefer a
        :class:`~dibble.templates.TemplateLoader`, which also notices edits.
        """
        return cls(
            read_source(path, encoding),
            name=os.fspath(path),
            autoescape=autoescape,
            warn_on_not_used_vars=warn_on_not_used_vars,
        )

    @classmethod
    def _from_program(cls, program: Program, *, warn_on_not_used_vars: bool) -> Self:
        template = cls.__new__(cls)
        template._program = program
        template.warn_on_not_used_vars = warn_on_not_used_vars
        template._warning_depth = 0
        template.reset()
        return template

    # -- what the template is -------------------------------------------------

    @property
    def name(self) -> str:
        """The file path or the name given; used in every error message."""
        return self._program.name

    @property
    def autoescape(self) -> bool:
        return self._program.autoescape

    @property
    def variables(self) -> frozenset[str]:
        """The names of all ``${VAR}`` variables, at any depth."""
        return self._program.variables

    @property
    def blocks(self) -> tuple[str, ...]:
        """The names of all blocks, in template order (outer before inner)."""
        return tuple(self._program.blocks)

    @property
    def python_source(self) -> str:
        """The generated Python source, for the curious and for debugging."""
        return self._program.python_source

    def __repr__(self) -> str:
        return f"<Template {self.name!r}>"

    # -- render: the stateless API -------------------------------------------

    def render(self, context: Mapping[str, object] | None = None, /, **values: object) -> str:
        """Fill the template from ``context`` and/or keyword arguments and return the text.

        Top-level variables are keys; a block is a key whose value is a list of
        dicts, one per repetition (``None``/``False``: none, ``True``: one with
        no values of its own, a single mapping: one).  Inside a block a variable
        is looked up in its row first, then in the enclosing rows, then at the
        top level.  Missing values render as the empty string.  This method
        does not read or change the imperative API's state.
        """
        merged = values if context is None else {**context, **values}
        if self.warn_on_not_used_vars:
            check_usage(self._program, merged, stacklevel=2 + self._warning_depth)
        return self._run(merged)

    def _run(self, context: dict[str, object]) -> str:
        try:
            return self._program.function(context)
        except TemplateError:
            raise
        except Exception as exc:
            line = self._program.template_line(exc.__traceback__)
            where = self.name if line is None else f"{self.name}, line {line}"
            exc.add_note(f"while rendering template {where}")
            raise

    # -- the imperative API --------------------------------------------------

    def reset(self) -> None:
        """Forget every value and repetition set through the imperative API."""
        self._root = _Repetition()
        self._open: dict[str, _Repetition] = {}
        self._begun: list[str] = []  # open blocks, in the order they were begun

    def set_variable(self, name: str, value: object) -> None:
        """Set a top-level variable (visible inside every block that has no value of its own)."""
        self._root.values[name] = value

    def set_variables(self, values: Values) -> None:
        """Set several top-level variables from a mapping or ``(name, value)`` pairs."""
        self._root.values.update(values)

    def begin_block(self, name: str) -> None:
        """Open a new repetition of block ``name``.

        The enclosing block must have an open repetition; if it has none, one
        is opened.  An open repetition of ``name`` that was never updated is
        dropped (with a warning when ``warn_on_not_used_vars`` is on).
        """
        info = self._block(name)
        if info.parent is not None:
            self._open_repetition(info.parent)
        self._close(name)
        self._open[name] = _Repetition()
        self._begun.append(name)

    def set_block_variable(self, name: str, value: object) -> None:
        """Set ``name`` in the most recently begun repetition that is still open."""
        self._current().values[name] = value

    def set_block_variables(self, values: Values) -> None:
        """:meth:`set_block_variable` for a mapping or ``(name, value)`` pairs."""
        self._current().values.update(values)

    def update_block(self, name: str) -> None:
        """Close the open repetition of ``name`` and append it to its enclosing repetition.

        Repetitions of inner blocks appended since ``begin_block(name)`` go
        with it.  Without a ``begin_block`` this appends a repetition with no
        values of its own.
        """
        info = self._block(name)
        repetition = self._open_repetition(name)
        container = self._container(info)
        self._close(name, keep=repetition)
        container.blocks.setdefault(name, []).append(repetition)

    insert_repeating_block = update_block
    """The Astro-WISE name of :meth:`update_block`."""

    def insert_block(self, name: str, values: Values | None = None) -> None:
        """Append one whole repetition of ``name`` at once, with ``values`` as its own.

        Use it for a section shown once (``${_BEGIN_ERROR}…${_END_ERROR}``); it
        does not touch an open repetition of ``name``.
        """
        info = self._block(name)
        container = self._container(info)
        container.blocks.setdefault(name, []).append(_Repetition(dict(values or {})))

    def get_html(self) -> str:
        """Render everything set so far.  The state is kept: calling again gives the same page."""
        if self.warn_on_not_used_vars:
            for name in self._open:
                self._warn(
                    f"block {name} (line {self._program.blocks[name].line}) was begun but "
                    "never updated; that repetition is left out",
                    stacklevel=2,
                )
        context = self._root.as_context()
        if self.warn_on_not_used_vars:
            # A block that was never updated is a deliberate "leave it out" in
            # this API, so only variables and values are checked.
            check_usage(
                self._program,
                context,
                stacklevel=2 + self._warning_depth,
                report_unfilled_blocks=False,
            )
        return self._run(context)

    def save(self, path: str | os.PathLike[str], *, encoding: str = "utf-8") -> None:
        """Write :meth:`get_html` to ``path``."""
        Path(path).write_text(self.get_html(), encoding=encoding)

    # -- helpers -------------------------------------------------------------

    def _block(self, name: str) -> BlockInfo:
        info = self._program.blocks.get(name)
        if info is None:
            close = difflib.get_close_matches(name, list(self._program.blocks), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(self._program.blocks) or "none"
            raise TemplateBlockError(
                f"no block named {name!r} (blocks: {known}){hint}", template=self.name
            )
        return info

    def _current(self) -> _Repetition:
        if not self._begun:
            raise TemplateBlockError(
                "set_block_variable() needs an open block: call begin_block() first",
                template=self.name,
            )
        return self._open[self._begun[-1]]

    def _open_repetition(self, name: str) -> _Repetition:
        """The open repetition of ``name``, opening it (and its ancestors) if needed."""
        repetition = self._open.get(name)
        if repetition is None:
            info = self._block(name)
            if info.parent is not None:
                self._open_repetition(info.parent)
            repetition = self._open[name] = _Repetition()
            self._begun.append(name)
        return repetition

    def _container(self, info: BlockInfo) -> _Repetition:
        return self._root if info.parent is None else self._open_repetition(info.parent)

    def _is_inside(self, name: str, ancestor: str) -> bool:
        parent: str | None = name
        while parent is not None:
            if parent == ancestor:
                return True
            parent = self._program.blocks[parent].parent
        return False

    def _close(self, name: str, keep: _Repetition | None = None) -> None:
        """Close ``name`` and every open block inside it; drop all but ``keep``."""
        for open_name in [n for n in self._begun if self._is_inside(n, name)]:
            repetition = self._open.pop(open_name)
            self._begun.remove(open_name)
            if repetition is not keep and self.warn_on_not_used_vars:
                self._warn(
                    f"block {open_name} (line {self._program.blocks[open_name].line}) was "
                    "begun but never updated; that repetition is dropped",
                    stacklevel=3,
                )

    def _warn(self, message: str, *, stacklevel: int) -> None:
        warnings.warn(
            f"{self.name}: {message}",
            TemplateWarning,
            stacklevel=stacklevel + 1 + self._warning_depth,
        )
