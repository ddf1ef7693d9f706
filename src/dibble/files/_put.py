"""PUT and DELETE of files below a static root, each durable before it is answered.

PUT: the body has streamed to a nameless temporary file in the root (the
mount's ``UploadOptions(raw=True, temp_dir=root)``); it is linked (or copied)
to a hidden temporary name in the target's directory, ``fsync``'ed, renamed
over the target, and the directory is ``fsync``'ed: a reader, or a crash,
sees the old file or the new one, never half of one.  201 when the file is
new, 204 when it replaced one.  The parent directory must exist (409).

DELETE: ``unlink`` and ``fsync`` of the directory; 204, or 404.

Both honour ``If-Match`` / ``If-None-Match`` / ``If-Unmodified-Since``
(``If-None-Match: *`` makes a PUT that never overwrites), and both run in a
worker thread (``BlockingResponse``): ``fsync`` takes as long as the disk.
"""

from __future__ import annotations

import contextlib
import os
import stat

from ..app import HTTPError, Request, Response
from ._blocking import BlockingResponse
from ._conditional import evaluate_preconditions, make_etag
from ._paths import Target, is_within


def _existing(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise HTTPError(409, "a parent of the target is not a directory") from None


def _check_preconditions(request: Request, status: os.stat_result | None) -> None:
    etag = make_etag(status) if status is not None else None
    modified = int(status.st_mtime) if status is not None else None
    if evaluate_preconditions(request.method, request.headers, etag, modified) is not None:
        raise HTTPError(412, "a precondition of the request failed")


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def put(request: Request, root: str, target: Target) -> BlockingResponse:
    """Store the request body at ``target`` (see the module doc)."""
    if not target.relative or target.trailing_slash:
        raise HTTPError(409, "cannot PUT a directory")
    upload = request.files.get("body", [None])[0]
    parent = os.path.dirname(target.path)

    def work() -> Response:
        if not os.path.isdir(parent) or not is_within(root, os.path.realpath(parent)):
            raise HTTPError(409, "the target's directory does not exist")
        before = _existing(target.path)
        if before is not None and not stat.S_ISREG(before.st_mode):
            raise HTTPError(409, "the target exists and is not a file")
        _check_preconditions(request, before)
        if upload is not None:
            upload.save(target.path, fsync=True)
        else:
            _write_empty(target.path)
        after = os.stat(target.path)
        headers = [("ETag", make_etag(after))]
        if before is None:
            return Response(b"", 201, [*headers, ("Location", request.raw_path)])
        return Response(b"", 204, headers)

    return BlockingResponse(work)


def _write_empty(path: str) -> None:
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{id(path):x}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def delete(request: Request, root: str, target: Target) -> BlockingResponse:
    """Remove the file at ``target``: 204, or 404 when there is none."""
    if not target.relative or target.trailing_slash:
        raise HTTPError(409, "cannot DELETE a directory")

    def work() -> Response:
        before = _existing(target.path)
        if before is None:
            raise HTTPError(404, "not found")
        if not stat.S_ISREG(before.st_mode):
            raise HTTPError(409, "the target is not a file")
        _check_preconditions(request, before)
        try:
            os.unlink(target.path)
        except FileNotFoundError:
            raise HTTPError(404, "not found") from None
        _fsync_directory(os.path.dirname(target.path))
        return Response(b"", 204)

    return BlockingResponse(work)
