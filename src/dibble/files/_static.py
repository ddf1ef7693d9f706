"""``StaticFiles``: a directory served under a URL prefix.

It is an ordinary plugin that answers from ``on_unknown``: the router sends
every path under a prefix mount that no methlet claims to the mount's first
plugin, so methlets keep their one-lookup fast path and static files cost a
route resolution plus a few system calls.  Register it first at its prefix
(``server.static`` does): plugins registered later at the same prefix still
serve their methlets, and every other path falls through to the files.

Safety is in ``_paths`` (never outside the root, all refusals 404);
validators and preconditions in ``_conditional``; ranges in ``_ranges``;
sending (zero-copy, constant memory) in ``_send``; PUT and DELETE in
``_put``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import stat
from collections.abc import Mapping
from typing import Any, Final

from ..app import HTTPError, Plugin, Request, Response
from ..uploads import UploadOptions
from . import _listing, _put
from ._file import file_response, guess_type
from ._options import StaticOptions
from ._paths import Target, is_within, resolve
from ._send import FileResponse
from .urllist import absolute_urls, url_list

_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in must not block the open
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)  # the path is resolved: a link now is a race
)
_NOT_FOUND: Final = "not found"
#: File names whose types are remembered per mount (only files that exist get there).
_TYPE_CACHE_SIZE: Final = 4096


def _not_found() -> HTTPError:
    return HTTPError(404, _NOT_FOUND)


class StaticFiles(Plugin):
    """Serve ``directory`` at ``prefix`` (``server.static(prefix, directory)`` does both).

    Keyword arguments are ``StaticOptions`` fields, or pass ``options``.
    Subclasses may override the hooks: ``allow_listing``, ``exclude``,
    ``list_files``, ``authorize`` and ``cache_control_for``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        prefix: str = "",
        options: StaticOptions | None = None,
        **settings: Any,
    ) -> None:
        self.options = dataclasses.replace(options or StaticOptions(), **settings)
        self.directory = os.fspath(directory)
        self.root = os.path.realpath(self.directory)
        if not os.path.isdir(self.root):
            raise ValueError(f"static directory {self.directory!r} is not a directory")
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        if self.options.writable:
            # PUT bodies stream to nameless files in the root, on its file
            # system, so storing one is a link and a rename, not a copy.
            self.upload_options = UploadOptions(raw=True, temp_dir=self.root)
            if self.options.max_put_size is not None:
                # An instance attribute shadows Plugin.max_body_size (a class default).
                setattr(self, "max_body_size", self.options.max_put_size)  # noqa: B010
        else:
            # Nothing here takes a body: refuse one before reading it.
            setattr(self, "max_body_size", 0)  # noqa: B010
        types = dict(self.options.content_types)
        self._types = {ext.lower(): value for ext, value in types.items()}
        #: ``content_type_for`` by file name (bounded: see there).
        self._type_cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<StaticFiles {self.prefix or '/'} -> {self.root}>"

    # --- hooks ----------------------------------------------------------------

    def allow_listing(self, relative_dir: str) -> bool:
        """Whether the directory ``relative_dir`` ("" for the root) may be listed."""
        return self.options.listing

    def exclude(self, entry: _listing.ListingEntry) -> bool:
        """True to leave ``entry`` out of a listing (it can still be fetched)."""
        return False

    def list_files(
        self, relative_dir: str, entries: list[_listing.ListingEntry]
    ) -> list[_listing.ListingEntry]:
        """The entries to list for ``relative_dir``, after ``exclude``; reorder or add notes."""
        return entries

    def authorize(self, request: Request, method: str, relative_path: str) -> bool:
        """Whether ``method`` (PUT or DELETE) may change ``relative_path``; True allows."""
        hook = self.options.authorize
        return hook is not None and hook(request, method, relative_path) is True

    def cache_control_for(self, relative_path: str, status: os.stat_result) -> str | None:
        """The ``Cache-Control`` value for a file; the option by default."""
        return self.options.cache_control

    def content_type_for(self, relative_path: str) -> str:
        """The file's ``Content-Type``, by extension, with a charset for text."""
        name = relative_path.rsplit("/", 1)[-1]
        cached = self._type_cache.get(name)
        if cached is None:
            cached = guess_type(name, self._types, self.options.charset)
            if len(self._type_cache) < _TYPE_CACHE_SIZE:
                self._type_cache[name] = cached
        return cached

    # --- requests -----------------------------------------------------------------

    def on_unknown(self, path: str, params: Mapping[str, list[str]]) -> Any:
        request = self.request
        raw = request.raw_path
        prefix = self.prefix
        if prefix:
            if raw != prefix and not raw.startswith(prefix + "/"):
                raise _not_found()
            raw = raw[len(prefix) :]
        method = request.method
        if method in ("GET", "HEAD"):
            return self._get(request, raw)
        options = self.options
        if options.writable and method in ("PUT", "DELETE"):
            target = resolve(self.root, raw, allow_hidden=options.show_hidden)
            if target is None:
                raise _not_found()
            if not self.authorize(request, method, target.relative):
                raise HTTPError(403, f"{method} is not allowed here")
            if method == "PUT":
                return _put.put(request, self.root, target)
            return _put.delete(request, self.root, target)
        allow = "GET, HEAD, PUT, DELETE, OPTIONS" if options.writable else "GET, HEAD, OPTIONS"
        if method == "OPTIONS":
            return Response(b"", 204, headers=[("Allow", allow)])
        raise HTTPError(405, f"{method} is not allowed here", [("Allow", allow)])

    def _get(self, request: Request, raw: str) -> Any:
        options = self.options
        target = resolve(self.root, raw, allow_hidden=options.show_hidden)
        if target is None:
            raise _not_found()
        fd = _open(target.path)
        try:
            status = os.fstat(fd)
        except BaseException:
            _close(fd)
            raise
        if stat.S_ISDIR(status.st_mode):
            _close(fd)
            return self._directory(request, target, raw)
        if not stat.S_ISREG(status.st_mode) or target.trailing_slash:
            _close(fd)
            raise _not_found()
        return self.file_response(request, fd, status, target.relative)

    def file_response(
        self, request: Request, fd: int, status: os.stat_result, relative_path: str
    ) -> FileResponse:
        """The response for GET/HEAD of the open file ``fd``: conditional, ranged or whole.

        The response owns ``fd`` from here on (it is closed if this raises).
        """
        options = self.options
        try:
            cache_control = self.cache_control_for(relative_path, status)
            content_type = self.content_type_for(relative_path)
        except BaseException:
            _close(fd)
            raise
        return file_response(
            request,
            fd,
            status,
            content_type,
            cache_control=cache_control,
            sendfile=options.sendfile,
            send_timeout=options.send_timeout,
        )

    def _directory(self, request: Request, target: Target, raw: str) -> Any:
        if not target.trailing_slash:
            query = request.query_string
            location = self.prefix + raw + "/" + (f"?{query}" if query else "")
            return Response.redirect(location, 301)
        for name in self.options.index:
            candidate = os.path.realpath(os.path.join(target.path, name))
            if not is_within(self.root, candidate):
                continue
            try:
                fd = _open(candidate)
            except HTTPError:
                continue
            try:
                status = os.fstat(fd)
            except BaseException:
                _close(fd)
                raise
            if not stat.S_ISREG(status.st_mode):
                _close(fd)
                continue
            relative = os.path.relpath(candidate, self.root).replace(os.sep, "/")
            return self.file_response(request, fd, status, relative)
        if not self.allow_listing(target.relative):
            raise _not_found()
        return self._listing(request, target, raw)

    def _listing(self, request: Request, target: Target, raw: str) -> Response:
        options = self.options
        try:
            entries = _listing.scan(target.path, self.root, show_hidden=options.show_hidden)
        except OSError:
            raise _not_found() from None
        entries = self.list_files(target.relative, [e for e in entries if not self.exclude(e)])
        url_path = self.prefix + "/" + (target.relative + "/" if target.relative else "")
        if request.get("download") == "urls.txt":
            files = [url_path + e.name for e in entries if not e.is_dir]
            return url_list(absolute_urls(request, files))
        sort = request.get("sort") or "name"
        if sort not in _listing.SORT_KEYS:
            sort = "name"
        descending = request.get("order") == "desc"
        page = _listing.render(
            url_path,
            _listing.sort_entries(entries, sort, descending),
            sort=sort,
            descending=descending,
            at_root=not target.relative,
            url_list=True,
        )
        return Response(page, headers=[("Cache-Control", "no-cache")])


def _open(path: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            raise  # the server's trouble, not the client's: a 500
        raise _not_found() from None


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
