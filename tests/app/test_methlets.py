"""What methlets return or write, and what happens when they fail."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

import dibble
from dibble.server import HTTPProtocol
from dibble.testing import MockTransport, TestClient


class Returns(dibble.Plugin):
    def onText(self) -> str:
        return "<b>caf\u00e9</b>"

    def onRaw(self) -> bytes:
        return b"\x00\x01"

    def onDict(self) -> dict[str, Any]:
        return {"a": [1, 2], "b": "\u00e9"}

    def onList(self) -> list[int]:
        return [1, 2, 3]

    def onResponse(self) -> dibble.Response:
        return dibble.Response("made", 201, headers={"X-Made": "yes"})

    def onPlain(self) -> dibble.Response:
        return dibble.Response(b"plain", content_type="text/plain")

    def onRedirect(self) -> dibble.Response:
        return dibble.Response.redirect("/text")

    def onNothing(self) -> None:
        return None

    def onNotModified(self) -> dibble.Response:
        return dibble.Response(b"ignored", 304)

    def onWeird(self) -> object:
        return object()

    def onInjected(self) -> dibble.Response:
        return dibble.Response("x", headers={"X-Bad": "a\r\nSet-Cookie: evil=1"})

    def onBig(self) -> bytes:
        return b"z" * 200_000

    def onJsonHelper(self) -> dibble.Response:
        return dibble.Response.json({"ok": True}, 202)


@pytest.fixture
def client() -> Any:
    with TestClient(Returns()) as c:
        yield c


def test_str_is_utf8_html(client: TestClient) -> None:
    response = client.get("/text")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "<b>caf\u00e9</b>"
    assert response.headers["content-length"] == str(len(response.body))


def test_bytes_default_to_octet_stream(client: TestClient) -> None:
    response = client.get("/raw")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.body == b"\x00\x01"


def test_dict_and_list_are_json(client: TestClient) -> None:
    response = client.get("/dict")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"a": [1, 2], "b": "\u00e9"}
    assert client.get("/list").json() == [1, 2, 3]
    helper = client.get("/json-helper")
    assert helper.status == 202
    assert helper.json() == {"ok": True}


def test_response_objects(client: TestClient) -> None:
    made = client.get("/response")
    assert made.status == 201
    assert made.headers["x-made"] == "yes"
    assert made.text == "made"
    assert client.get("/plain").headers["content-type"] == "text/plain"
    redirect = client.get("/redirect")
    assert redirect.status == 303
    assert redirect.headers["location"] == "/text"


def test_none_is_204_and_304_has_no_body(client: TestClient) -> None:
    nothing = client.get("/nothing")
    assert nothing.status == 204
    assert nothing.body == b""
    assert "content-length" not in nothing.headers
    not_modified = client.get("/not-modified")
    assert not_modified.status == 304
    assert not_modified.body == b""


def test_unsupported_return_type_is_500(client: TestClient) -> None:
    response = client.get("/weird")
    assert response.status == 500
    assert "returned object" in response.text


def test_header_injection_is_refused_with_500(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "dibble.error"):
        response = client.get("/injected")
    assert response.status == 500
    assert "set-cookie" not in response.headers
    assert "x-bad" not in response.headers
    assert any("CR, LF" in r.getMessage() or "CR, LF" in str(r.exc_info) for r in caplog.records)


def test_large_bodies(client: TestClient) -> None:
    assert client.get("/big").body == b"z" * 200_000


class Writer(dibble.Plugin):
    def onOk(self) -> None:
        self.write_ok_headers("text/plain", {"X-Extra": "1"})
        self.write("one ")
        self.write(b"two")

    def onDefault(self) -> None:
        self.write("<p>no headers set</p>")

    def onError(self) -> None:
        self.write("discarded")
        self.write_error(403, "not <yours>")

    def onStream(self) -> None:
        self.write_ok_headers("text/plain")
        self.write("first,")
        self.flush()
        self.write("second")

    def onClose(self) -> None:
        self.write("bye")
        self.close()

    def onWriteAfterClose(self) -> None:
        self.close()
        self.write("too late")

    def onBoth(self) -> str:
        self.write("x")
        return "y"

    def onFailAfterFlush(self) -> None:
        self.write("partial")
        self.flush()
        raise RuntimeError("broken")

    def onStatus(self) -> None:
        self.write_headers(418, "text/plain")
        self.write("teapot")


@pytest.fixture
def writer() -> Any:
    with TestClient(Writer()) as c:
        yield c


def test_write_style(writer: TestClient) -> None:
    response = writer.get("/ok")
    assert response.status == 200
    assert response.text == "one two"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["x-extra"] == "1"
    assert response.headers["content-length"] == "7"
    default = writer.get("/default")
    assert default.headers["content-type"] == "text/html; charset=utf-8"
    assert writer.get("/status").status == 418


def test_write_error(writer: TestClient) -> None:
    response = writer.get("/error")
    assert response.status == 403
    assert "discarded" not in response.text
    assert "not &lt;yours&gt;" in response.text


def test_flush_streams_chunked(writer: TestClient) -> None:
    transport = writer.connect()
    (response,) = writer.send_raw(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.text == "first,second"
    assert not transport.closed


def test_flush_to_http10_client_ends_by_closing(writer: TestClient) -> None:
    response = writer.get("/stream", version="1.0", headers={"Connection": "keep-alive"})
    assert response.text == "first,second"
    assert "transfer-encoding" not in response.headers
    assert response.headers["connection"] == "close"
    assert writer.transport is not None and writer.transport.closed


def test_head_of_a_streamed_response(writer: TestClient) -> None:
    response = writer.head("/stream")
    assert response.status == 200
    assert response.body == b""
    assert response.headers["transfer-encoding"] == "chunked"


def test_close_ends_the_connection(writer: TestClient) -> None:
    response = writer.get("/close")
    assert response.text == "bye"
    assert response.headers["connection"] == "close"
    assert writer.transport is not None and writer.transport.closed


def test_misuse_is_a_500(writer: TestClient) -> None:
    assert writer.get("/write-after-close").status == 500
    assert writer.get("/both").status == 500


def test_failure_after_flush_drops_the_connection(writer: TestClient) -> None:
    transport = writer.connect()
    assert writer.protocol is not None
    writer.protocol.data_received(b"GET /fail-after-flush HTTP/1.1\r\nHost: t\r\n\r\n")
    assert transport.aborted
    assert b"partial" in transport.written
    assert b"500" not in transport.written


class Failing(dibble.Plugin):
    def onBoom(self) -> str:
        raise ValueError("the secret detail")

    def onGone(self) -> str:
        raise dibble.HTTPError(410, "gone <for good>", headers=[("X-Why", "moved")])

    async def onAsyncBoom(self) -> str:
        await asyncio.sleep(0)
        raise KeyError("async detail")


def test_500_shows_traceback_only_in_test_mode(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "dibble.error"), TestClient(Failing()) as client:
        response = client.get("/boom")
        assert response.status == 500
        assert "the secret detail" in response.text
        assert "Traceback" in response.text
        assert client.get("/async-boom").status == 500
    with (
        caplog.at_level(logging.ERROR, "dibble.error"),
        TestClient(Failing(), test_mode=False) as client,
    ):
        response = client.get("/boom")
        assert response.status == 500
        assert "the secret detail" not in response.text
        assert "Traceback" not in response.text
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 3
    assert all(r.name == "dibble.error" for r in logged)


def test_http_error(caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(Failing()) as client:
        response = client.get("/gone")
        assert response.status == 410
        assert response.headers["x-why"] == "moved"
        assert "gone &lt;for good&gt;" in response.text
        assert client.transport is not None and not client.transport.closed


def test_http_error_status_must_be_an_error() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        dibble.HTTPError(200)


class Shutdown(dibble.Plugin):
    def onShutdown(self) -> None:
        self.write("bye")
        raise SystemExit


def test_system_exit_answers_then_stops() -> None:
    with TestClient(Shutdown()) as client:
        response = client.get("/shutdown")
        assert response.text == "bye"
        assert client.exited


class Concurrent(dibble.Plugin):
    async def onWho(self, delay: float) -> str:
        await asyncio.sleep(delay)
        return self.request.target.decode()

    @dibble.blocking
    def onThread(self) -> str:
        time.sleep(0.01)
        return f"{threading.current_thread().name} {self.request.target.decode()}"

    def onInline(self) -> str:
        return threading.current_thread().name


def test_each_request_sees_its_own_request() -> None:
    with TestClient(Concurrent()) as client:
        transports = []
        for delay in (0.03, 0.01, 0.02, 0.0):
            transport = MockTransport()
            protocol = HTTPProtocol(client.listener)
            protocol.connection_made(transport)
            protocol.data_received(b"GET /who?delay=%.2f HTTP/1.1\r\nHost: t\r\n\r\n" % delay)
            transports.append((delay, transport))
        client.loop.run_until_complete(asyncio.sleep(0.08))
        for delay, transport in transports:
            # Each answer names its own request, though they overlapped.
            assert transport.written.endswith(b"/who?delay=%.2f" % delay)


def test_blocking_methlets_run_in_the_pool() -> None:
    with TestClient(Concurrent()) as client:
        thread = client.get("/thread").text
        assert thread.startswith("dibble-blocking")
        assert thread.endswith("/thread")
        assert not client.get("/inline").text.startswith("dibble-blocking")


class Slow(dibble.Plugin):
    def onSlow(self) -> str:
        time.sleep(0.06)
        return "done"


def test_slow_sync_methlet_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, "dibble.error"),
        TestClient(Slow(), slow_callback_threshold=0.05) as client,
    ):
        client.get("/slow")
        client.get("/slow")
    warnings = [r for r in caplog.records if "blocked the event loop" in r.getMessage()]
    assert len(warnings) == 1
    assert "dibble.blocking" in warnings[0].getMessage()


class Limited(dibble.Plugin):
    @dibble.max_body_size(10)
    def onSmall(self) -> bytes:
        return self.request.body

    def onDefault(self) -> str:
        return str(len(self.request.body))


def test_per_methlet_body_limit() -> None:
    with TestClient(Limited()) as client:
        assert client.post("/small", body=b"x" * 10).body == b"x" * 10
        response = client.post("/small", body=b"x" * 11)
        assert response.status == 413
        assert response.headers["connection"] == "close"


def test_request_outside_a_methlet() -> None:
    with pytest.raises(RuntimeError, match="no request"):
        _ = Limited().request


class NeverAwaits(dibble.Plugin):
    async def onPlain(self, name: str = "x") -> str:
        return f"{name} {self.request.path}"

    async def onFails(self) -> str:
        raise dibble.HTTPError(409, "conflict")

    async def onAwaits(self) -> str:
        await asyncio.sleep(0)
        return "awaited"


def test_async_methlets_that_never_await_run_inline() -> None:
    from dibble.app._routing import INLINE, never_suspends

    plugin = NeverAwaits()
    assert never_suspends(plugin.onPlain)
    assert not never_suspends(plugin.onAwaits)
    with TestClient(plugin) as client:
        assert client.get("/plain?name=y").text == "y /plain"
        assert client.get("/fails").status == 409
        assert client.get("/awaits").text == "awaited"
        route = client.server.router.resolve(b"/plain")
        assert route.mode == INLINE
        assert route.drive


def test_never_suspends_sees_every_way_to_suspend() -> None:
    from contextlib import AbstractAsyncContextManager, nullcontext

    from dibble.app._routing import never_suspends

    async def with_async_with(cm: AbstractAsyncContextManager[None]) -> None:
        async with cm:
            pass

    async def with_async_for(items: Any) -> None:
        async for _ in items:
            pass

    async def nested_await() -> int:
        if nullcontext():
            return await asyncio.sleep(0, 1)
        return 0

    async def no_await() -> int:
        return sum(i for i in range(3))

    assert not never_suspends(with_async_with)
    assert not never_suspends(with_async_for)
    assert not never_suspends(nested_await)
    assert never_suspends(no_await)
