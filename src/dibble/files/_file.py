"""One file as a response: validators, preconditions, ranges (``file_response``, ``send_file``)."""

from __future__ import annotations

import functools
import mimetypes
import os
import stat
from collections.abc import Mapping
from typing import Final

from ..app import HTTPError, Request, get_request
from ..http import http_date
from ._conditional import evaluate_preconditions, if_range_allows, make_etag
from ._ranges import content_range, multipart_pieces, new_boundary, parse_ranges
from ._send import FileResponse, Piece

_TEXT_TYPES: Final = frozenset(
    {"application/javascript", "text/javascript", "application/x-javascript"}
)
_NO_TYPES: Final[Mapping[str, str]] = {}

# A server sends the same few files again and again: their dates are rendered once.
_last_modified: Final = functools.lru_cache(maxsize=1024)(http_date)


def guess_type(name: str, types: Mapping[str, str] = _NO_TYPES, charset: str = "utf-8") -> str:
    """A file's ``Content-Type`` by extension (``types`` first), with ``charset`` for text."""
    name = name.rsplit("/", 1)[-1]
    _, ext = os.path.splitext(name)
    guessed = types.get(ext.lower())
    if guessed is None:
        guessed, encoding = mimetypes.guess_type(name, strict=False)
        if guessed is None or encoding is not None:
            # A .gz or .bz2 file is sent as what it is, not as what it contains.
            return "application/octet-stream"
    if "charset=" not in guessed and (guessed.startswith("text/") or guessed in _TEXT_TYPES):
        guessed += f"; charset={charset}"
    return guessed


def file_response(
    request: Request,
    fd: int,
    status: os.stat_result,
    content_type: str,
    *,
    cache_control: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    sendfile: bool = True,
    send_timeout: float = 60.0,
) -> FileResponse:
    """The response to GET or HEAD of the open regular file ``fd`` (``status`` its fstat).

    Preconditions (304/412), ``Range`` (206, multipart/byteranges, 416) and
    ``If-Range`` are applied.  The response owns ``fd`` from here on: it is
    closed when sent, or now if this raises.
    """
    try:
        return _file_response(
            request, fd, status, content_type, cache_control, headers or [], sendfile, send_timeout
        )
    except BaseException:
        os.close(fd)
        raise


def _file_response(
    request: Request,
    fd: int,
    status: os.stat_result,
    content_type: str,
    cache_control: str | None,
    extra: list[tuple[str, str]],
    sendfile: bool,
    timeout: float,
) -> FileResponse:
    etag = make_etag(status)
    modified = int(status.st_mtime)
    headers = [("ETag", etag), ("Last-Modified", _last_modified(modified))]
    if cache_control:
        headers.append(("Cache-Control", cache_control))
    headers.extend(extra)
    outcome = evaluate_preconditions(request.method, request.headers, etag, modified)
    if outcome is not None:
        os.close(fd)
        return FileResponse(None, outcome, headers)
    headers.append(("Accept-Ranges", "bytes"))
    headers.append(("X-Content-Type-Options", "nosniff"))
    size = status.st_size
    pieces: list[Piece] = [(0, size)] if size else []
    response_type = content_type
    code = 200
    range_field = request.headers.get("range") if request.method == "GET" else None
    if range_field is not None:
        if_range = request.headers.get("if-range")
        if if_range is None or if_range_allows(if_range, etag, modified):
            ranges = parse_ranges(range_field, size)
            if ranges == []:
                os.close(fd)
                headers.append(("Content-Range", f"bytes */{size}"))
                return FileResponse(None, 416, headers)
            if ranges is not None and len(ranges) == 1:
                first, last = ranges[0]
                headers.append(("Content-Range", content_range(first, last, size)))
                pieces = [(first, last - first + 1)]
                code = 206
            elif ranges is not None:
                boundary = new_boundary()
                pieces = multipart_pieces(ranges, size, content_type, boundary)
                response_type = f"multipart/byteranges; boundary={boundary}"
                code = 206
    return FileResponse(
        fd, code, headers, response_type, pieces, sendfile=sendfile, send_timeout=timeout
    )


def send_file(
    path: str | os.PathLike[str],
    *,
    content_type: str | None = None,
    download_name: str | None = None,
    cache_control: str | None = "no-cache",
) -> FileResponse:
    """Return this from a methlet to send the file at ``path`` (ranges, 304s and all).

    ``download_name`` adds ``Content-Disposition: attachment`` (browsers save
    the file under that name).  A missing or non-regular file is a 404.  The
    path is the methlet's to choose: never build it from request input
    without the checks ``StaticFiles`` makes.
    """
    request = get_request()
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        )
    except OSError:
        raise HTTPError(404, "not found") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise HTTPError(404, "not found")
        extra = []
        if download_name is not None:
            if not download_name or any(c in download_name for c in '"\\\r\n/'):
                raise ValueError(f"not a plain file name for a download: {download_name!r}")
            extra.append(("Content-Disposition", f'attachment; filename="{download_name}"'))
        kind = content_type or guess_type(os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return file_response(request, fd, status, kind, cache_control=cache_control, headers=extra)
