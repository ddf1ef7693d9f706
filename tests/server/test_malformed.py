"""Bad input over a real socket: every class gets its status, a closed connection,
and a server that still answers the next client.

Each test sends raw bytes with ``send_raw`` (which reads until the server
closes), then checks with a fresh ``http.client`` request that the server is
unharmed.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable

import pytest

import dibble

Serve = Callable[..., dibble.HTTPServer]

SMALL_LIMIT = 10


class Target(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    def onUpload(self) -> str:
        return f"got {len(self.request.body)} bytes"

    @dibble.max_body_size(SMALL_LIMIT)
    def onSmall(self) -> str:
        return f"got {len(self.request.body)} bytes"

    def onBadHeader(self) -> dibble.Response:
        return dibble.Response("body", headers={"X-Split": "a\r\nX-Injected: b"})

    def onBadHeaderName(self) -> dibble.Response:
        return dibble.Response("body", headers={"X Injected": "b"})

    def onWriteBadHeader(self) -> None:
        self.write_ok_headers("text/plain", {"X-Split": "a\r\nX-Injected: b"})
        self.write("body")

    async def onAsyncWriteBadHeader(self) -> None:
        self.write_ok_headers("text/plain", {"X-Split": "a\r\nX-Injected: b"})
        self.write("body")

    @dibble.blocking
    def onBlockingWriteBadHeader(self) -> None:
        self.write_ok_headers("text/plain", {"X-Split": "a\r\nX-Injected: b"})
        self.write("body")

    async def onFlushBadHeader(self) -> None:
        self.write_ok_headers("text/plain", {"X-Split": "a\r\nX-Injected: b"})
        self.write("body")
        await self.flush()

    def onWriteBadStatus(self) -> None:
        self.write_headers(1000)
        self.write("body")

    def onUnserializable(self) -> dict[str, object]:
        return {"x": object()}

    async def onAsyncUnserializable(self) -> dict[str, object]:
        return {"x": object()}

    @dibble.blocking
    def onBlockingUnserializable(self) -> dict[str, object]:
        return {"x": object()}

    def onBadContentType(self) -> dibble.Response:
        return dibble.Response("body", content_type="text/plain\r\nX-Injected: b")

    async def onAsyncSurrogate(self) -> str:
        return "lone \udcff surrogate"


@pytest.fixture
def port(live_server: Serve) -> int:
    # A short grace period: a test that leaves a request hanging must not
    # make the shutdown after it wait long.
    server = live_server(Target(), graceful_timeout=0.2)
    return server.addresses[0][1]


def send_raw(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    """Send ``data`` on a fresh connection and return everything until the server closes.

    Fails (socket.timeout) if the server does not close the connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:  # the server closed the connection
                return bytes(received)
            received += chunk


def status_of(response: bytes) -> int:
    assert response, "the server closed the connection without answering"
    line = response.split(b"\r\n", 1)[0]
    version, code, _ = line.split(b" ", 2)
    assert version == b"HTTP/1.1", line
    return int(code)


def assert_still_serving(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"home"
    finally:
        conn.close()


def check_rejected(port: int, data: bytes, status: int) -> bytes:
    """``data`` is answered with ``status`` and a close, and the server lives on."""
    response = send_raw(port, data)
    assert status_of(response) == status, response
    assert response.count(b"HTTP/1.1 ") == 1, response
    assert b"Connection: close\r\n" in response
    assert_still_serving(port)
    return response


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


MALFORMED_400 = {
    "content-length-and-transfer-encoding": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: 5\nTransfer-Encoding: chunked\n",
        b"0\r\n\r\n",
    ),
    "duplicate-content-length": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: 5\nContent-Length: 5\n", b"hello"
    ),
    "conflicting-content-length": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: 5\nContent-Length: 6\n", b"hello!"
    ),
    "content-length-list": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: 5, 5\n", b"hello"
    ),
    "content-length-not-digits": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: 5a\n", b"hello"
    ),
    "content-length-negative": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: -5\n", b"hello"
    ),
    "content-length-plus-sign": request(
        "POST /upload HTTP/1.1\nHost: t\nContent-Length: +5\n", b"hello"
    ),
    "chunk-size-not-hex": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
    ),
    "chunk-size-negative": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
    ),
    "chunk-size-overflow": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
        b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ),
    "chunk-size-bare-lf": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n", b"5\nhello\n0\n\n"
    ),
    "chunk-data-bare-lf": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
        b"5\r\nhello\n0\r\n\r\n",
    ),
    "chunk-data-longer-than-size": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
        b"5\r\nhelloXX\r\n0\r\n\r\n",
    ),
    "cr-in-header-name": b"GET / HTTP/1.1\r\nHost: t\r\nX\rY: 1\r\n\r\n",
    "lf-in-header-name": b"GET / HTTP/1.1\r\nHost: t\r\nX\nY: 1\r\n\r\n",
    "nul-in-header-name": b"GET / HTTP/1.1\r\nHost: t\r\nX\x00Y: 1\r\n\r\n",
    "cr-in-header-value": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
    "nul-in-header-value": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n",
    "bare-lf-line-endings": b"GET / HTTP/1.1\nHost: t\nX: a\n\n",
    "bare-lf-in-header-block": b"GET / HTTP/1.1\r\nHost: t\nX: a\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: t\r\nX : 1\r\n\r\n",
    "tab-before-colon": b"GET / HTTP/1.1\r\nHost: t\r\nX\t: 1\r\n\r\n",
    "obs-fold-space": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
    "obs-fold-tab": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n\tb\r\n\r\n",
    "missing-host": b"GET / HTTP/1.1\r\n\r\n",
    "duplicate-host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "duplicate-host-http10": b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    "transfer-encoding-in-http10": request(
        "POST /upload HTTP/1.0\nTransfer-Encoding: chunked\n", b"0\r\n\r\n"
    ),
    "chunked-not-last": request(
        "POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: chunked, gzip\n", b"0\r\n\r\n"
    ),
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "unknown-http-minor-version": b"GET / HTTP/1.2\r\nHost: t\r\n\r\n",
    "tls-client-hello": bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02",
    "garbage": b"\x00\x01\x02\xff garbage \r\n\r\n",
}


@pytest.mark.parametrize("data", MALFORMED_400.values(), ids=MALFORMED_400.keys())
def test_malformed_request_gets_400_and_close(port: int, data: bytes) -> None:
    check_rejected(port, data, 400)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/0.9\r\nHost: t\r\n\r\n", 505),
        (b"GET /\r\n\r\n", 505),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n", 501),
        (b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", 417),
    ],
    ids=["http09-version", "http09-no-version", "http20", "connect", "unknown-expectation"],
)
def test_unsupported_protocol_features(port: int, data: bytes, status: int) -> None:
    check_rejected(port, data, status)


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked", "identity", "chunked;q=1"])
def test_unknown_transfer_coding_is_501(port: int, coding: str) -> None:
    data = request(f"POST /upload HTTP/1.1\nHost: t\nTransfer-Encoding: {coding}\n", b"0\r\n\r\n")
    check_rejected(port, data, 501)


def test_nothing_pipelined_after_an_invalid_request_is_answered(port: int) -> None:
    good = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    bad = b"GET / HTTP/1.1\r\nX : y\r\n\r\n"
    response = send_raw(port, good + bad + good + good)
    # The request before the bad one is answered, the bad one gets 400, and
    # nothing after it: its framing cannot be trusted.
    assert response.count(b"HTTP/1.1 200 OK") == 1
    assert response.count(b"HTTP/1.1 400 Bad Request") == 1
    assert response.count(b"HTTP/1.1 ") == 2
    assert response.index(b"200 OK") < response.index(b"400 Bad Request")
    assert response.count(b"home") == 1
    assert_still_serving(port)


def test_request_line_over_8_kib_is_414(port: int) -> None:
    target = "/" + "a" * (8 * 1024)
    check_rejected(port, request(f"GET {target} HTTP/1.1\nHost: t\n"), 414)


def test_request_target_of_8_kib_is_accepted(port: int) -> None:
    target = "/" + "a" * (8 * 1024 - 1)
    response = send_raw(port, request(f"GET {target} HTTP/1.1\nHost: t\nConnection: close\n"))
    assert status_of(response) == 404  # served: no methlet has that name


def test_endless_request_line_is_414_without_waiting_for_its_end(port: int) -> None:
    check_rejected(port, b"GET /" + b"a" * 9000, 414)


def test_headers_over_64_kib_are_431(port: int) -> None:
    fields = "".join(f"X-{i}: {'v' * 1000}\n" for i in range(66))
    check_rejected(port, request(f"GET / HTTP/1.1\nHost: t\n{fields}"), 431)


def test_one_endless_header_value_is_431_without_waiting_for_its_end(port: int) -> None:
    data = b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * (70 * 1024)
    response = send_raw(port, data, timeout=1.0)
    assert status_of(response) == 431


def test_more_than_100_header_fields_are_431(port: int) -> None:
    fields = "".join(f"X-{i}: v\n" for i in range(100))  # 101 with Host
    check_rejected(port, request(f"GET / HTTP/1.1\nHost: t\n{fields}"), 431)


def test_100_header_fields_are_accepted(port: int) -> None:
    fields = "".join(f"X-{i}: v\n" for i in range(98))  # 100 with Host and Connection
    response = send_raw(port, request(f"GET / HTTP/1.1\nHost: t\nConnection: close\n{fields}"))
    assert status_of(response) == 200


def test_body_over_16_mib_is_413_before_the_body_is_sent(port: int) -> None:
    # Only the head is sent: the answer must not wait for the body.
    head = request(f"POST /upload HTTP/1.1\nHost: t\nContent-Length: {16 * 1024 * 1024 + 1}\n")
    check_rejected(port, head, 413)


def test_body_over_a_methlet_limit_is_413(port: int) -> None:
    head = request(f"POST /small HTTP/1.1\nHost: t\nContent-Length: {SMALL_LIMIT + 1}\n")
    check_rejected(port, head, 413)


def test_body_at_a_methlet_limit_is_accepted(port: int) -> None:
    data = request(
        f"POST /small HTTP/1.1\nHost: t\nConnection: close\nContent-Length: {SMALL_LIMIT}\n",
        b"x" * SMALL_LIMIT,
    )
    response = send_raw(port, data)
    assert status_of(response) == 200
    assert response.endswith(f"got {SMALL_LIMIT} bytes".encode())


def test_chunked_body_over_a_methlet_limit_is_413(port: int) -> None:
    data = request(
        "POST /small HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
        b"6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n",
    )
    check_rejected(port, data, 413)


def test_expect_continue_over_the_limit_is_413_without_100_continue(port: int) -> None:
    head = request(
        f"POST /small HTTP/1.1\nHost: t\nExpect: 100-continue\nContent-Length: {SMALL_LIMIT + 1}\n"
    )
    response = check_rejected(port, head, 413)
    assert b"100 Continue" not in response


@pytest.mark.parametrize("path", ["/bad-header", "/bad-header-name"])
def test_response_header_that_would_split_the_response_is_500(port: int, path: str) -> None:
    response = send_raw(port, request(f"GET {path} HTTP/1.1\nHost: t\nConnection: close\n"))
    assert status_of(response) == 500
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"X-Split" not in head
    assert b"Injected" not in head
    assert b"\r\nX-Injected" not in body  # the test-mode traceback shows it escaped
    assert_still_serving(port)


def test_connection_survives_a_500_for_a_bad_response_header(port: int) -> None:
    data = request("GET /bad-header HTTP/1.1\nHost: t\n") + request(
        "GET / HTTP/1.1\nHost: t\nConnection: close\n"
    )
    response = send_raw(port, data)
    assert response.startswith(b"HTTP/1.1 500 ")
    assert b"HTTP/1.1 200 OK" in response
    assert response.endswith(b"home")


@pytest.mark.parametrize(
    "path",
    [
        "/write-bad-header",
        "/async-write-bad-header",
        "/blocking-write-bad-header",
        "/flush-bad-header",
        "/write-bad-status",
    ],
)
def test_write_style_response_with_a_bad_head_is_500(port: int, path: str) -> None:
    data = request(f"GET {path} HTTP/1.1\nHost: t\nConnection: close\n")
    response = send_raw(port, data, timeout=1.0)
    assert status_of(response) == 500
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"Injected" not in head
    assert b"\r\nX-Injected" not in body
    assert_still_serving(port)


@pytest.mark.parametrize(
    "path",
    [
        "/unserializable",
        "/async-unserializable",
        "/blocking-unserializable",
        "/bad-content-type",
        "/async-surrogate",
    ],
)
def test_result_that_cannot_be_rendered_is_500(port: int, path: str) -> None:
    data = request(f"GET {path} HTTP/1.1\nHost: t\nConnection: close\n")
    response = send_raw(port, data, timeout=0.5)
    assert status_of(response) == 500
    assert b"Injected" not in response.partition(b"\r\n\r\n")[0]


@pytest.mark.parametrize("target", ["/%ff", "/spam/%C3%28"])
def test_path_that_is_not_utf8_gets_an_answer(port: int, target: str) -> None:
    response = send_raw(port, request(f"GET {target} HTTP/1.1\nHost: t\nConnection: close\n"))
    assert status_of(response) in (400, 404)
    assert_still_serving(port)


def test_percent_encoded_utf8_path_is_decoded(port: int) -> None:
    response = send_raw(port, request("GET /caf%C3%A9 HTTP/1.1\nHost: t\nConnection: close\n"))
    assert status_of(response) == 404
    assert "/café".encode() in response
