"""The Dibbler write style: ``write_ok_headers``, ``write``, ``flush``, ``close``.

Headers and body are buffered until the first ``flush`` (or the end of the
methlet), so a methlet that fails half-way still produces a clean 500.  After
a flush the response is streamed: chunked for HTTP/1.1 clients, delimited by
closing the connection for HTTP/1.0 ones.

A writer is used by exactly one request, from whichever thread runs its
methlet; bytes for the socket always go through the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..http import LAST_CHUNK, encode_chunk, encode_header_fields, status_line
from ._pages import error_page
from ._render import CLOSE_FIELD, HTML, connection_field, content_type_field, render_head
from ._response import Response

if TYPE_CHECKING:
    from ..server import HTTPProtocol
    from ._request import Request


class _Done:
    """An awaitable that is already complete."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_DONE = _Done()

#: The route mode of methlets run in the thread pool (``_routing.THREAD``,
#: defined here because that module imports this one).
THREAD_MODE: Final = 2


class ResponseWriter:
    """Response state of one request answered in the write style."""

    __slots__ = (
        "chunks",
        "close_connection",
        "closed",
        "content_type",
        "headers",
        "request",
        "sent_bytes",
        "started",
        "status",
        "streaming",
        "threaded",
    )

    def __init__(self, request: Request, threaded: bool) -> None:
        self.request = request
        self.threaded = threaded
        self.status = 200
        self.content_type = HTML
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        #: Whether the methlet used the writer at all.
        self.started = False
        #: Whether the head went out (after a flush).
        self.streaming = False
        self.closed = False
        self.close_connection = False
        self.sent_bytes = 0

    @classmethod
    def of(cls, request: Request) -> ResponseWriter:
        writer = request.writer
        if writer is None:
            route = request.route
            writer = cls(request, threaded=route is not None and route.mode == THREAD_MODE)
            request.writer = writer
        return writer

    # --- what methlets call ---------------------------------------------------

    def set_head(
        self,
        status: int,
        content_type: str,
        extra_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    ) -> None:
        if self.streaming:
            raise RuntimeError("the response head was already sent")
        self._check_open()
        # Pairs, not only a mapping: a page may set several cookies.
        if extra_headers is None:
            headers = []
        elif isinstance(extra_headers, Mapping):
            headers = list(extra_headers.items())
        else:
            headers = list(extra_headers)
        # Refuse a bad status or a header that would split the response here,
        # inside the methlet, so it becomes an ordinary 500.
        status_line(status)
        encode_header_fields([("Content-Type", content_type), *headers])
        self.started = True
        self.status = status
        self.content_type = content_type
        self.headers = headers

    def write(self, content: str | bytes) -> None:
        self._check_open()
        self.started = True
        if isinstance(content, str):
            content = content.encode("utf-8")
        if content:
            self.chunks.append(content)

    def write_error(self, code: int, message: str = "") -> None:
        if self.streaming:
            raise RuntimeError("cannot send an error page after the response head was sent")
        self._check_open()
        self.started = True
        self.status = code
        self.content_type = HTML
        self.headers = []
        self.chunks = [error_page(code, message).encode("utf-8")]

    def flush(self) -> Awaitable[None]:
        self._check_open()
        self.started = True
        conn = self.request.conn
        if conn is None:
            return _DONE
        data = self._stream_bytes(conn)
        if not self.threaded:
            conn.send_now(data)
            return conn.drain()
        loop = conn.loop
        loop.call_soon_threadsafe(conn.send_now, data)
        if conn.write_paused:
            # A worker thread may block: wait here until the client catches up.
            asyncio.run_coroutine_threadsafe(_wait_drain(conn), loop).result()
        return _DONE

    def close(self) -> None:
        self.started = True
        self.close_connection = True
        self.closed = True

    def add_head_hook(self, hook: Callable[[list[tuple[str, str]]], None]) -> None:
        """Call ``hook(fields)`` once, just before the response head is rendered.

        ``fields`` is the response's list of extra header fields; the hook may
        add to it (sessions add ``Set-Cookie`` and ``Vary``) or raise (an
        ``HTTPError`` replaces the response).  Hooks run after the methlet
        returns (in its worker thread for a blocking methlet), or at its first
        ``flush``; a methlet that raises runs none.
        """
        add_head_hook(self.request, hook)

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the response was closed")

    # --- what the dispatcher calls, on the event loop -----------------------------

    def _stream_bytes(self, conn: HTTPProtocol) -> bytes:
        request = self.request
        body = b"".join(self.chunks)
        self.chunks = []
        chunked = request.version == "1.1"
        out = b""
        if not self.streaming:
            if request.head_hooks:
                run_head_hooks(request, None)
            self.streaming = True
            if not chunked:
                self.close_connection = True
            connection = CLOSE_FIELD if self.close_connection else connection_field(True, "1.1")
            out = render_head(
                self.status,
                content_type_field(self.content_type),
                self.headers,
                None,
                connection,
                conn.date_field,
            )
        if request.method == "HEAD":
            return out
        self.sent_bytes += len(body)
        return out + (encode_chunk(body) if chunked else body)

    def finish_bytes(self, conn: HTTPProtocol, keep_alive: bool) -> tuple[bytes, bool]:
        """The rest of the response, and whether the connection may be kept."""
        request = self.request
        keep_alive = keep_alive and not self.close_connection
        if self.streaming:
            tail = self._stream_bytes(conn)
            if request.version == "1.1" and request.method != "HEAD":
                tail += LAST_CHUNK
            return tail, keep_alive and request.version == "1.1"
        body = b"".join(self.chunks)
        self.chunks = []
        self.sent_bytes = len(body)
        head = render_head(
            self.status,
            content_type_field(self.content_type),
            self.headers,
            len(body),
            connection_field(keep_alive, request.version),
            conn.date_field,
        )
        if request.method == "HEAD":
            return head, keep_alive
        return head + body, keep_alive


def add_head_hook(request: Request, hook: Callable[[list[tuple[str, str]]], None]) -> None:
    """``ResponseWriter.add_head_hook`` without a writer (the request keeps its hooks:
    a session needs only a hook, and most methlets never write)."""
    hooks = request.head_hooks
    if hooks is None:
        request.head_hooks = [hook]
    else:
        hooks.append(hook)


def run_hooks_on(request: Request, fields: list[tuple[str, str]]) -> None:
    """Run ``request``'s head hooks (once) on ``fields``, the response's extra fields."""
    hooks = request.head_hooks
    request.head_hooks = None
    if hooks:
        for hook in hooks:
            hook(fields)


def run_head_hooks(request: Request, result: Any) -> Any:
    """Run ``request``'s head hooks (once); ``result`` as a ``Response`` carrying their
    fields (a written response's fields get them when the methlet wrote)."""
    hooks = request.head_hooks
    if not hooks:
        return result
    request.head_hooks = None
    writer = request.writer
    if writer is not None and writer.started:
        for hook in hooks:
            hook(writer.headers)
        return result
    response = _as_response(result, request)
    fields = response.headers if response is not None else []
    for hook in hooks:
        hook(fields)
    # A result that sends itself (a file) keeps its own head; the hooks
    # still ran, so their work (saving a session) is done.
    return response if response is not None else result


async def _wait_drain(conn: HTTPProtocol) -> None:
    await conn.drain()


def _as_response(result: Any, request: Request) -> Response | None:
    """A methlet's return value as a new ``Response`` (None for what sends itself)."""
    kind = type(result)
    if isinstance(result, Response):
        return Response(result.body, result.status, list(result.headers), result.content_type)
    route = request.route
    if kind is str or kind is bytes:
        body = result.encode("utf-8") if kind is str else result
        if route is None:
            return Response(body, content_type=HTML)
        field = route.str_type if kind is str else route.bytes_type
        # The route keeps its type as a rendered "Content-Type: ...\r\n" field.
        return Response(body, content_type=field[len(b"Content-Type: ") : -2].decode("latin-1"))
    if kind is dict or kind is list:
        return Response.json(result)
    if result is None:
        return Response(b"", 204)
    return None
