"""``FileResponse``: a file, or ranges of it, sent in constant memory.

A methlet returns a ``FileResponse``; the dispatcher hands it the connection
(``__dibble_send__``) and it sends itself:

* HEAD, 304 and the like: the head only.
* Small bodies (``SMALL_BODY`` bytes or less): read at once, on the event
  loop, and written with the head in one ``write``.  Reading a small file
  costs less than handing the read to a thread.
* Larger bodies stream.  On a plain TCP connection the file goes straight
  from the page cache to the socket with ``os.sendfile`` (zero-copy), but only
  while the transport's own write buffer is empty, so bytes can never
  overtake each other.  uvloop has no ``loop.sendfile`` and will not watch a
  descriptor its transport owns, so when the socket is full we wait on a
  duplicate of the descriptor (``add_writer(dup)``).  On TLS and in-memory
  transports, or with ``sendfile=False``, the file is read in
  ``CHUNK``-sized pieces written through the transport, waiting for it to
  drain (``pause_writing``) after each: memory stays at about one chunk per
  connection either way.  A client that stops reading for ``send_timeout``
  seconds is dropped on both paths.

The head never leaves as a packet of its own: it is sent with ``MSG_MORE``
ahead of the ``sendfile`` (or joined to the first chunk written), so it
shares the first segment with the file's bytes.  That one detail decided the
throughput; see ``_Sender._send_bytes``.  Responses to earlier pipelined
requests still waiting in the connection's output go out first, in the same
send.

File reads that could block on the disk run in the default thread pool.
Whether a window of the file is in the page cache is probed with
``preadv(RWF_NOWAIT)`` (a read that fails instead of waiting); cached data,
the common case on a busy server, is sent from the event loop directly, and a
1 MiB response then costs one ``sendfile``, with no task and no wait.

Measured figures (per response: system calls, CPU, and against nginx) are in
BENCHMARKS.md, "Files".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from ..app._render import connection_field, content_type_field, render_head
from ..server import ClientDisconnected

if TYPE_CHECKING:
    from ..app import Request
    from ..server import HTTPProtocol

error_log: Final = logging.getLogger("dibble.error")

#: Bodies up to this size are read and written in one go.
SMALL_BODY: Final = 64 * 1024
#: Piece size of the write path.
CHUNK: Final = 256 * 1024
#: The most one ``sendfile`` call is asked to send (and the page-cache probe covers).
SENDFILE_WINDOW: Final = 2 * 1024 * 1024

_NOWAIT: Final = getattr(os, "RWF_NOWAIT", 0)
# Where the page-cache probes read their byte; only ever used on the event loop.
_PROBE: Final = [bytearray(1)]
_HAS_SENDFILE: Final = hasattr(os, "sendfile")
# "More follows": the kernel holds a head back to go out with the file's first bytes.
_MSG_MORE: Final = getattr(socket, "MSG_MORE", 0)

Piece = bytes | tuple[int, int]


class FileResponse:
    """A response whose body is ``pieces``: bytes, and ``(offset, length)`` ranges of ``fd``.

    The response owns ``fd`` and closes it when sent (or when it fails).
    ``headers`` are extra header fields; ``Content-Length`` is computed.
    """

    __slots__ = (
        "content_type",
        "fd",
        "headers",
        "length",
        "pieces",
        "send_timeout",
        "sendfile",
        "status",
    )

    def __init__(
        self,
        fd: int | None,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str | None = None,
        pieces: Iterable[Piece] = (),
        *,
        sendfile: bool = True,
        send_timeout: float = 60.0,
    ) -> None:
        self.fd = fd
        self.status = status
        self.headers = list(headers)
        self.content_type = content_type
        self.pieces: list[Piece] = list(pieces)
        self.length = sum(len(p) if isinstance(p, bytes) else p[1] for p in self.pieces)
        self.sendfile = sendfile
        self.send_timeout = send_timeout

    def close(self) -> None:
        """Close the file (the response was not sent, or has been)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def read_body(self) -> bytes:
        """The whole body in memory (the small-body path, and tests)."""
        out = []
        for piece in self.pieces:
            if isinstance(piece, bytes):
                out.append(piece)
            else:
                out.append(_pread_exact(self._fd(), piece[1], piece[0]))
        return b"".join(out)

    def _fd(self) -> int:
        if self.fd is None:
            raise ValueError("the file response was closed")
        return self.fd

    def __dibble_send__(self, request: Request, conn: HTTPProtocol, keep_alive: bool) -> None:
        try:
            type_field = _type_field(self.content_type) if self.content_type else b""
            head = render_head(
                self.status,
                type_field,
                self.headers,
                self.length,
                connection_field(keep_alive, request.version),
                conn.date_field,
            )
            if request.method == "HEAD" or not self.pieces:
                body = b""
            elif self.length <= SMALL_BODY:
                body = self.read_body()
            else:
                _Sender(self, request, conn, keep_alive).start(head)
                return
        except BaseException:
            # Nothing was written yet: the dispatcher can still send a 500.
            self.close()
            raise
        self.close()
        conn.write(head + body)
        conn.finish(self.status, len(body), keep_alive)

    def __repr__(self) -> str:
        return f"<FileResponse {self.status} {self.content_type} {self.length} bytes>"


_TYPE_FIELDS: Final[dict[str, bytes]] = {}


def _type_field(content_type: str) -> bytes:
    """``Content-Type: ...`` as header bytes; the few types of a site encoded once."""
    field = _TYPE_FIELDS.get(content_type)
    if field is None:
        field = content_type_field(content_type)
        # Bounded: multipart types carry a fresh boundary each, and never repeat.
        if len(_TYPE_FIELDS) < 256 and not content_type.startswith("multipart/"):
            _TYPE_FIELDS[content_type] = field
    return field


def _pread_exact(fd: int, count: int, offset: int) -> bytes:
    data = os.pread(fd, count, offset)
    if len(data) != count:
        # The file shrank after its size was sent: the response would lie.
        raise OSError(errno.EIO, "the file changed while it was being sent")
    return data


# What _Sender._pump stopped at.
_DONE: Final = 0
_BLOCKED: Final = 1  # the socket is full, or the transport still holds bytes
_UNCACHED: Final = 2  # the next window is not in the page cache: read it in a thread


def _settle(waiter: asyncio.Future[bool], writable: bool) -> None:
    if not waiter.done():
        waiter.set_result(writable)


class _Sender:
    """Streams one large ``FileResponse`` body; lives until it is sent or fails."""

    __slots__ = (
        "conn",
        "dup_fd",
        "fd",
        "keep_alive",
        "pieces",
        "request",
        "response",
        "sock_fd",
    )

    def __init__(
        self, response: FileResponse, request: Request, conn: HTTPProtocol, keep_alive: bool
    ) -> None:
        self.response = response
        self.request = request
        self.conn = conn
        self.keep_alive = keep_alive
        self.fd = response._fd()
        self.pieces: deque[Piece] = deque(response.pieces)
        self.dup_fd = -1
        self.sock_fd = -1
        transport = conn.transport
        if response.sendfile and _HAS_SENDFILE and not conn.tls and transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    self.sock_fd = sock.fileno()

    # --- the two phases: as far as possible at once, then in a task -------------

    def start(self, head: bytes) -> None:
        try:
            if self.sock_fd >= 0:
                # Responses to earlier pipelined requests of the same read may
                # still wait in the connection's output: they go first, in the
                # same send as this head.
                pending = self.conn.out
                if pending:
                    head = b"".join((*pending, head))
                    pending.clear()
            pieces = self.pieces
            first = pieces[0]
            if isinstance(first, bytes):  # a multipart body's first part header
                pieces[0] = head + first
            else:
                pieces.appendleft(head)
            # Without sendfile, the task writes the head with the first chunk.
            state = self._pump() if self.sock_fd >= 0 else _BLOCKED
        except BaseException as exc:
            self._fail(exc)
            return
        if state == _DONE:
            self._finish()
            return
        # The request keeps the task alive (the loop holds tasks weakly).
        self.request.task = self.conn.loop.create_task(self._run(state))

    async def _run(self, state: int) -> None:
        try:
            if self.sock_fd >= 0:
                while state != _DONE:
                    if state == _UNCACHED:
                        await self._sendfile_in_thread()
                    else:
                        await self._wait_for_socket()
                    state = self._pump()
            else:
                await self._write_pieces()
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._finish()

    # --- zero-copy -------------------------------------------------------------------

    def _pump(self) -> int:
        """Send pieces straight to the socket until it is full or all is sent."""
        transport = self.conn.transport
        pieces = self.pieces
        sock_fd = self.sock_fd
        while pieces:
            if self.conn.closed or transport is None:
                raise ClientDisconnected("client disconnected")
            if transport.get_write_buffer_size():
                return _BLOCKED
            piece = pieces[0]
            if isinstance(piece, bytes):
                try:
                    written = self._send_bytes(piece, more=len(pieces) > 1)
                except BlockingIOError:
                    return _BLOCKED
                if written < len(piece):
                    pieces[0] = piece[written:]
                    return _BLOCKED
                pieces.popleft()
                continue
            offset, length = piece
            count = min(length, SENDFILE_WINDOW)
            if not self._cached(offset, count):
                return _UNCACHED
            try:
                sent = os.sendfile(sock_fd, self.fd, offset, count)
            except BlockingIOError:
                return _BLOCKED
            self._advance(sent)
        return _DONE

    def _send_bytes(self, data: bytes, *, more: bool) -> int:
        """Write ``data`` to the socket; with ``more``, let the kernel hold it for what follows.

        A head sent on its own leaves as a small packet of its own, and a
        receiver's TCP then grows its window for that connection far more
        slowly: on loopback the window stayed at a few hundred KiB, so most of
        each 1 MiB body waited in our send buffer and was pushed out by the
        client's acknowledgements, on the client's core.  ``MSG_MORE`` (what
        nginx gets from ``TCP_CORK`` and two ``setsockopt`` calls) puts the
        head into the first full-sized segment of the ``sendfile`` that follows.
        The flag holds back only this one send: later pushes follow the
        socket's own ``TCP_NODELAY``, so nothing can be left waiting.
        """
        if not (more and _MSG_MORE):
            return os.write(self.sock_fd, data)
        # os has no send(), and the transport's socket object refuses to send:
        # a socket object borrows the descriptor for this one call.  With the
        # type and protocol given, CPython asks the kernel only for the family
        # (one getsockname).
        try:
            sock = socket.socket(-1, socket.SOCK_STREAM, 0, self.sock_fd)
        except OSError:
            return os.write(self.sock_fd, data)  # not a socket after all: no flags to give
        try:
            if sock.gettimeout() is not None:
                sock.setblocking(False)  # never wait in send() for a default timeout
            return sock.send(data, _MSG_MORE)
        finally:
            sock.detach()  # the transport owns the descriptor

    def _advance(self, sent: int) -> None:
        offset, length = self.pieces[0]
        if sent == 0:
            raise OSError(errno.EIO, "the file changed while it was being sent")
        if sent == length:
            self.pieces.popleft()
        else:
            self.pieces[0] = (offset + sent, length - sent)

    def _cached(self, offset: int, count: int) -> bool:
        """Whether the first and last page of the window are in the page cache."""
        if not _NOWAIT:
            return False  # no way to know: read in a thread
        try:
            os.preadv(self.fd, _PROBE, offset, _NOWAIT)
            if count > 4096:
                os.preadv(self.fd, _PROBE, offset + count - 1, _NOWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return False  # the file system cannot tell: read in a thread
        return True

    async def _sendfile_in_thread(self) -> None:
        offset, length = self.pieces[0]
        count = min(length, SENDFILE_WINDOW)
        loop = self.conn.loop
        try:
            sent = await loop.run_in_executor(
                None, os.sendfile, self.sock_fd, self.fd, offset, count
            )
        except BlockingIOError:
            await self._wait_for_socket()
            return
        self._advance(sent)

    async def _wait_for_socket(self) -> None:
        """Wait until the transport has flushed its buffer and the socket takes more."""
        conn = self.conn
        transport = conn.transport
        if transport is not None and transport.get_write_buffer_size():
            await asyncio.sleep(0)  # the transport writes as soon as it can
            if not transport.get_write_buffer_size():
                return
        if conn.closed:
            raise ClientDisconnected("client disconnected")
        loop = conn.loop
        if self.dup_fd < 0:
            self.dup_fd = os.dup(self.sock_fd)
        deadline = loop.time() + self.response.send_timeout
        while True:
            waiter: asyncio.Future[bool] = loop.create_future()
            loop.add_writer(self.dup_fd, _settle, waiter, True)
            # Wake now and then: an aborted transport does not wake us.  One
            # timer and one future per wait; asyncio.wait() cost several of
            # each, every time the socket filled up.
            timer = loop.call_later(
                min(1.0, max(0.0, deadline - loop.time())), _settle, waiter, False
            )
            try:
                writable = await waiter
            finally:
                timer.cancel()
                loop.remove_writer(self.dup_fd)
            if conn.closed:
                raise ClientDisconnected("client disconnected")
            if writable:
                return
            if loop.time() >= deadline:
                raise TimeoutError("the client stopped reading the response")

    # --- copying through the transport --------------------------------------------

    async def _write_pieces(self) -> None:
        conn = self.conn
        loop = conn.loop
        # The head (and a multipart part's header) waits to go out in one
        # write with the file's next chunk: sent alone it would be a small
        # packet of its own (see ``_send_bytes`` for what that costs).
        held = b""
        while self.pieces:
            piece = self.pieces.popleft()
            if isinstance(piece, bytes):
                held += piece
                continue
            offset, length = piece
            while length:
                count = min(length, CHUNK)
                if self._cached(offset, count):
                    data = _pread_exact(self.fd, count, offset)
                else:
                    data = await loop.run_in_executor(None, _pread_exact, self.fd, count, offset)
                if held:
                    data, held = held + data, b""
                conn.write(data)
                offset += count
                length -= count
                if conn.write_paused:
                    # A client that stops reading is dropped after send_timeout.
                    async with asyncio.timeout(self.response.send_timeout):
                        await conn.drain()
                elif conn.closed:
                    raise ClientDisconnected("client disconnected")
        if held:
            conn.write(held)

    # --- the end -------------------------------------------------------------------------

    def _release(self) -> None:
        if self.dup_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.dup_fd)
            self.dup_fd = -1
        self.response.close()

    def _finish(self) -> None:
        self._release()
        self.conn.finish(self.response.status, self.response.length, self.keep_alive)

    def _fail(self, exc: BaseException) -> None:
        self._release()
        gone = isinstance(exc, ClientDisconnected | ConnectionError | asyncio.CancelledError)
        if not gone and not isinstance(exc, TimeoutError):
            error_log.error(
                "error while sending %s; dropping the connection",
                self.request.target.decode("latin-1"),
                exc_info=exc,
            )
        self.conn.abort()
