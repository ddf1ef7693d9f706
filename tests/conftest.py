"""Fixtures shared by the test suite: live servers on 127.0.0.1 and external clients."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def live_server() -> Iterator[Callable[..., dibble.HTTPServer]]:
    """A factory that serves plugins on 127.0.0.1, a free port, in a background thread.

    ``live_server(plugin, ..., keep_alive_timeout=0.3)`` takes ``ServerConfig``
    settings as keywords and returns the running ``HTTPServer``; its port is
    ``server.addresses[0][1]``.  Every server started is stopped afterwards.
    """
    contexts: list[dibble.Context] = []

    def start(*plugins: dibble.Plugin, **settings: Any) -> dibble.HTTPServer:
        settings.setdefault("test_mode", True)
        settings.setdefault("access_log", False)
        context = dibble.Context()
        server = dibble.HTTPServer(("127.0.0.1", 0), context, **settings)
        server.register(*plugins)
        context.start_in_thread()
        contexts.append(context)
        return server

    yield start
    for context in contexts:
        context.join(5)
    # Finalize what the servers left behind (a methlet task, say) now, inside
    # this test, rather than whenever the collector next happens to run.
    gc.collect()


@pytest.fixture(scope="session")
def curl() -> str:
    """The path of curl; skipped where it is missing, but a failure under CI."""
    path = shutil.which("curl")
    if path is None:
        message = "curl is not installed; the real-client tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``spawn(args, port, cwd=ROOT, env=None)`` starts a server process and waits
    until it accepts connections on 127.0.0.1:``port``.

    Its stdout and stderr are pipes (read them with ``communicate`` once it
    exited); any process still running at the end of the test is killed.
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        args: list[str],
        port: int,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd or ROOT, env=env
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                _, stderr = proc.communicate(timeout=5)
                pytest.fail(f"the server exited with status {proc.returncode}: {stderr!r}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nothing listened on port {port} within 10 s")
                time.sleep(0.02)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


# --- Redis: one redis-server for the Redis stores' tests ----------------------------


class RedisProcess:
    """A redis-server child process on 127.0.0.1:``port``, without persistence."""

    def __init__(self, executable: str, port: int, *extra: str) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # up
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_executable() -> str:
    path = shutil.which("redis-server")
    if path is None:
        message = (
            "redis-server is not installed; the Redis tests (sessions, statistics, locks) need it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a redis-server shared by the test session.

    Started on a free loopback port; where redis-server is not installed the
    tests that need it are skipped with the reason, except under CI
    (``CI=true``), where that is a failure.
    """
    server = RedisProcess(_redis_executable(), _free_port())
    yield server.url
    server.stop()


@pytest.fixture
def redis_process() -> Iterator[Callable[..., RedisProcess]]:
    """Start a redis-server of this test's own (to stop, pause or kill it); arguments
    are more options for it, and ``port=`` starts it on a given port."""
    started: list[RedisProcess] = []

    def start(*extra: str, port: int | None = None) -> RedisProcess:
        server = RedisProcess(_redis_executable(), port or _free_port(), *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.process.pid, signal.SIGCONT)  # in case a test paused it
        server.stop()


# --- a headless browser -----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless ``chromium``, driven by Playwright's Python package.

    Without them the test is skipped with the reason, except under CI
    (``CI=true``), where that is a failure.
    """
    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
