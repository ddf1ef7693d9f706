"""Session stores for the tests: every test that takes ``store`` runs on all three.

The Redis store talks to a real ``redis-server`` started on a free loopback
port for the test session (and stopped after it).  Where redis-server is
not installed the Redis tests are skipped with the reason, except under
CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dibble.sessions import MemoryStore, RedisStore, SessionStore, SQLiteStore

STORES = ["memory", "sqlite", "redis"]


class RedisProcess:
    """A redis-server child process on 127.0.0.1:``port``, without persistence."""

    def __init__(self, executable: str, port: int) -> None:
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
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
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
        message = "redis-server is not installed; the Redis session store tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a redis-server shared by the test session."""
    server = RedisProcess(_redis_executable(), _free_port())
    yield server.url
    server.stop()


@pytest.fixture
def redis_process() -> Iterator[Callable[[], RedisProcess]]:
    """Start a redis-server of this test's own (to stop, pause or kill it)."""
    started: list[RedisProcess] = []

    def start() -> RedisProcess:
        server = RedisProcess(_redis_executable(), _free_port())
        started.append(server)
        return server

    yield start
    for server in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.process.pid, signal.SIGCONT)  # in case a test paused it
        server.stop()


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> SessionStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "sessions.sqlite3")
    url = request.getfixturevalue("redis_url")
    return RedisStore(url, prefix=f"test:{uuid.uuid4().hex}:")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    """A fresh, empty store of each kind."""
    made = make_store(request.param, tmp_path, request)
    yield made
    if isinstance(made, RedisStore):
        made.flush()
    made.close()
