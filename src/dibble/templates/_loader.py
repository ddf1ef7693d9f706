"""``TemplateLoader``: a directory of templates, compiled once, recompiled on change.

Pages ask the loader for a template on every request, so the common case is
one ``os.stat`` and a dict lookup: the compiled program is kept with the
file's checked real path and (mtime, size, inode) stamp, and reused while
the stamp is unchanged.
When the stamp changes (the file was edited or replaced) the next request
compiles it again.  Compiling happens under a lock so that two threads that
notice the same change compile once; lookups take no lock.

Every call hands out a fresh :class:`Template` that shares the compiled
program, so the imperative API's per-page state is never shared between
requests.  Names are paths relative to the directory; a name that resolves
outside it (``..``, an absolute path, a symlink pointing elsewhere) is
refused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._compiler import Program, compile_tree
from ._errors import TemplateFileError
from ._parser import parse
from ._template import Template, read_source

__all__ = ["TemplateLoader"]

_Stamp = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Entry:
    path: str  # the real path, checked to be inside the directory
    stamp: _Stamp
    program: Program


class TemplateLoader:
    """Templates from ``directory``, by relative name: ``loader.get("report.html")``.

    ``autoescape`` and ``warn_on_not_used_vars`` apply to every template the
    loader hands out (the server turns warnings on in test mode).  With
    ``auto_reload`` false the files are read once and never checked again,
    which saves one ``stat`` per request in production.  The loader is safe to
    share between threads.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        encoding: str = "utf-8",
        autoescape: bool = True,
        warn_on_not_used_vars: bool = False,
        auto_reload: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.encoding = encoding
        self.autoescape = autoescape
        self.warn_on_not_used_vars = warn_on_not_used_vars
        self.auto_reload = auto_reload
        self._root = os.path.realpath(directory)
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}

    def __repr__(self) -> str:
        return f"<TemplateLoader {os.fspath(self.directory)!r}>"

    def get(self, name: str) -> Template:
        """A fresh :class:`Template` for ``name``, compiled at most once per file version.

        Raises :class:`TemplateFileError` for a missing, unreadable or
        out-of-directory file and :class:`TemplateSyntaxError` for a
        malformed one (naming the file and line).
        """
        return Template._from_program(
            self._program(name), warn_on_not_used_vars=self.warn_on_not_used_vars
        )

    def render(
        self, name: str, context: Mapping[str, object] | None = None, /, **values: object
    ) -> str:
        """``get(name).render(context, **values)``."""
        template = self.get(name)
        template._warning_depth = 1  # warnings should point at our caller
        return template.render(context, **values)

    def path_of(self, name: str) -> str:
        """The real path of template ``name``, checked to be inside the directory."""
        shown = os.path.join(os.fspath(self.directory), name)
        if not name or "\x00" in name or os.path.isabs(name):
            raise TemplateFileError("not a relative template name", template=shown)
        path = os.path.realpath(os.path.join(self._root, name))
        if os.path.commonpath([path, self._root]) != self._root:
            raise TemplateFileError("outside the template directory", template=shown)
        return path

    def clear(self) -> None:
        """Forget every compiled template (they are compiled again on next use)."""
        with self._lock:
            self._cache.clear()

    def _program(self, name: str) -> Program:
        entry = self._cache.get(name)
        if entry is not None:
            if not self.auto_reload:
                return entry.program
            # The hot path: one stat of the path checked when it was loaded.
            # (Resolving the name again costs a realpath, several times more.)
            # A symlink retargeted meanwhile cannot lead outside the directory:
            # the checked path is what is stat'ed and read until it changes,
            # and a changed file has its name resolved and checked again.
            if self._stamp(entry.path, name) == entry.stamp:
                return entry.program
        path = self.path_of(name)
        stamp = self._stamp(path, name)
        with self._lock:
            entry = self._cache.get(name)
            if entry is not None and entry.path == path and entry.stamp == stamp:
                return entry.program  # another thread compiled it meanwhile
            # The stamp was taken before reading: if the file changes again
            # while we read it, the next call sees a newer stamp and recompiles.
            shown = os.path.join(os.fspath(self.directory), name)
            source = read_source(path, self.encoding, name=shown)
            program = compile_tree(parse(source, shown), autoescape=self.autoescape)
            self._cache[name] = _Entry(path, stamp, program)
            return program

    def _stamp(self, path: str, name: str) -> _Stamp:
        try:
            status = os.stat(path)
        except OSError as exc:
            shown = os.path.join(os.fspath(self.directory), name)
            reason = exc.strerror or type(exc).__name__
            raise TemplateFileError(f"cannot read template: {reason}", template=shown) from exc
        return (status.st_mtime_ns, status.st_size, status.st_ino)
