"""Fixtures shared by the test suite: live servers on 127.0.0.1 and external clients."""

from __future__ import annotations

import gc
import os
import shutil
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
