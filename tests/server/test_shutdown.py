"""Stopping a server: the /shutdown page, SIGTERM, SIGINT, and the grace period.

Most tests run ``dibble serve`` (or an example script) in a subprocess on a
free port, exactly as a user would, and check its exit status.
"""

from __future__ import annotations

import asyncio
import calendar
import gc
import html
import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import dibble
from dibble.testing import TestClient

ROOT = Path(__file__).resolve().parents[2]
CALENDAR = ROOT / "examples" / "calendar.py"

Spawn = Callable[..., subprocess.Popen[bytes]]

SLOW_MODULE = """
import asyncio
import os
import pathlib

import dibble


class Slow(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    async def onSlow(self) -> str:
        pathlib.Path(os.environ["DIBBLE_TEST_MARKER"]).touch()
        await asyncio.sleep(1.0)
        return "slow done"
"""


def load_calendar() -> ModuleType:
    """examples/calendar.py as a module (not named calendar, which it would shadow)."""
    spec = importlib.util.spec_from_file_location("calendar_example", CALENDAR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "dibble", "serve", *args]


def get(port: int, path: str) -> tuple[int, bytes, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Connection")
    finally:
        conn.close()


def assert_calendar_2003(body: bytes) -> None:
    text = body.decode("utf-8")
    assert "January" in text and "December" in text
    assert html.escape(calendar.calendar(2003)) in text


def test_shutdown_page_ends_dibble_serve_with_status_0(spawn: Spawn, free_port: int) -> None:
    proc = spawn(serve(str(CALENDAR), "-p", str(free_port)), free_port)
    status, body, _ = get(free_port, "/?year=2003")
    assert status == 200
    assert_calendar_2003(body)
    conn = http.client.HTTPConnection("127.0.0.1", free_port, timeout=5)
    try:
        conn.request("GET", "/shutdown")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") == "close"
        assert b"Goodbye" in response.read()
    finally:
        conn.close()
    assert proc.wait(5) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_ends_dibble_serve_with_status_0(
    sig: signal.Signals, spawn: Spawn, free_port: int
) -> None:
    proc = spawn(serve(str(CALENDAR), "-p", str(free_port)), free_port)
    assert get(free_port, "/")[0] == 200
    proc.send_signal(sig)
    assert proc.wait(5) == 0
    _, stderr = proc.communicate(timeout=5)
    assert b"Traceback" not in stderr


def test_a_sigterm_while_starting_up_stops_the_server_cleanly() -> None:
    # The signal comes as the port opens (a process manager, or a script that
    # waits for the port, may send it that early).  Before dibble's handler was
    # installed it went to whatever handled SIGTERM before: the default action
    # in a real process; here a handler of the test's, so a regression shows
    # as a server that goes on running (stopped by the timer), not a dead run.
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    context = dibble.Context()
    server = dibble.HTTPServer(("127.0.0.1", 0), context, access_log=False)
    listening = server.listening

    def listening_then_signalled(listener: Any) -> None:
        listening(listener)
        os.kill(os.getpid(), signal.SIGTERM)

    server.listening = listening_then_signalled  # type: ignore[method-assign]
    backstop = threading.Timer(5.0, context.stop)
    backstop.start()
    started = time.monotonic()
    try:
        context.run()
    finally:
        backstop.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert received == []  # dibble's handler had it
    assert time.monotonic() - started < 4.0  # stopped by the signal, not the timer


def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_ones(
    tmp_path: Path, spawn: Spawn, free_port: int
) -> None:
    module = tmp_path / "slow_site.py"
    module.write_text(SLOW_MODULE)
    marker = tmp_path / "slow-started"
    env = {**os.environ, "DIBBLE_TEST_MARKER": str(marker)}
    port = free_port
    proc = spawn(serve(str(module), "-p", str(port)), port, env=env)
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        idle.request("GET", "/")
        assert idle.getresponse().read() == b"home"
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(get, port, "/slow")
            deadline = time.monotonic() + 3
            while not marker.exists():
                assert time.monotonic() < deadline, "the slow methlet never started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            # New connections are refused while the slow request still runs.
            deadline = time.monotonic() + 0.5
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.01)
            assert not slow.done()
            # The idle keep-alive connection was closed at once.
            assert idle.sock is not None
            idle.sock.settimeout(0.5)
            assert idle.sock.recv(10) == b""
            assert slow.result(timeout=5) == (200, b"slow done", "close")
    finally:
        idle.close()
    assert proc.wait(5) == 0


class Stuck(dibble.Plugin):
    """An async methlet that outlives any grace period, and records how it ended."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.outcome: list[type[BaseException]] = []

    async def onStuck(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except BaseException as exc:
            self.outcome.append(type(exc))
            raise
        return "never"


@contextmanager
def stuck_request(plugin: Stuck) -> Iterator[tuple[dibble.Context, int, socket.socket]]:
    """A server with graceful_timeout=0.3 and a connection whose request never ends."""
    context = dibble.Context()
    server = dibble.HTTPServer(("127.0.0.1", 0), context, graceful_timeout=0.3, access_log=False)
    server.register(plugin)
    context.start_in_thread()
    port = server.addresses[0][1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"GET /stuck HTTP/1.1\r\nHost: t\r\n\r\n")
            assert plugin.started.wait(3)
            yield context, port, sock
    finally:
        context.join(3)
        # A methlet task left pending by the shutdown is finalized by the garbage
        # collector; make that happen here rather than at some random later moment.
        gc.collect()


def test_grace_period_drops_requests_that_take_too_long() -> None:
    plugin = Stuck()
    with stuck_request(plugin) as (context, port, sock):
        stopping = time.monotonic()
        context.join(3)
        assert time.monotonic() - stopping < 1.5
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # dropped after the grace period, no response
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_grace_period_cancels_the_methlets_it_gives_up_on() -> None:
    plugin = Stuck()
    with stuck_request(plugin) as (context, _, _):
        context.join(3)
        assert plugin.outcome == [asyncio.CancelledError]


def test_shutdown_page_via_test_client_stops_the_server() -> None:
    with TestClient(load_calendar().Calendar()) as client:
        response = client.get("/shutdown")
        assert response.status == 200
        assert b"Goodbye" in response.body
        assert client.exited


def test_shutdown_page_says_connection_close() -> None:
    with TestClient(load_calendar().Calendar()) as client:
        response = client.get("/shutdown")
        assert response.headers.get("connection") == "close"


def test_python_examples_calendar_py_serves_the_calendar(spawn: Spawn) -> None:
    # The script hard-codes port 8888 and its file name shadows the standard
    # calendar module when run as a script.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 8888))
        except OSError:
            if os.environ.get("CI") == "true":
                raise
            pytest.skip("port 8888, which examples/calendar.py uses, is busy")
    proc = spawn([sys.executable, str(CALENDAR)], 8888)
    status, body, _ = get(8888, "/?year=2003")
    assert status == 200
    assert_calendar_2003(body)
    assert get(8888, "/shutdown")[0] == 200
    assert proc.wait(5) == 0
