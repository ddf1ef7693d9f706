"""The asyncio side of one HTTP connection.

``HTTPProtocol`` moves bytes from the socket into the sans-I/O parser and
complete requests to the application; it owns flow control, timeouts and
the order of responses, and turns protocol errors into short error responses.
It builds no response itself apart from those errors.

Invariants:

* At most one request per connection is with the application at a time.
  Complete requests that arrive meanwhile (pipelining) wait in a queue and
  are answered strictly in order; a protocol error waits its turn too.
* The queue is bounded: past ``max_pipeline`` waiting requests, or while the
  peer is not reading what we write, the protocol stops reading.
* Timeouts are deadlines checked by the listener's once-a-tick sweep, so the
  hot path sets a float instead of arming a timer per request.
* A connection with a protocol error is answered once, then closed; nothing
  the peer sends afterwards is read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from ..http import (
    CONTINUE,
    END_OF_MESSAGE,
    SERVER_NAME,
    ProtocolError,
    RequestHead,
    status_line,
)

if TYPE_CHECKING:
    from ..http import RequestParser
    from ._listener import Listener

error_log: Final = logging.getLogger("dibble.error")

# Deadline kinds, checked by Listener.sweep().
_NONE: Final = 0
_IDLE: Final = 1  # between requests: close quietly
_HEAD: Final = 2  # head incomplete: 408
_BODY: Final = 3  # body stalled: 408
_LINGER: Final = 4  # error answered, output shut: close after a grace period

_LINGER_SECONDS: Final = 2.0


class ClientDisconnected(ConnectionError):
    """The client went away while its response was being produced."""


class BodySink(Protocol):
    """Receives a request body as it arrives, instead of memory buffering it.

    ``feed`` and ``finish`` raise ``ProtocolError`` (with a status hint) for a
    body they refuse; the client then gets that status and the connection is
    closed.  ``abort`` is called instead of ``finish`` when the body will not
    complete (the client went away, or the request was refused): it must
    release whatever the sink holds, temporary files included.
    """

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class ResponseObserver(Protocol):
    """Sees every response a listener's connections finish (statistics, request log).

    An application offers one as its ``observer`` attribute (None or absent:
    nothing observes).  The listener calls it beside the access log, behind
    the one test the access log always had, so a server without either pays
    nothing more.  Both calls run on the event loop and must neither block
    nor raise.
    """

    def response(
        self, client: tuple[str, int] | None, head: RequestHead | None, status: int, size: int
    ) -> None:
        """A response to ``head`` is complete: ``status``, ``size`` body bytes."""

    def invalid(
        self, client: tuple[str, int] | None, head: RequestHead | None, status: int
    ) -> None:
        """A request was refused as malformed (``head`` as far as it was parsed, if at all)."""


class Application(Protocol):
    """What the server needs from whatever answers requests."""

    def new_head(self) -> RequestHead:
        """A fresh object to parse one request's head into."""

    def body_limit(self, head: RequestHead) -> int:
        """The largest body this request may carry (413 beyond it)."""

    def body_sink(self, head: RequestHead, conn: HTTPProtocol) -> BodySink | None:
        """Where this request's body should stream to; None to buffer it in memory.

        Asked once per request that has a body, when its head is complete.
        """

    def dispatch(self, head: RequestHead, body: bytes, conn: HTTPProtocol) -> None:
        """Answer a complete request, eventually calling ``conn.finish``."""

    def allows_connection(self, sock: socket.socket) -> bool:
        """False to refuse a new connection before any byte is read."""

    @property
    def filters_connections(self) -> bool:
        """Whether ``allows_connection`` needs calling at all."""


class HTTPProtocol(asyncio.Protocol):
    """One client connection; the ``conn`` argument of ``Application.dispatch``."""

    __slots__ = (
        "_body",
        "_busy",
        "_continue_pending",
        "_current_head",
        "_drain_waiters",
        "_eof",
        "_listener",
        "_parser",
        "_parsing",
        "_queue",
        "_reading_paused",
        "_receiving",
        "_running_queue",
        "_sink",
        "_write_paused",
        "app",
        "client",
        "closed",
        "closing",
        "deadline",
        "deadline_kind",
        "loop",
        "out",
        "requests_served",
        "tls",
        "transport",
    )

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self.app: Application = listener.app
        self.loop = listener.loop
        # Borrowed from the listener's pool while a request is being read or
        # answered, returned while the connection idles: an idle keep-alive
        # connection then holds no parser (about a kilobyte with httptools'
        # callbacks), which is most of what it would otherwise cost.
        self._parser: RequestParser | None = None
        self.transport: asyncio.Transport | None = None
        #: Output collected while a read is processed (see ``write``).
        self.out: list[bytes] | None = None
        self.client: tuple[str, int] | None = None
        self.tls = False
        self._queue: deque[tuple[RequestHead, bytes] | ProtocolError] | None = None
        self._body: list[bytes] | None = None
        self._sink: BodySink | None = None
        self._parsing: RequestHead | None = None
        self._current_head: RequestHead | None = None
        self._busy = False
        self._receiving = False
        self._running_queue = False
        self._continue_pending = False
        self._eof = False
        self._write_paused = False
        self._reading_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        #: Set when the connection must close after the current response.
        self.closing = False
        self.closed = False
        self.deadline = 0.0
        self.deadline_kind = _NONE
        self.requests_served = 0

    # --- asyncio callbacks -------------------------------------------------

    def connection_made(self, base_transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but
        # they have its interface.
        transport = cast(asyncio.Transport, base_transport)
        self.transport = transport
        listener = self._listener
        if self.app.filters_connections:
            sock = transport.get_extra_info("socket")
            try:
                allowed = self.app.allows_connection(sock)
            except Exception:
                error_log.exception("on_incoming_connection raised; refusing the connection")
                allowed = False
            if not allowed:
                self.closed = True
                transport.abort()
                return
        if len(listener.connections) >= listener.config.max_connections:
            self.closed = True
            transport.write(_canned(503, "server busy: too many connections, try again later"))
            transport.close()
            return
        listener.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            # IPv6 addresses come as 4-tuples; (host, port) is all we keep.
            self.client = peer if len(peer) == 2 else (peer[0], peer[1])
        self.tls = transport.get_extra_info("sslcontext") is not None
        self._set_deadline(_IDLE, listener.keep_alive_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._abort_sink()
        self.deadline_kind = _NONE
        self._listener.connections.discard(self)
        self._queue = None
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(ClientDisconnected("client disconnected"))
        self._listener.connection_closed(self)

    def eof_received(self) -> bool:
        # The client will send nothing more; answer what it already sent,
        # then close.
        if self.closing:
            return False
        if self._busy or self._queue:
            self._eof = True
            return True
        return False

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._run_queue()
        self._maybe_resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closed or self.closing:
            return
        parser = self._parser
        if parser is None:
            pool = self._listener.parsers
            parser = self._parser = pool.pop() if pool else self._listener.new_parser()
        try:
            events = parser.feed(data)
        except Exception:
            # The parser only raises for bugs (bad input is a ProtocolError
            # event); answer 500 and drop this client, keep serving the rest.
            error_log.exception("internal error while parsing a request")
            self._parsing = None
            self._enqueue_error(ProtocolError("internal server error", 500))
            return
        served = self.requests_served
        self._receiving = True
        self.out = []
        try:
            for event in events:
                if event is END_OF_MESSAGE:
                    head = self._parsing
                    assert head is not None
                    chunks = self._body
                    body = b"".join(chunks) if chunks else b""
                    self._body = None
                    self._parsing = None
                    if self._sink is not None:
                        sink, self._sink = self._sink, None
                        if not self._sink_call(sink.finish, sink):
                            return
                    if self._busy or self._queue or self._write_paused:
                        self._enqueue(head, body)
                    else:
                        self._start(head, body)
                elif type(event) is bytes:
                    if self._sink is not None:
                        if not self._sink_call(self._sink.feed, self._sink, event):
                            return
                        continue
                    chunks = self._body
                    if chunks is None:
                        self._body = [event]
                    else:
                        chunks.append(event)
                elif isinstance(event, RequestHead):
                    self._parsing = event
                    if event.expect_continue:
                        self._continue_pending = True
                    if event.content_length or event.chunked:
                        try:
                            self._sink = self.app.body_sink(event, self)
                        except ProtocolError as exc:
                            self._refuse_body(exc)
                            return
                else:
                    assert isinstance(event, ProtocolError)
                    self._abort_sink()
                    self._parsing = None
                    self._enqueue_error(event)
                    return
        finally:
            self._receiving = False
            self._flush_out()
            self.out = None
        if self._queue or self.closing or self._eof:
            self._run_queue()
        if self._gone():
            return
        if parser.in_head:
            if self.deadline_kind != _HEAD:
                self._set_deadline(_HEAD, self._listener.header_timeout)
        elif not parser.idle:
            self._set_deadline(_BODY, self._listener.body_timeout)
            if self._continue_pending:
                self._maybe_send_continue()
        elif not self._busy:
            # Bytes that start no request (stray CRLFs) must not keep an idle
            # connection open: only a response restarts the idle clock.
            if self.deadline_kind != _IDLE or self.requests_served != served:
                self._set_deadline(_IDLE, self._listener.keep_alive_timeout)
            if not self._queue and not parser.failed:
                self._parser = None
                self._listener.parsers.append(parser)
        else:
            self.deadline_kind = _NONE

    def _sink_call(self, method: Callable[..., None], sink: BodySink, *args: bytes) -> bool:
        """Call a body sink; on failure answer the error and return False."""
        try:
            method(*args)
        except ProtocolError as exc:
            self._sink = sink
            self._refuse_body(exc)
            return False
        except Exception:
            error_log.exception("error while receiving a request body")
            self._sink = sink
            self._refuse_body(ProtocolError("internal server error", 500))
            return False
        return True

    def _refuse_body(self, error: ProtocolError) -> None:
        self._abort_sink()
        if self._parser is not None:
            self._parser.stop()
        self._parsing = None
        self._body = None
        self._enqueue_error(error)

    def _abort_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.abort()
            except Exception:
                error_log.exception("error while discarding a request body")

    def _gone(self) -> bool:
        # A method, not an attribute test, so type checkers do not assume the
        # flags kept the values they had before the calls above.
        return self.closed or self.closing

    # --- the request queue -------------------------------------------------

    def _enqueue(self, head: RequestHead, body: bytes) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append((head, body))
        if len(queue) >= self._listener.config.max_pipeline:
            self._pause_reading()

    def _enqueue_error(self, error: ProtocolError) -> None:
        # Requests before the bad one are answered normally (the parser reads
        # nothing after it); the error response then closes the connection.
        if not self._busy and not self._queue:
            self._respond_error(error)
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append(error)

    def _start(self, head: RequestHead, body: bytes) -> None:
        self._busy = True
        self.deadline_kind = _NONE
        self._current_head = head
        try:
            self.app.dispatch(head, body, self)
        except Exception:
            # dispatch() answers application errors itself; reaching here is a
            # bug in dibble, and the only safe reaction is to drop the client.
            error_log.exception("internal error while dispatching %r", head)
            self.abort()

    def _run_queue(self) -> None:
        """Start queued requests while nothing is in progress; then tidy up."""
        if self._running_queue:
            return
        self._running_queue = True
        try:
            queue = self._queue
            while queue and not self._busy and not self._write_paused and not self.closed:
                item = queue.popleft()
                if isinstance(item, ProtocolError):
                    self._respond_error(item)
                    return
                self._start(*item)
        finally:
            self._running_queue = False
        if not self._busy and not self.closed:
            if (self.closing or self._eof) and not self._queue:
                self._close()
                return
            if self._continue_pending:
                self._maybe_send_continue()
            if self._reading_paused:
                self._maybe_resume_reading()

    def _maybe_send_continue(self) -> None:
        # Tell a client waiting on "Expect: 100-continue" to send its body, but
        # only once the requests before it are answered, so the interim
        # response cannot land in the middle of someone else's.
        if (
            self._continue_pending
            and not self._busy
            and not self._queue
            and self._parsing is not None
            and self.transport is not None
        ):
            self._continue_pending = False
            self.send_now(CONTINUE)

    # --- flow control --------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def _maybe_resume_reading(self) -> None:
        if (
            self._reading_paused
            and not self._write_paused
            and (not self._queue or len(self._queue) < self._listener.config.max_pipeline // 2)
            and self.transport is not None
            and not self.closed
        ):
            self._reading_paused = False
            self.transport.resume_reading()

    # --- the interface the application uses ----------------------------------

    @property
    def date_field(self) -> bytes:
        """The current ``Date:`` header line, CRLF included."""
        return self._listener.date.field

    @property
    def server(self) -> tuple[str, int] | None:
        """The local ``(address, port)`` the client connected to."""
        sockname = self.transport.get_extra_info("sockname") if self.transport else None
        return (str(sockname[0]), int(sockname[1])) if isinstance(sockname, tuple) else None

    @property
    def keep_alive_allowed(self) -> bool:
        """False once this connection must close after the current response."""
        return not self.closing

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    def write(self, data: bytes) -> None:
        """Send bytes of the current response; dropped if the client is gone.

        While a read is being processed, writes are collected and sent as one
        when it is done, so sixteen pipelined requests cost one send, not
        sixteen.
        """
        out = self.out
        if out is not None:
            out.append(data)
            return
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def send_now(self, data: bytes) -> None:
        """Send ``data`` (after anything collected) at once: ``flush()`` semantics."""
        self.write(data)
        self._flush_out()

    def _flush_out(self) -> None:
        out = self.out
        if not out:
            return
        self.out = []
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def drain(self) -> _Drain:
        """An awaitable that waits until the client has read enough of our output."""
        return _Drain(self)

    def finish(self, status: int, body_bytes: int, keep_alive: bool) -> None:
        """The current response is complete; go on with the next request."""
        self._busy = False
        self.requests_served += 1
        if self._listener.observed:
            self._listener.observe(self.client, self._current_head, status, body_bytes)
        self._current_head = None
        if self.closed:
            return
        if not keep_alive:
            self.closing = True
            self._close()
            return
        if self._listener.shutting_down:
            self.closing = True
        if self._receiving:
            return  # data_received() goes on with the queue and the deadline
        if (
            self._queue
            or self._eof
            or self.closing
            or self._continue_pending
            or self._reading_paused
        ):
            self._run_queue()  # (which has nothing to do otherwise)
        parser = self._parser
        if not self._busy and not self.closed and (parser is None or parser.idle):
            self._set_deadline(_IDLE, self._listener.keep_alive_timeout)
            if parser is not None and not self._queue and not parser.failed:
                self._parser = None
                self._listener.parsers.append(parser)

    def abort(self) -> None:
        """Drop the connection at once (a response could not be completed)."""
        self._busy = False
        self.closing = True
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # --- closing, errors, timeouts -------------------------------------------

    def _close(self) -> None:
        self._flush_out()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.deadline_kind = _NONE

    def _respond_error(self, error: ProtocolError) -> None:
        status = error.status_hint
        self.closing = True
        transport = self.transport
        if transport is None or self.closed:
            return
        self.write(_canned(status, error.message, self.date_field))
        self._flush_out()
        if self._listener.observed:
            self._listener.observe_invalid(self.client, self._parsing, status)
        # Close gently: stop sending, then read and discard what the client
        # still sends for a moment.  Closing with unread bytes would make the
        # kernel reset the connection, and the client could lose the answer.
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:
                self._close()
                return
            self._set_deadline(_LINGER, _LINGER_SECONDS)
        else:
            self._close()

    def _set_deadline(self, kind: int, timeout: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.loop.time() + timeout

    def on_deadline(self) -> None:
        """Called by the listener's sweep when ``deadline`` has passed."""
        kind = self.deadline_kind
        self.deadline_kind = _NONE
        if kind in (_IDLE, _LINGER):
            self._close()
        elif kind in (_HEAD, _BODY):
            what = "request header" if kind == _HEAD else "request body"
            self._enqueue_error(ProtocolError(f"timed out waiting for the {what}", 408))

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the response in progress."""
        self.closing = True
        if not self._busy and not self._queue:
            self._close()

    @property
    def idle(self) -> bool:
        return not self._busy and not self._queue and (self._parser is None or self._parser.idle)


class _Drain:
    """Awaitable returned by ``HTTPProtocol.drain``; harmless if never awaited."""

    __slots__ = ("_conn",)

    def __init__(self, conn: HTTPProtocol) -> None:
        self._conn = conn

    def __await__(self) -> Generator[Any, None, None]:
        conn = self._conn
        if conn.closed:
            raise ClientDisconnected("client disconnected")
        if conn.write_paused:
            waiter: asyncio.Future[None] = conn.loop.create_future()
            if conn._drain_waiters is None:
                conn._drain_waiters = []
            conn._drain_waiters.append(waiter)
            yield from waiter.__await__()


def _canned(status: int, message: str, date_field: bytes = b"") -> bytes:
    """A small, complete plain-text response that ends with closing the connection."""
    body = (message + "\n").encode("utf-8", errors="replace")
    return b"".join(
        (
            status_line(status),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n",
            date_field,
            b"Server: " + SERVER_NAME.encode() + b"\r\n\r\n",
            body,
        )
    )
