"""The server over real 127.0.0.1 sockets, with real clients: http.client, raw sockets, curl.

Connection handling (keep-alive, pipelining, HTTP/1.0, ``Expect``, HEAD,
chunked bodies both ways), timeouts, the connection cap, flow control,
connection vetoes and concurrency, as a client on the network sees them.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest

import dibble

Serve = Callable[..., dibble.HTTPServer]

CHUNK = 64 * 1024
STREAM_CHUNKS = 512  # 32 MiB: far more than the socket buffers can hold


class Loop(dibble.Plugin):
    """Methlets for the loopback tests; tests reach their hooks through attributes."""

    def __init__(self) -> None:
        self.release: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.progress = 0
        self.finished = threading.Event()
        self.big_error: BaseException | None = None
        self.slow_started = threading.Event()
        self.slow_gate = threading.Event()

    def onHome(self) -> str:
        return "home"

    def onEcho(self, n: str) -> str:
        return f"echo {n}"

    def onPort(self) -> str:
        client = self.request.client
        assert client is not None
        return str(client[1])

    def onHeader(self) -> str:
        return repr(self.request.headers.get("x-value"))

    def onUpload(self) -> str:
        body = self.request.body
        return f"{len(body)} {hashlib.sha256(body).hexdigest()}"

    def onForm(self, year: int) -> str:
        return f"year={year}"

    def onWritten(self) -> None:
        self.write_ok_headers("text/plain; charset=utf-8", {"X-Style": "write"})
        self.write("written")

    async def onStream(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.release = asyncio.Event()
        self.write_ok_headers("text/plain; charset=utf-8")
        self.write("first;")
        await self.flush()
        await asyncio.wait_for(self.release.wait(), 5)
        self.write("second")

    async def onBig(self) -> None:
        self.write_ok_headers("application/octet-stream")
        try:
            for i in range(STREAM_CHUNKS):
                self.write(b"x" * CHUNK)
                await self.flush()
                self.progress = i + 1
        except BaseException as exc:
            self.big_error = exc
            raise
        finally:
            self.finished.set()

    async def onWho(self, n: str) -> str:
        await asyncio.sleep(0.05)
        return f"{n} {self.request.path} {self.request.get('q')}"

    @dibble.blocking
    def onSlow(self) -> str:
        self.slow_started.set()
        assert self.slow_gate.wait(5)
        return "slow"


@pytest.fixture
def plugin() -> Loop:
    return Loop()


@pytest.fixture
def port(live_server: Serve, plugin: Loop) -> int:
    return live_server(plugin).addresses[0][1]


# --- helpers ------------------------------------------------------------------------


@pytest.fixture
def connect() -> Iterator[Callable[[int], socket.socket]]:
    """Open raw client sockets (3 s timeout) that are closed after the test."""
    opened: list[socket.socket] = []

    def open_socket(port: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.close()


def read_to_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def read_until(sock: socket.socket, marker: bytes, data: bytes = b"") -> bytes:
    """Read until ``marker`` has arrived; fails on EOF or the socket's timeout."""
    buffer = bytearray(data)
    while marker not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}; got {bytes(buffer)!r}"
        buffer += chunk
    return bytes(buffer)


class _Recording(io.BytesIO):
    def close(self) -> None:
        pass  # each HTTPResponse closes its "file"; the next one reads on from it


class _Replay:
    """Enough of a socket for http.client.HTTPResponse to parse recorded bytes."""

    def __init__(self, data: bytes) -> None:
        self._file = _Recording(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self._file


def parse_responses(
    data: bytes, count: int, method: str = "GET"
) -> list[tuple[int, http.client.HTTPMessage, bytes]]:
    """Parse ``count`` consecutive responses (any framing) from recorded bytes."""
    replay = _Replay(data)
    out = []
    for _ in range(count):
        response = http.client.HTTPResponse(cast(socket.socket, replay), method=method)
        response.begin()
        out.append((response.status, response.msg, response.read()))
        response.close()
    assert replay.makefile("rb").read() == b"", "bytes left after the last response"
    return out


def release_stream(plugin: Loop) -> None:
    """Let a waiting ``onStream`` write its second part (from the test's thread)."""
    assert plugin.loop is not None and plugin.release is not None
    plugin.loop.call_soon_threadsafe(plugin.release.set)


def seconds_until_send_fails(
    sock: socket.socket, data: bytes, interval: float, limit: float
) -> float | None:
    """Send ``data`` every ``interval`` s until the server has closed; None if it never did.

    The server may answer (a 408) and shut down its side before it stops
    reading, so its end-of-stream counts as closed as much as a failed send.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - started
            if not chunk:
                return time.monotonic() - started
    return None


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_curl(curl: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [curl, "--silent", "--show-error", "--max-time", "5", *args],
        input=stdin,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


# --- keep-alive, pipelining, HTTP/1.0, Connection: close ------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        ports = set()
        conn.connect()
        sock = conn.sock
        for i in range(5):
            conn.request("GET", f"/echo/{i}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == f"echo {i}".encode()
            assert response.getheader("Connection") is None  # HTTP/1.1 keeps by default
            conn.request("GET", "/port")
            ports.add(conn.getresponse().read())
            assert conn.sock is sock  # http.client never had to reconnect
        assert ports == {str(sock.getsockname()[1]).encode()}
    finally:
        conn.close()


def test_16_pipelined_requests_are_answered_in_order(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    requests = [f"GET /echo/{i} HTTP/1.1\r\nHost: t\r\n\r\n" for i in range(15)]
    requests.append("GET /echo/15 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    sock = connect(port)
    sock.sendall("".join(requests).encode())
    responses = parse_responses(read_to_eof(sock), 16)
    assert [body for _, _, body in responses] == [f"echo {i}".encode() for i in range(16)]
    assert all(status == 200 for status, _, _ in responses)


def test_pipelining_past_the_queue_bound_answers_everything_in_order(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    # 200 requests: far more than max_pipeline (32), so the server has to stop
    # and resume reading from this client along the way.
    count = 200
    requests = [f"GET /echo/{i} HTTP/1.1\r\nHost: t\r\n\r\n" for i in range(count - 1)]
    requests.append(f"GET /echo/{count - 1} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    sock = connect(port)
    sock.sendall("".join(requests).encode())
    responses = parse_responses(read_to_eof(sock), count)
    assert [body for _, _, body in responses] == [f"echo {i}".encode() for i in range(count)]


def test_pipelined_requests_with_bodies_and_mixed_methlets_stay_in_order(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /who/1 HTTP/1.1\r\nHost: t\r\n\r\n"  # async, takes 50 ms
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nde\r\n0\r\n\r\n"
        b"GET /echo/last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    bodies = [body for _, _, body in parse_responses(read_to_eof(sock), 4)]
    assert bodies == [
        f"3 {hashlib.sha256(b'abc').hexdigest()}".encode(),
        b"1 /who/1 None",
        f"2 {hashlib.sha256(b'de').hexdigest()}".encode(),
        b"echo last",
    ]


def test_http10_closes_after_the_response_by_default(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"GET /echo/a HTTP/1.0\r\n\r\n")
    ((status, headers, body),) = parse_responses(read_to_eof(sock), 1)
    assert (status, body) == (200, b"echo a")
    assert headers["Connection"] == "close"


def test_http10_keep_alive_is_honoured(port: int, connect: Callable[[int], socket.socket]) -> None:
    sock = connect(port)
    sock.sendall(b"GET /echo/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    first = read_until(sock, b"echo a")
    sock.sendall(b"GET /echo/b HTTP/1.0\r\n\r\n")  # no keep-alive: the last one
    responses = parse_responses(first + read_to_eof(sock), 2)
    assert responses[0][1]["Connection"].lower() == "keep-alive"
    assert responses[0][2] == b"echo a"
    assert responses[1][1]["Connection"] == "close"
    assert responses[1][2] == b"echo b"


def test_http10_write_style_page_is_served(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"GET /written HTTP/1.0\r\n\r\n")
    ((status, headers, body),) = parse_responses(read_to_eof(sock), 1)
    assert (status, body) == (200, b"written")
    assert headers["X-Style"] == "write"
    assert "Transfer-Encoding" not in headers  # HTTP/1.0 clients cannot read chunks


def test_connection_close_closes_after_the_response(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    # The second request must not be answered: the first one said close.
    sock.sendall(
        b"GET /echo/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        b"GET /echo/2 HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    data = read_to_eof(sock)
    ((status, headers, body),) = parse_responses(data, 1)
    assert (status, body) == (200, b"echo 1")
    assert headers["Connection"] == "close"


def test_absolute_form_target_is_routed_by_its_path(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(
        b"GET http://example.test/echo/abs?x=1 HTTP/1.1\r\nHost: example.test\r\n"
        b"Connection: close\r\n\r\n"
    )
    ((status, _, body),) = parse_responses(read_to_eof(sock), 1)
    assert (status, body) == (200, b"echo abs")


def test_header_values_keep_obs_text_as_latin1(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(
        b"GET /header HTTP/1.1\r\nHost: t\r\nX-Value: caf\xe9\r\nConnection: close\r\n\r\n"
    )
    ((_, _, body),) = parse_responses(read_to_eof(sock), 1)
    assert body.decode() == repr("caf\xe9")


def test_header_values_lose_surrounding_whitespace(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(
        b"GET /header HTTP/1.1\r\nHost: t\r\nX-Value:  a b \t \r\nConnection: close\r\n\r\n"
    )
    ((_, _, body),) = parse_responses(read_to_eof(sock), 1)
    assert body == repr("a b").encode()


# --- Expect: 100-continue, HEAD, chunked bodies ------------------------------------------


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    body = b"y" * 2000
    sock = connect(port)
    sock.sendall(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
        b"Content-Length: 2000\r\nConnection: close\r\n\r\n"
    )
    interim = read_until(sock, b"\r\n\r\n")
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(body)
    ((status, _, answer),) = parse_responses(read_to_eof(sock), 1)
    assert status == 200
    assert answer == f"2000 {hashlib.sha256(body).hexdigest()}".encode()


def test_100_continue_waits_for_the_pipelined_response_before_it(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(
        b"GET /who/1 HTTP/1.1\r\nHost: t\r\n\r\n"  # async: answered after 50 ms
        b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
        b"Content-Length: 3\r\nConnection: close\r\n\r\n"
    )
    data = read_until(sock, b"100 Continue\r\n\r\n")
    assert data.endswith(b"\r\n\r\n1 /who/1 NoneHTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(b"abc")
    rest = read_to_eof(sock)
    ((status, _, body),) = parse_responses(rest, 1)
    assert (status, body) == (200, f"3 {hashlib.sha256(b'abc').hexdigest()}".encode())


def test_expect_100_continue_from_http10_is_ignored(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"POST /upload HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
    data = read_to_eof(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"100 Continue" not in data


def test_curl_expect_100_continue(port: int, curl: str) -> None:
    body = b"z" * 5000
    result = run_curl(
        curl,
        "--verbose",
        "-H",
        "Expect: 100-continue",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        "@-",
        f"http://127.0.0.1:{port}/upload",
        stdin=body,
    )
    assert b"< HTTP/1.1 100 Continue" in result.stderr
    assert result.stdout == f"5000 {hashlib.sha256(body).hexdigest()}".encode()


def test_head_has_the_headers_of_get_and_no_body(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        for path in ("/echo/x", "/written"):
            conn.request("GET", path)
            got = conn.getresponse()
            get_body = got.read()
            conn.request("HEAD", path)
            head = conn.getresponse()
            assert head.status == 200
            assert head.read() == b""
            assert head.getheader("Content-Length") == str(len(get_body))
            assert head.getheader("Content-Type") == got.getheader("Content-Type")
        # Nothing stray was left on the connection by the HEAD answers.
        conn.request("GET", "/echo/after")
        assert conn.getresponse().read() == b"echo after"
    finally:
        conn.close()


def test_head_sends_no_body_bytes_at_all(
    port: int, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"HEAD /echo/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = read_to_eof(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 6" in head
    assert rest == b""


def test_head_of_a_streamed_page_sends_no_chunks(
    port: int, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"HEAD /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = read_until(sock, b"\r\n\r\n")
    release_stream(plugin)
    data += read_to_eof(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert rest == b""


def test_chunked_request_body_raw(port: int, connect: Callable[[int], socket.socket]) -> None:
    sock = connect(port)
    sock.sendall(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
        b"5\r\nhello\r\nA;ext=1\r\n, chunked!\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    ((status, _, body),) = parse_responses(read_to_eof(sock), 1)
    assert status == 200
    assert body == f"15 {hashlib.sha256(b'hello, chunked!').hexdigest()}".encode()


def test_chunked_request_body_http_client(port: int) -> None:
    parts = [b"a" * 1000, b"b" * 70000, b"c"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("POST", "/upload", body=iter(parts), encode_chunked=True)
        response = conn.getresponse()
        sent = b"".join(parts)
        assert response.read() == f"{len(sent)} {hashlib.sha256(sent).hexdigest()}".encode()
    finally:
        conn.close()


def test_curl_chunked_request_body(port: int, curl: str) -> None:
    body = bytes(range(256)) * 100
    result = run_curl(
        curl,
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        "@-",
        f"http://127.0.0.1:{port}/upload",
        stdin=body,
    )
    assert result.stdout == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


def test_flush_streams_chunks_before_the_methlet_ends(
    port: int, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    first = read_until(sock, b"first;")
    # The methlet is still waiting for the test: the first chunk came on its own.
    assert b"Transfer-Encoding: chunked\r\n" in first
    assert first.endswith(b"\r\n6\r\nfirst;\r\n")
    assert b"second" not in first
    release_stream(plugin)
    data = first + read_to_eof(sock)
    assert data.endswith(b"6\r\nsecond\r\n0\r\n\r\n")
    ((status, _, body),) = parse_responses(data, 1)
    assert (status, body) == (200, b"first;second")


def test_flush_to_an_http10_client_streams_until_close(
    port: int, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
    first = read_until(sock, b"first;")
    assert first.endswith(b"\r\n\r\nfirst;")  # no chunk framing for HTTP/1.0
    assert b"Transfer-Encoding" not in first
    assert b"Connection: close\r\n" in first
    release_stream(plugin)
    assert read_to_eof(sock) == b"second"


def test_client_that_goes_away_mid_stream_ends_the_methlet(
    port: int, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    sock = connect(port)
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    read_until(sock, b"xxxx")
    sock.close()
    assert plugin.finished.wait(3)
    assert isinstance(plugin.big_error, dibble.ClientDisconnected)
    assert plugin.progress < STREAM_CHUNKS
    assert get(port, "/") == (200, b"home")


def test_http_client_reads_a_streamed_response_and_keeps_the_connection(
    port: int, plugin: Loop
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", "/stream")
        response = conn.getresponse()
        assert response.read1(100) == b"first;"
        release_stream(plugin)
        assert response.read() == b"second"
        conn.request("GET", "/echo/next")
        assert conn.getresponse().read() == b"echo next"
    finally:
        conn.close()


# --- timeouts, connection cap, flow control ------------------------------------------------


def test_idle_keep_alive_connection_is_closed_after_the_timeout(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    port = live_server(plugin, keep_alive_timeout=0.3).addresses[0][1]
    sock = connect(port)
    sock.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n")
    read_until(sock, b"echo 1")
    answered = time.monotonic()
    sock.settimeout(1.5)
    assert sock.recv(100) == b""
    waited = time.monotonic() - answered
    assert 0.2 < waited < 1.0


def test_connection_with_no_request_is_closed_after_the_keep_alive_timeout(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    port = live_server(plugin, keep_alive_timeout=0.3).addresses[0][1]
    sock = connect(port)
    started = time.monotonic()
    sock.settimeout(1.5)
    assert sock.recv(100) == b""
    assert time.monotonic() - started < 1.0


def test_empty_lines_do_not_keep_an_idle_connection_open(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    port = live_server(plugin, keep_alive_timeout=0.3, header_timeout=0.3).addresses[0][1]
    sock = connect(port)
    assert seconds_until_send_fails(sock, b"\r\n", interval=0.15, limit=1.5) is not None


def test_header_timeout_answers_408_and_closes(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    port = live_server(plugin, header_timeout=0.3).addresses[0][1]
    sock = connect(port)
    sock.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: t\r\n")  # no blank line: head incomplete
    started = time.monotonic()
    data = read_to_eof(sock)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close\r\n" in data
    assert 0.2 < time.monotonic() - started < 1.0
    assert get(port, "/")[0] == 200


def test_header_timeout_counts_from_the_first_byte_not_the_last(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    # A slow-loris client trickling header lines must not reset the clock.
    port = live_server(plugin, header_timeout=0.4).addresses[0][1]
    sock = connect(port)
    sock.sendall(b"GET / HTTP/1.1\r\n")
    elapsed = seconds_until_send_fails(sock, b"X-Trickle: v\r\n", interval=0.1, limit=2)
    assert elapsed is not None and elapsed < 1.5


def test_body_timeout_answers_408(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    port = live_server(plugin, body_timeout=0.3).addresses[0][1]
    sock = connect(port)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    data = read_to_eof(sock)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_connections_over_the_cap_get_503(
    live_server: Serve, plugin: Loop, connect: Callable[[int], socket.socket]
) -> None:
    port = live_server(plugin, max_connections=2).addresses[0][1]
    first, second = connect(port), connect(port)
    for sock in (first, second):
        sock.sendall(b"GET /echo/ok HTTP/1.1\r\nHost: t\r\n\r\n")
        read_until(sock, b"echo ok")
    third = connect(port)
    data = read_to_eof(third)
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Connection: close\r\n" in data
    # The two admitted connections still work.
    first.sendall(b"GET /echo/again HTTP/1.1\r\nHost: t\r\n\r\n")
    read_until(first, b"echo again")
    # Once one of them goes, a new client is admitted.
    second.close()
    deadline = time.monotonic() + 2
    while True:
        status, _ = get(port, "/")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert status == 200


def test_a_client_that_does_not_read_stalls_the_methlet(port: int, plugin: Loop) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(3)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        # Wait for the methlet's progress to stop moving while nobody reads.
        deadline = time.monotonic() + 3
        last, still = -1, 0
        while still < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            current = plugin.progress
            still = still + 1 if current == last and current > 0 else 0
            last = current
        assert still == 3, "the methlet never stopped writing"
        # It stalled after a few socket buffers' worth (about 4 MiB on Linux),
        # far from the whole 32 MiB.
        assert 0 < plugin.progress < STREAM_CHUNKS // 2
        assert not plugin.finished.is_set()
        total = len(read_to_eof(sock))
        assert plugin.finished.wait(3)
        assert plugin.progress == STREAM_CHUNKS
        assert total > STREAM_CHUNKS * CHUNK  # the body plus head and chunk framing
    finally:
        sock.close()


# --- vetoes, concurrency, blocking methlets ------------------------------------------------


class Gatekeeper(dibble.Plugin):
    def __init__(self) -> None:
        self.allow = True
        self.seen: list[tuple[str, int]] = []

    def on_incoming_connection(self, sock: socket.socket) -> bool:
        self.seen.append(sock.getpeername())
        return self.allow

    def onHome(self) -> str:
        return "welcome"


def test_on_incoming_connection_false_closes_before_any_byte_is_read(
    live_server: Serve, connect: Callable[[int], socket.socket]
) -> None:
    gate = Gatekeeper()
    port = live_server(gate).addresses[0][1]
    assert get(port, "/") == (200, b"welcome")
    gate.allow = False
    sock = connect(port)
    client = sock.getsockname()
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = sock.recv(100)
    except ConnectionResetError:
        answer = b""
    assert answer == b""  # EOF or reset: no response at all
    assert gate.seen[-1] == client  # the hook was given the client's own socket
    gate.allow = True
    assert get(port, "/") == (200, b"welcome")


def test_on_incoming_connection_that_raises_refuses_the_connection(
    live_server: Serve, connect: Callable[[int], socket.socket]
) -> None:
    class Broken(Gatekeeper):
        def on_incoming_connection(self, sock: socket.socket) -> bool:
            raise RuntimeError("hook failed")

    port = live_server(Broken()).addresses[0][1]
    sock = connect(port)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = sock.recv(100)
    except ConnectionResetError:
        answer = b""
    assert answer == b""


def test_concurrent_requests_each_see_their_own_request(port: int) -> None:
    def fetch(i: int) -> tuple[int, bytes]:
        return get(port, f"/who/{i}?q=v{i}")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(fetch, range(20)))
    assert results == [(200, f"{i} /who/{i} v{i}".encode()) for i in range(20)]


def test_a_blocking_methlet_does_not_block_other_requests(port: int, plugin: Loop) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, port, "/slow")
        try:
            assert plugin.slow_started.wait(3)
            # The slow methlet holds its thread; the event loop answers others.
            assert get(port, "/echo/meanwhile") == (200, b"echo meanwhile")
            assert not slow.done()
        finally:
            plugin.slow_gate.set()
        assert slow.result(timeout=3) == (200, b"slow")


# --- curl ---------------------------------------------------------------------------------


def test_curl_get(port: int, curl: str) -> None:
    result = run_curl(curl, "--include", f"http://127.0.0.1:{port}/echo/curl")
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/html; charset=utf-8" in head
    assert body == b"echo curl"


def test_curl_form_post(port: int, curl: str) -> None:
    result = run_curl(curl, "-d", "year=2003", f"http://127.0.0.1:{port}/form")
    assert result.stdout == b"year=2003"


def test_curl_form_post_with_a_bad_value_is_400_naming_it(port: int, curl: str) -> None:
    result = run_curl(
        curl, "--write-out", "%{http_code}", "-d", "year=soon", f"http://127.0.0.1:{port}/form"
    )
    assert result.stdout.endswith(b"400")
    assert b"year" in result.stdout
