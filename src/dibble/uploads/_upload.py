"""``Upload``: one uploaded file, held in a nameless temporary file.

The temporary file is opened with ``O_TMPFILE`` where the file system allows
it (else made with ``mkstemp`` and unlinked at once), so it never has a name
in the temporary directory: closing it, or the process dying, frees the
space, and no clean-up job is needed.  The descriptor is closed by
``close()`` (dibble calls it when the request ends) and, as a last resort,
by a finalizer, quietly.

``save()`` gives the file a name atomically: it is linked (no copy) when the
temporary file lives on the destination's file system and the kernel can
link it, else copied; then renamed over the destination.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

from ..http import ProtocolError

_O_TMPFILE: Final = getattr(os, "O_TMPFILE", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_PROC_FD: Final = "/proc/self/fd"
_COPY_CHUNK: Final = 1024 * 1024


def temp_fd(directory: str | None) -> int:
    """A readable, writable file descriptor of a new file without a name."""
    directory = directory or tempfile.gettempdir()
    if _O_TMPFILE:
        try:
            return os.open(directory, _O_TMPFILE | os.O_RDWR | _O_CLOEXEC, 0o600)
        except OSError as exc:
            # EISDIR/EOPNOTSUPP: the file system cannot; anything else is real.
            if exc.errno not in (errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL):
                raise
    fd, path = tempfile.mkstemp(prefix=".dibble-upload-", dir=directory)
    os.unlink(path)
    return fd


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class Upload:
    """An uploaded file: a form's file field, or a raw request body.

    ``name`` is the form field's name (``"body"`` for a raw body);
    ``filename`` the client's file name with any directory part removed
    (still chosen by the client: check it before using it in a path);
    ``content_type`` the part's declared type; ``size`` its length in bytes;
    ``headers`` the part's header fields (lower-case names).

    The file exists until the request ends: ``save()`` it, or read it with
    ``open()`` or ``read()``, within the methlet.
    """

    __slots__ = (
        "__weakref__",
        "_closer",
        "_fd",
        "_linked",
        "content_type",
        "filename",
        "headers",
        "name",
        "size",
    )

    def __init__(
        self,
        name: str,
        filename: str,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        *,
        directory: str | None = None,
    ) -> None:
        self.name = name
        self.filename = safe_filename(filename)
        self.content_type = content_type
        self.headers: dict[str, str] = dict(headers or {})
        self.size = 0
        self._linked = False
        self._fd = temp_fd(directory)
        self._closer = weakref.finalize(self, _close_quietly, self._fd)

    @classmethod
    def from_param(cls, value: object) -> Upload:
        """How a methlet parameter annotated ``Upload`` is filled (see ``Binder``)."""
        if isinstance(value, Upload):
            return value
        raise ValueError("expected an uploaded file")

    # --- filling it (dibble's side) --------------------------------------------

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` at the end; ``ProtocolError`` when the disk is full."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self.size += written
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ProtocolError("no space left to store the upload", 507) from exc
            raise

    # --- using it (the methlet's side) --------------------------------------------

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def _check_open(self) -> int:
        if not self._closer.alive:
            raise ValueError("the upload was closed (its request has ended)")
        return self._fd

    def open(self) -> IO[bytes]:
        """A new binary file object reading the upload from its start; close it."""
        fd = self._check_open()
        proc = f"{_PROC_FD}/{fd}"
        if os.path.exists(proc):
            # A separate open file description: its position is its own.
            return open(proc, "rb")
        duplicate = os.dup(fd)
        file = os.fdopen(duplicate, "rb")
        file.seek(0)
        return file

    def read(self) -> bytes:
        """The whole content (mind the size: this holds it all in memory)."""
        fd = self._check_open()
        chunks = []
        offset = 0
        while offset < self.size:
            chunk = os.pread(fd, min(_COPY_CHUNK, self.size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def save(
        self, path: str | os.PathLike[str], *, mode: int = 0o644, fsync: bool = False
    ) -> Path:
        """Store the upload at ``path`` atomically (replacing a file there).

        The content goes to a hidden temporary name in the destination's
        directory first and is renamed into place, so readers see the old
        file or the new one, never a part.  ``fsync`` also makes it durable
        (file and directory) before returning.  Returns the path.

        The first save links the temporary file where it can (no copy): the
        upload and the saved file are then one file, so change the saved
        file only after the request, or save a second time (which copies).
        """
        fd = self._check_open()
        target = Path(path)
        directory = os.path.abspath(target.parent)
        temp_name = f".{target.name}.{secrets.token_hex(6)}.tmp"
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
        try:
            written_fd = self._materialise(fd, temp_name, dir_fd, mode)
            try:
                if fsync:
                    os.fsync(written_fd)
            finally:
                if written_fd != fd:
                    os.close(written_fd)
            try:
                os.replace(temp_name, target.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp_name, dir_fd=dir_fd)
                raise
            if fsync:
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target

    def _materialise(self, fd: int, temp_name: str, dir_fd: int, mode: int) -> int:
        """Give the content the name ``temp_name``; returns the fd that holds it."""
        if not self._linked and os.path.exists(_PROC_FD):
            try:
                # Linking an O_TMPFILE file: no copy.  Passing dst_dir_fd makes
                # os.link use linkat(AT_SYMLINK_FOLLOW) rather than link().
                os.link(f"{_PROC_FD}/{fd}", temp_name, dst_dir_fd=dir_fd, follow_symlinks=True)
            except OSError:
                pass  # another file system, or not an O_TMPFILE file: copy
            else:
                # The kernel links such a file once; later saves copy.
                self._linked = True
                os.fchmod(fd, mode)
                return fd
        out = os.open(
            temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode, dir_fd=dir_fd
        )
        try:
            _copy(fd, out, self.size)
            os.fchmod(out, mode)
        except BaseException:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(temp_name, dir_fd=dir_fd)
            raise
        return out

    def close(self) -> None:
        """Free the temporary file (dibble does this when the request ends)."""
        self._closer()

    def __repr__(self) -> str:
        return (
            f"<Upload {self.name!r} filename={self.filename!r} "
            f"{self.content_type} {self.size} bytes>"
        )


def _copy(source: int, target: int, size: int) -> None:
    offset = 0
    copy_range: Any = getattr(os, "copy_file_range", None)
    while offset < size:
        count = min(_COPY_CHUNK * 8, size - offset)
        done = 0
        if copy_range is not None:
            try:
                done = copy_range(source, target, count, offset)
            except OSError:
                copy_range = None  # not across these file systems: plain copy
        if not done:
            chunk = os.pread(source, min(_COPY_CHUNK, count), offset)
            if not chunk:
                raise OSError(errno.EIO, "the upload's temporary file shrank")
            view = memoryview(chunk)
            while view:
                view = view[os.write(target, view) :]
            done = len(chunk)
        offset += done


def safe_filename(filename: str) -> str:
    """The last path component of a client's file name, without control characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f")
    return "" if name in (".", "..") else name
