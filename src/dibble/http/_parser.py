"""Bytes in, request events out: a strict HTTP/1.1 request parser.

``RequestParser`` wraps httptools (llhttp) and adds what llhttp leaves to its
user: size limits, Host rules, transfer-coding policy, and a single place where
every framing problem turns into a ``ProtocolError`` with a status hint.  It
does no I/O and knows nothing of asyncio; the server feeds it whatever the
socket produced and acts on the events it returns.

Invariants:

* ``feed`` returns events in wire order: for each request a ``RequestHead``,
  zero or more ``bytes`` (body data), then ``END_OF_MESSAGE``.  Pipelined
  requests in one chunk of data follow one another in the same list.
* A ``ProtocolError`` is always the last event ever produced.  Everything after
  the bad byte, including further pipelined requests, is dropped unread: once
  framing is in doubt nothing after it can be trusted.
* Memory held for an incomplete head is bounded by ``max_header_bytes`` plus
  one chunk of input, however slowly or cleverly the client sends it.
* A request that asks to switch protocols (``Upgrade``) is answered as plain
  HTTP/1.1, and the connection is not reused: the bytes after it belong to
  a protocol this parser does not speak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import httptools

from ._errors import (
    BodyTooLarge,
    HeadersTooLarge,
    ProtocolError,
    RequestLineTooLong,
    UnsupportedTransferCoding,
)
from ._limits import Limits
from ._request import RequestHead


class _EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


#: The event that closes each request, after its head and body data.
END_OF_MESSAGE: Final = _EndOfMessage()

Event = RequestHead | bytes | _EndOfMessage | ProtocolError

# HttpParserUpgrade is not an HttpParserError.
_PARSER_ERRORS: Final = (httptools.HttpParserError, httptools.HttpParserUpgrade)

# States of the parser between two feeds.
_IDLE: Final = 0
_HEAD: Final = 1
_BODY: Final = 2

# Larger input is parsed in slices of this size, so the bytes of a header
# line still being received are counted at least once per slice.
_SLICE: Final = 16 * 1024
_HEAD_SLICE: Final = 1024

# Header fields the parser itself must look at.
_FRAMING_FIELDS: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"upgrade", b"expect"}
)

# httptools reports the method as bytes; interning the common ones as str
# saves a decode per request.
_METHODS: Final = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")
}


_NO_HEAD: Final = RequestHead()
_NO_FIELDS: Final[list[tuple[bytes, bytes]]] = []
_NO_EVENTS: Final[list[Event]] = []


class RequestParser:
    """Parse a stream of pipelined HTTP/1.x requests from one connection.

    ``head_factory`` builds the object each request's head is stored in, so
    the application layer can use a subclass with extra slots.
    ``body_limit``, when given, is asked for the body limit of each request
    once its head is complete (a methlet may declare its own); otherwise
    ``limits.max_body_size`` applies.
    """

    __slots__ = (
        "_body_limit",
        "_body_received",
        "_events",
        "_failed",
        "_fields",
        "_head",
        "_head_bytes",
        "_head_factory",
        "_head_pending",
        "_head_touched",
        "_hosts",
        "_max_body_size",
        "_max_header_bytes",
        "_max_header_count",
        "_max_request_line",
        "_parser",
        "_request_body_limit",
        "_state",
        "_te",
        "_upgrade",
        "_url",
    )

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        head_factory: Callable[[], RequestHead] = RequestHead,
        body_limit: Callable[[RequestHead], int] | None = None,
    ) -> None:
        limits = limits or Limits()
        self._max_request_line = limits.max_request_line
        self._max_header_bytes = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        self._max_body_size = limits.max_body_size
        self._head_factory = head_factory
        self._body_limit = body_limit
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._failed = False
        self._state = _IDLE
        # Placeholders until the first request begins; no per-connection
        # allocation beyond the parser itself while a connection is idle.
        self._head: RequestHead = _NO_HEAD
        self._fields: list[tuple[bytes, bytes]] = _NO_FIELDS
        self._url = b""
        self._head_bytes = 0
        self._head_pending = 0
        self._head_touched = False
        self._hosts = 0
        self._te: bytes | None = None
        self._upgrade = False
        self._body_received = 0
        self._request_body_limit = 0

    @property
    def idle(self) -> bool:
        """True between requests: no partial request is buffered."""
        return self._state == _IDLE

    @property
    def in_head(self) -> bool:
        """True while a request line or header block is incomplete."""
        return self._state == _HEAD

    @property
    def failed(self) -> bool:
        """True once a ``ProtocolError`` was produced; later input is ignored."""
        return self._failed

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` and return the events it completes."""
        if self._failed:
            return []
        events: list[Event] = []
        self._events = events
        if len(data) > _SLICE:
            self._feed_slices(data)
        else:
            # _feed(), inlined for the common small read.
            self._head_touched = False
            try:
                self._parser.feed_data(data)
            except _PARSER_ERRORS as exc:
                self._translate(exc)
            else:
                if self._state == _HEAD:
                    self._count_pending(len(data))
        self._events = _NO_EVENTS  # hold no request once it is handed over
        return events

    def _feed_slices(self, data: bytes) -> None:
        view = memoryview(data)
        start = 0
        while start < len(data) and not self.failed:  # a property: set by _feed
            # Body bytes go in one piece; anything that may hold a head in
            # small slices, so a header line that never ends is caught within
            # a slice of the limit (see _count_pending).  A head that follows
            # a body within the same read is counted from the next read on.
            step = len(data) if self._state == _BODY else _HEAD_SLICE
            self._feed(view[start : start + step])
            start += step

    def _feed(self, data: memoryview) -> None:
        self._head_touched = False
        try:
            self._parser.feed_data(data)
        except _PARSER_ERRORS as exc:
            self._translate(exc)
        else:
            if self._state == _HEAD:
                self._count_pending(len(data))

    def _translate(self, exc: Exception) -> None:
        """Turn an httptools error into the ProtocolError event (or a bug)."""
        if isinstance(exc, httptools.HttpParserUpgrade):
            # The upgrade request itself is complete (see the module notes).
            self._failed = True
        elif isinstance(exc, httptools.HttpParserCallbackError):
            cause = exc.__context__
            if not isinstance(cause, ProtocolError):
                raise exc  # a bug in this module, not bad input
            self._fail(cause)
        elif isinstance(exc, httptools.HttpParserInvalidMethodError):
            self._fail(ProtocolError("malformed request line: unknown method"))
        elif isinstance(exc, httptools.HttpParserInvalidURLError):
            self._fail(ProtocolError("malformed request target"))
        else:
            self._fail(ProtocolError(f"malformed request: {_reason(exc)}"))

    def _count_pending(self, size: int) -> None:
        # A chunk that neither began a request nor completed a header line is
        # all head bytes that httptools is holding for us; count it so a
        # never-ending header value cannot grow without bound.
        if self._head_touched:
            self._head_pending = 0
        else:
            self._head_pending += size
            if self._head_bytes + self._head_pending > self._max_header_bytes:
                self._fail(HeadersTooLarge("request header fields too large"))

    def stop(self) -> None:
        """Parse nothing more: the caller refused the request in progress."""
        self._failed = True

    def _fail(self, error: ProtocolError) -> None:
        self._failed = True
        self._events.append(error)

    # httptools callbacks.  Raising ProtocolError here aborts the parse; feed()
    # finds it as the context of httptools' own callback error.  They run for
    # every request, so they do as little as they can: the common header costs
    # one lower() and one set lookup.

    def on_message_begin(self) -> None:
        self._state = _HEAD
        self._head = self._head_factory()
        self._fields = []
        self._url = b""
        self._head_bytes = 0
        self._head_pending = 0
        self._head_touched = True
        self._hosts = 0
        self._te = None
        self._upgrade = False
        self._body_received = 0

    def on_url(self, url: bytes) -> None:
        url = self._url + url if self._url else url
        self._url = url
        if len(url) > self._max_request_line:
            raise RequestLineTooLong(f"request target longer than {self._max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_touched = True
        self._head_bytes += len(name) + len(value) + 4
        fields = self._fields
        if self._head_bytes > self._max_header_bytes or len(fields) >= self._max_header_count:
            raise HeadersTooLarge(
                f"request header fields too large (limit {self._max_header_count} "
                f"fields, {self._max_header_bytes} bytes)"
            )
        if self._state != _HEAD:
            return  # a chunked trailer field: counted, then ignored
        if value and (value[-1] == 32 or value[-1] == 9):
            value = value.rstrip(b" \t")  # RFC 9112 §5: trailing OWS is not part of it
        name = name.lower()
        if name in _FRAMING_FIELDS:
            self._framing_field(name, value)
        fields.append((name, value))

    def _framing_field(self, name: bytes, value: bytes) -> None:
        if name == b"host":
            self._hosts += 1
        elif name == b"content-length":
            # llhttp has already refused anything but digits and duplicates.
            self._head.content_length = int(value)
        elif name == b"transfer-encoding":
            self._te = value if self._te is None else self._te + b"," + value
        elif name == b"upgrade":
            self._upgrade = True
        elif name == b"expect":
            self._head.expect_continue = True
            if value.strip().lower() != b"100-continue":
                raise ProtocolError(f"unsupported expectation: {value.decode('latin-1')!r}", 417)

    def on_headers_complete(self) -> None:
        head = self._head
        parser = self._parser
        method = parser.get_method()
        head.method = _METHODS.get(method) or method.decode("ascii")
        head.target = self._url
        head.raw_headers = self._fields
        version = parser.get_http_version()
        if version == "1.1":
            if self._hosts != 1:
                raise ProtocolError(
                    "missing Host header" if self._hosts == 0 else "more than one Host header"
                )
        elif version == "1.0":
            head.version = version
            if self._hosts > 1:
                raise ProtocolError("more than one Host header")
            head.expect_continue = False  # RFC 9110 §10.1.1: ignore it from 1.0 clients
        else:
            raise ProtocolError(f"HTTP/{version} is not supported", 505)
        if self._te is not None:
            if version == "1.0":
                raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if self._te.strip().lower() != b"chunked":
                raise UnsupportedTransferCoding(
                    f"unsupported transfer coding: {self._te.decode('latin-1')!r}"
                )
            head.chunked = True
        if method == b"CONNECT":
            raise ProtocolError("CONNECT is not supported", 501)
        if self._upgrade and parser.should_upgrade():
            head.upgrade = True
            head.keep_alive = False
        else:
            head.keep_alive = parser.should_keep_alive()
        body_limit = self._body_limit
        limit = body_limit(head) if body_limit is not None else self._max_body_size
        self._request_body_limit = limit
        if head.content_length is not None and head.content_length > limit:
            raise BodyTooLarge(f"request body larger than {limit} bytes")
        self._state = _BODY
        self._events.append(head)
        # Drop references to this request, so an idle keep-alive connection
        # holds nothing of the requests it served.
        self._head = _NO_HEAD
        self._fields = _NO_FIELDS

    def on_body(self, body: bytes) -> None:
        self._body_received += len(body)
        if self._body_received > self._request_body_limit:
            raise BodyTooLarge(f"request body larger than {self._request_body_limit} bytes")
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._state = _IDLE
        self._events.append(END_OF_MESSAGE)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:1].lower() + text[1:] if text else type(exc).__name__
