"""dibble.compat.dibbler: a Dibbler program runs once its imports change."""

from __future__ import annotations

import calendar
import importlib.util
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import dibble
from dibble.compat import dibbler as Dibbler
from dibble.testing import TestClient

Serve = Callable[..., dibble.HTTPServer]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dibbler_calendar.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dibbler_calendar_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Writer(Dibbler.HTTPPlugin):
    refused = ""

    def onHome(self) -> None:
        self.writeOKHeaders("text/plain", {"X-Ported": "yes"})
        self.write("hello, ")
        self.write(b"world")

    def onMissing(self) -> None:
        self.writeError(404, "nothing <here>")

    def onLater(self) -> None:
        self.writeOKHeaders("text/html")
        self.write("<p>wait...</p>")
        self.flush()
        self.write("<p>done</p>")

    def onBye(self) -> None:
        self.writeOKHeaders("text/plain")
        self.write("bye")
        self.close()

    def onAfterClose(self) -> None:
        self.writeOKHeaders("text/plain")
        self.write("sent")
        self.close()
        try:
            self.write("too late")
        except RuntimeError as exc:
            self.refused = str(exc)


def test_ported_calendar_answers_year_2003() -> None:
    module = load_example()
    with TestClient(module.Calendar()) as client:
        response = client.get("/?year=2003")
        assert response.status == 200
        assert response.headers["content-type"] == "text/html"
        assert calendar.calendar(2003) in response.text
        assert "January" in response.text
        empty = client.get("/")
        assert empty.status == 200
        assert "Calendar Server" in empty.text
        assert "January" not in empty.text


def test_write_ok_headers_and_write() -> None:
    with TestClient(Writer()) as client:
        response = client.get("/")
        assert response.status == 200
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["x-ported"] == "yes"
        assert response.body == b"hello, world"
        assert response.headers["content-length"] == "12"


def test_write_error() -> None:
    with TestClient(Writer()) as client:
        response = client.get("/missing")
        assert response.status == 404
        assert "nothing &lt;here&gt;" in response.text


def test_flush_streams_the_response_in_chunks() -> None:
    with TestClient(Writer()) as client:
        (response,) = client.send_raw(b"GET /later HTTP/1.1\r\nHost: t\r\n\r\n")
        assert response.status == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.body == b"<p>wait...</p><p>done</p>"


def test_close_ends_the_response_and_the_connection() -> None:
    with TestClient(Writer()) as client:
        response = client.get("/bye")
        assert response.body == b"bye"
        assert response.headers["connection"] == "close"
        assert client.transport is not None and client.transport.closed
    plugin = Writer()
    with TestClient(plugin) as client:
        response = client.get("/after-close")
        assert response.body == b"sent"
        assert plugin.refused == "the response was closed"


class Veto(Dibbler.HTTPPlugin):
    def __init__(self) -> None:
        self.allow = True
        self.peers: list[tuple[str, int]] = []

    def onIncomingConnection(self, clientSocket: socket.socket) -> bool:
        self.peers.append(clientSocket.getpeername())
        return self.allow

    def onHome(self) -> None:
        self.writeOKHeaders("text/plain")
        self.write("in")


def fetch(port: int, path: str = "/") -> bytes:
    """The raw response to a GET, or b"" when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return bytes(data)


def test_on_incoming_connection_false_refuses_the_connection(live_server: Serve) -> None:
    plugin = Veto()
    port = live_server(plugin).addresses[0][1]
    assert fetch(port).startswith(b"HTTP/1.1 200 OK")
    plugin.allow = False
    assert fetch(port) == b""
    assert len(plugin.peers) == 2
    assert plugin.peers[-1][0] == "127.0.0.1"
    plugin.allow = True
    assert fetch(port).endswith(b"\r\n\r\nin")


@pytest.mark.parametrize(
    "path", ["/incoming-connection", "/incomingConnection", "/incoming_connection"]
)
def test_on_incoming_connection_is_not_a_methlet(live_server: Serve, path: str) -> None:
    port = live_server(Veto()).addresses[0][1]
    assert fetch(port, path).startswith(b"HTTP/1.1 404 Not Found")


def test_base_on_incoming_connection_is_not_a_methlet_either() -> None:
    with TestClient(Writer()) as client:
        assert client.get("/incoming-connection").status == 404


def test_http_server_port_listens_on_all_interfaces() -> None:
    context = dibble.Context()
    server = Dibbler.HTTPServer(0, context)
    assert server.config.host == ""
    server.register(Writer())
    context.start_in_thread()
    try:
        hosts = {host for host, _ in server.addresses}
        assert hosts & {"0.0.0.0", "::"}, hosts
        ipv4 = [port for host, port in server.addresses if host == "0.0.0.0"]
        assert fetch(ipv4[0]).endswith(b"hello, world")
    finally:
        context.join(5)


def test_http_server_takes_a_host_and_port_tuple() -> None:
    server = Dibbler.HTTPServer(("127.0.0.1", 0), dibble.Context())
    assert (server.config.host, server.config.port) == ("127.0.0.1", 0)


def test_run_serves_a_context_until_it_is_stopped() -> None:
    context = Dibbler.Context()
    server = Dibbler.HTTPServer(("127.0.0.1", 0), context)
    server.register(load_example().Calendar())
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            Dibbler.run(launchBrowser=False, context=context)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.addresses and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.addresses, errors
        response = fetch(server.addresses[0][1], "/?year=2003")
        assert response.startswith(b"HTTP/1.1 200 OK")
        assert b"January" in response and b"2003" in response
    finally:
        context.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert errors == []
