"""Testing dibble applications without a network.

``TestClient`` runs requests through the real protocol and application
layers over an in-memory transport: every byte is parsed by the same code a
socket would feed, and the response bytes are parsed back with httptools.
No port is opened, and ``async``, inline and thread-pool methlets all work::

    client = TestClient(Calendar())
    response = client.get("/?year=2003")
    assert response.status == 200

``MockTransport`` is the in-memory transport, for protocol-level tests that
feed raw bytes and look at what was written.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import httptools

from .app import HTTPServer, Plugin
from .server import Context, HTTPProtocol, Listener, ServerConfig, new_event_loop

__all__ = ["MockTransport", "TestClient", "TestResponse"]


class MockTransport(asyncio.Transport):
    """An in-memory transport that records what the protocol writes."""

    def __init__(
        self,
        peer: tuple[str, int] = ("127.0.0.1", 54321),
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.eof_written = False
        self.aborted = False
        self.reading = True
        self._peer = peer
        self._sock = sock
        self.on_write: Any = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            return
        self.written += data
        if self.on_write is not None:
            self.on_write(bytes(data))

    def take(self) -> bytes:
        """Everything written since the last call."""
        data = bytes(self.written)
        self.written.clear()
        return data

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        # Nothing more will be written; for the tests that is "closed".
        self.eof_written = True
        self.closed = True

    def abort(self) -> None:
        self.closed = True
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {
            "peername": self._peer,
            "sockname": ("127.0.0.1", 8888),
            "socket": self._sock,
        }.get(name, default)


class TestResponse:
    """A parsed response: ``status``, ``headers`` (lower-cased names), ``body``."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.header_list = headers
        self.headers = dict(headers)
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status} {len(self.body)} bytes>"


class _HeadComplete(Exception):
    pass


class _ResponseReader:
    """Collects one response at a time from the bytes a protocol wrote.

    ``methods`` lists the methods of requests still waiting for a response,
    so that the answer to a HEAD request is known to have no body.
    """

    def __init__(self) -> None:
        self.done: list[TestResponse] = []
        self.methods: deque[str] = deque()
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._parser = httptools.HttpResponseParser(self)
        self.interim: list[int] = []

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadComplete):
                raise
            # The server writes each response head on its own, so nothing
            # after a HEAD response's head is lost by starting afresh here.
            self._parser = httptools.HttpResponseParser(self)

    def eof(self) -> None:
        # A body delimited by the end of the connection is complete now.
        if self._headers or self._body:
            self.on_message_complete()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self.interim.append(status)
        elif self.methods and self.methods[0] == "HEAD":
            self.on_message_complete()
            raise _HeadComplete

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._headers = []
            return
        self.done.append(TestResponse(status, self._headers, b"".join(self._body)))
        if self.methods:
            self.methods.popleft()
        self._headers = []
        self._body = []


class TestClient:
    """Send requests to plugins or an ``HTTPServer`` in process.

    Requests share one keep-alive connection until the server closes it,
    then a new one is made.  Test mode is on unless ``test_mode=False``.
    With ``cookies=True`` it keeps the cookies responses set, as a browser
    would, and sends them with later requests (``client.cookies``).
    """

    __test__ = False

    def __init__(
        self,
        *targets: Plugin | HTTPServer,
        test_mode: bool = True,
        cookies: bool = False,
        **settings: Any,
    ) -> None:
        self.context = Context()
        #: The cookie jar (name -> value) when ``cookies=True``, else None.
        self.cookies: dict[str, str] | None = {} if cookies else None
        servers = [t for t in targets if isinstance(t, HTTPServer)]
        plugins = [t for t in targets if isinstance(t, Plugin)]
        if servers and plugins:
            raise TypeError("pass either plugins or one HTTPServer, not both")
        if servers:
            self.server = servers[0]
        else:
            settings.setdefault("access_log", False)
            self.server = HTTPServer(
                ("127.0.0.1", 0), self.context, test_mode=test_mode, **settings
            )
            self.server.register(*plugins)
        self.loop = new_event_loop()
        self.exited = False
        self.listener = Listener(
            self.server.application(self._stop), self.server.config, self.loop
        )
        self.protocol: HTTPProtocol | None = None
        self.transport: MockTransport | None = None
        self._reader = _ResponseReader()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def config(self) -> ServerConfig:
        return self.server.config

    def _stop(self) -> None:
        self.exited = True

    def connect(self) -> MockTransport:
        """Open a fresh in-memory connection (closing the previous one)."""
        if self.protocol is not None and self.transport is not None:
            self.transport.close()
            self.protocol.connection_lost(None)
        protocol = HTTPProtocol(self.listener)
        transport = MockTransport()
        transport.on_write = self._on_write
        self._reader = _ResponseReader()
        protocol.connection_made(transport)
        self.protocol, self.transport = protocol, transport
        return transport

    def _on_write(self, data: bytes) -> None:
        self._reader.feed(data)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def send_raw(
        self,
        data: bytes,
        responses: int = 1,
        timeout: float = 10.0,
        methods: Iterable[str] = (),
    ) -> list[TestResponse]:
        """Feed raw request bytes; wait for ``responses`` complete responses.

        ``methods`` names the methods of the requests in ``data`` when any is
        HEAD (whose response has no body to wait for).
        """
        if self.protocol is None or self.transport is None or self.transport.closed:
            self.connect()
        assert self.protocol is not None
        assert self.transport is not None
        self._reader.methods.extend(methods)
        self.protocol.data_received(data)
        return self.loop.run_until_complete(self._collect(responses, timeout))

    async def _collect(self, count: int, timeout: float) -> list[TestResponse]:
        reader = self._reader
        transport = self.transport
        assert transport is not None

        async def wait() -> None:
            while len(reader.done) < count:
                if transport.closed:
                    reader.eof()
                    if len(reader.done) < count:
                        raise ConnectionError(
                            f"connection closed after {len(reader.done)} of {count} responses"
                        )
                    break
                self._waiter = self.loop.create_future()
                # Closing is not a write; poll it at a short interval.
                await asyncio.wait({self._waiter}, timeout=0.01)

        await asyncio.wait_for(wait(), timeout)
        done, reader.done[:] = list(reader.done[:count]), reader.done[count:]
        return done

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        version: str = "1.1",
    ) -> TestResponse:
        """Send one request and return its response."""
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params, doseq=True)
        fields: list[tuple[str, str]] = [("Host", "testserver")]
        if headers is not None:
            fields.extend(headers.items() if isinstance(headers, Mapping) else headers)
        if data is not None:
            body = urlencode(data, doseq=True).encode()
            fields.append(("Content-Type", "application/x-www-form-urlencoded"))
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            fields.append(("Content-Type", "application/json"))
        if body is not None:
            fields.append(("Content-Length", str(len(body))))
        jar = self.cookies
        if jar and not any(k.lower() == "cookie" for k, _ in fields):
            fields.append(("Cookie", "; ".join(f"{k}={v}" for k, v in jar.items())))
        head = f"{method} {path} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
        raw = head.encode("latin-1") + b"\r\n" + (body or b"")
        (response,) = self.send_raw(raw, methods=[method])
        if jar is not None:
            _keep_cookies(jar, response)
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        if self.loop.is_closed():
            return  # closed already
        if self.protocol is not None:
            if self.transport is not None:
                self.transport.close()
            self.protocol.connection_lost(None)
            self.protocol = None
        self.server.closed()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _keep_cookies(jar: dict[str, str], response: TestResponse) -> None:
    """Update ``jar`` from a response's ``Set-Cookie`` fields (one host, any path)."""
    for name, value in response.header_list:
        if name != "set-cookie":
            continue
        pair, *attributes = value.split(";")
        key, _, text = pair.strip().partition("=")
        gone = any(
            a.strip().lower().startswith("max-age=")
            and a.strip()[8:].lstrip("-").isdigit()
            and int(a.strip()[8:]) <= 0
            for a in attributes
        )
        if gone:
            jar.pop(key, None)
        else:
            jar[key] = text
