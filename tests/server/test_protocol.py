"""HTTPProtocol over an in-memory transport: ordering, flow control, timeouts."""

from __future__ import annotations

import asyncio
import socket

import dibble
from dibble.http import ProtocolError
from dibble.server import ClientDisconnected, HTTPProtocol
from dibble.testing import MockTransport, TestClient

GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"


class Gate(dibble.Plugin):
    """Methlets whose completion the test controls."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None
        self.calls: list[str] = []

    def onFast(self) -> str:
        self.calls.append("fast")
        return "fast"

    async def onSlow(self, delay: float = 0.05) -> str:
        self.calls.append("slow")
        await asyncio.sleep(delay)
        return "slow"

    async def onWait(self) -> str:
        self.calls.append("wait")
        if self.event is None:
            self.event = asyncio.Event()
        await self.event.wait()
        return "waited"

    def onPost(self) -> bytes:
        return self.request.body


def run(client: TestClient, seconds: float) -> None:
    client.loop.run_until_complete(asyncio.sleep(seconds))


def test_keep_alive_reuses_the_connection() -> None:
    with TestClient(Gate()) as client:
        first = client.get("/fast")
        transport = client.transport
        second = client.get("/fast")
        assert first.status == second.status == 200
        assert client.transport is transport
        assert transport is not None and not transport.closed
        assert "connection" not in first.headers


def test_connection_close_closes_after_the_response() -> None:
    with TestClient(Gate()) as client:
        response = client.get("/fast", headers={"Connection": "close"})
        assert response.headers["connection"] == "close"
        assert client.transport is not None and client.transport.closed


def test_http10_closes_unless_keep_alive_asked() -> None:
    with TestClient(Gate()) as client:
        response = client.get("/fast", version="1.0")
        assert response.headers["connection"] == "close"
        assert client.transport is not None and client.transport.closed
        client.connect()
        response = client.get("/fast", version="1.0", headers={"Connection": "keep-alive"})
        assert response.headers["connection"] == "keep-alive"
        assert not client.transport.closed


def test_pipelined_responses_come_back_in_request_order() -> None:
    plugin = Gate()
    with TestClient(plugin) as client:
        data = GET % b"slow?delay=0.05" + GET % b"fast" + GET % b"slow?delay=0.01" + GET % b"fast"
        responses = client.send_raw(data, responses=4)
        assert [r.text for r in responses] == ["slow", "fast", "slow", "fast"]
        # One request at a time: the second started only after the first ended.
        assert plugin.calls == ["slow", "fast", "slow", "fast"]


def test_reading_pauses_when_too_many_requests_wait() -> None:
    plugin = Gate()
    with TestClient(plugin, max_pipeline=4) as client:
        transport = client.connect()
        assert client.protocol is not None
        client.protocol.data_received(GET % b"wait" + (GET % b"fast") * 6)
        run(client, 0.01)
        assert not transport.reading  # queue of 6 behind a busy request
        assert plugin.event is not None
        plugin.event.set()
        responses = client.send_raw(b"", responses=7)
        assert [r.text for r in responses] == ["waited"] + ["fast"] * 6
        assert transport.reading


def test_no_new_responses_while_the_client_is_not_reading() -> None:
    plugin = Gate()
    with TestClient(plugin) as client:
        transport = client.connect()
        protocol = client.protocol
        assert protocol is not None
        protocol.pause_writing()
        assert not transport.reading
        protocol.data_received(GET % b"fast")
        run(client, 0.01)
        assert plugin.calls == []
        assert transport.written == b""
        protocol.resume_writing()
        (response,) = client.send_raw(b"")
        assert response.text == "fast"
        assert transport.reading


def test_head_has_headers_but_no_body() -> None:
    with TestClient(Gate()) as client:
        get = client.get("/fast")
        head = client.head("/fast")
        assert head.status == 200
        assert head.body == b""
        assert head.headers["content-length"] == get.headers["content-length"] == "4"
        assert head.headers["content-type"] == get.headers["content-type"]


def test_expect_100_continue() -> None:
    with TestClient(Gate()) as client:
        transport = client.connect()
        assert client.protocol is not None
        client.protocol.data_received(
            b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert transport.written == b"HTTP/1.1 100 Continue\r\n\r\n"
        (response,) = client.send_raw(b"hello")
        assert response.body == b"hello"


def test_100_continue_waits_for_earlier_responses() -> None:
    plugin = Gate()
    with TestClient(plugin) as client:
        transport = client.connect()
        protocol = client.protocol
        assert protocol is not None
        protocol.data_received(
            GET % b"wait"
            + b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
            + b"Expect: 100-continue\r\n\r\n"
        )
        run(client, 0.01)
        assert b"100 Continue" not in transport.written
        assert plugin.event is not None
        plugin.event.set()
        run(client, 0.01)
        written = bytes(transport.written)
        assert written.index(b"waited") < written.index(b"100 Continue")
        (_, response) = client.send_raw(b"ok", responses=2)
        assert response.body == b"ok"


def test_idle_connection_times_out_quietly() -> None:
    with TestClient(Gate(), keep_alive_timeout=0.05) as client:
        client.get("/fast")
        transport = client.transport
        assert transport is not None
        transport.take()
        run(client, 0.08)
        client.listener._sweep()
        assert transport.closed
        assert transport.written == b""


def test_slow_header_gets_408() -> None:
    with TestClient(Gate(), header_timeout=0.05) as client:
        transport = client.connect()
        assert client.protocol is not None
        client.protocol.data_received(b"GET / HTTP/1.1\r\nHo")
        run(client, 0.08)
        client.listener._sweep()
        assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert transport.closed


def test_stalled_body_gets_408() -> None:
    with TestClient(Gate(), body_timeout=0.05) as client:
        transport = client.connect()
        assert client.protocol is not None
        client.protocol.data_received(
            b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nab"
        )
        run(client, 0.08)
        client.listener._sweep()
        assert transport.written.startswith(b"HTTP/1.1 408 ")
        assert transport.closed


def test_busy_connection_has_no_deadline() -> None:
    plugin = Gate()
    with TestClient(plugin, keep_alive_timeout=0.05) as client:
        transport = client.connect()
        assert client.protocol is not None
        client.protocol.data_received(GET % b"wait")
        run(client, 0.08)
        client.listener._sweep()
        assert not transport.closed
        assert plugin.event is not None
        plugin.event.set()
        (response,) = client.send_raw(b"")
        assert response.text == "waited"


def test_connection_cap_answers_503() -> None:
    with TestClient(Gate(), max_connections=1) as client:
        client.connect()
        extra = MockTransport()
        protocol = HTTPProtocol(client.listener)
        protocol.connection_made(extra)
        assert extra.written.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert extra.closed
        assert protocol not in client.listener.connections


class Picky(dibble.Plugin):
    def __init__(self) -> None:
        self.seen: list[object] = []

    def on_incoming_connection(self, sock: socket.socket) -> bool:
        self.seen.append(sock)
        return False

    def onHome(self) -> str:
        return "never"


def test_on_incoming_connection_veto_closes_before_reading() -> None:
    plugin = Picky()
    with TestClient(plugin) as client:
        transport = client.connect()
        assert plugin.seen == [None]  # MockTransport has no socket
        assert transport.aborted
        assert transport.written == b""


def test_protocol_error_answers_and_closes() -> None:
    with TestClient(Gate()) as client:
        (response,) = client.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        assert response.status == 400
        assert response.headers["connection"] == "close"
        assert "Host" in response.text
        assert client.transport is not None and client.transport.closed


def test_half_closed_client_still_gets_its_answers() -> None:
    with TestClient(Gate()) as client:
        transport = client.connect()
        protocol = client.protocol
        assert protocol is not None
        protocol.data_received(GET % b"slow?delay=0.01" + GET % b"fast")
        assert protocol.eof_received() is True
        responses = client.send_raw(b"", responses=2)
        assert [r.text for r in responses] == ["slow", "fast"]
        assert transport.closed


def test_idle_client_eof_closes() -> None:
    with TestClient(Gate()) as client:
        client.connect()
        assert client.protocol is not None
        assert client.protocol.eof_received() is False


class Streamer(dibble.Plugin):
    def __init__(self) -> None:
        self.error: BaseException | None = None

    async def onStream(self) -> None:
        self.write_ok_headers("text/plain")
        try:
            while True:  # until the client goes away
                self.write(b"x" * 1000)
                await self.flush()
                await asyncio.sleep(0)
        except ClientDisconnected as exc:
            self.error = exc
            raise


def test_client_gone_mid_stream_raises_client_disconnected() -> None:
    plugin = Streamer()
    with TestClient(plugin) as client:
        transport = client.connect()
        protocol = client.protocol
        assert protocol is not None
        protocol.data_received(GET % b"stream")
        run(client, 0.001)
        protocol.pause_writing()
        run(client, 0.01)
        transport.close()
        protocol.connection_lost(None)
        run(client, 0.01)
        assert isinstance(plugin.error, ClientDisconnected)


class RecordingSink:
    def __init__(self, refuse_after: int | None = None) -> None:
        self.data = bytearray()
        self.finished = False
        self.aborted = False
        self.refuse_after = refuse_after

    def feed(self, data: bytes) -> None:
        self.data += data
        if self.refuse_after is not None and len(self.data) > self.refuse_after:
            raise ProtocolError("too much for this sink", 413)

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True


class Sinks(dibble.Plugin):
    def onUpload(self) -> str:
        return f"body={len(self.request.body)}"


def sink_client(sink: RecordingSink) -> TestClient:
    client = TestClient(Sinks())
    client.listener.app.body_sink = lambda head, conn: sink  # type: ignore[method-assign]
    return client


def test_body_sink_receives_the_body_instead_of_the_request() -> None:
    sink = RecordingSink()
    with sink_client(sink) as client:
        response = client.post("/upload", body=b"x" * 5000)
        assert response.text == "body=0"
        assert bytes(sink.data) == b"x" * 5000
        assert sink.finished
        assert not sink.aborted


def test_body_sink_refusal_answers_and_aborts() -> None:
    sink = RecordingSink(refuse_after=10)
    with sink_client(sink) as client:
        (response,) = client.send_raw(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n" + b"y" * 50
        )
        assert response.status == 413
        assert "too much" in response.text
        assert sink.aborted
        assert not sink.finished


def test_body_sink_is_aborted_when_the_client_goes_away() -> None:
    sink = RecordingSink()
    with sink_client(sink) as client:
        transport = client.connect()
        protocol = client.protocol
        assert protocol is not None
        protocol.data_received(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\nab")
        transport.close()
        protocol.connection_lost(None)
        assert sink.aborted
        assert bytes(sink.data) == b"ab"
