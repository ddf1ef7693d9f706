"""A failing store: a 503 that says so, an error in the log, no hang, nothing corrupted."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.sessions import RedisStore, SessionPool, SQLiteStore
from dibble.testing import TestClient

# redis_process (tests/sessions/conftest.py) starts a RedisProcess: .url,
# .process (the Popen) and .stop().
RedisProcess = Any


class Store(dibble.Plugin):
    def onSet(self, key: str, value: str) -> str:
        self.session[key] = value
        return "set"

    def onAll(self) -> dict[str, Any]:
        return dict(self.session)

    def onPlain(self) -> str:
        return "plain"


def client_for(pool: SessionPool) -> TestClient:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True, access_log=False
    )
    server.register(Store())
    return TestClient(server, cookies=True)


def assert_unavailable(response: Any) -> None:
    assert response.status == 503
    assert "session store is not available" in response.text
    assert int(response.headers["retry-after"]) >= 1


def test_a_locked_sqlite_database_gives_503_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path, busy_timeout=0.2)
    pool = SessionPool(store, cleanup_interval=None)
    with client_for(pool) as client:
        assert client.get("/set?key=a&value=1").text == "set"
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            with caplog.at_level(logging.ERROR, "dibble.error"):
                response = client.get("/set?key=b&value=2")
            assert time.monotonic() - started < 2
            assert_unavailable(response)
            assert "database is locked" in caplog.text
            assert client.get("/plain").text == "plain"  # the server goes on
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert client.get("/set?key=c&value=3").text == "set"
        assert client.get("/all").json() == {"a": "1", "c": "3"}
    store.close()


def test_a_full_sqlite_disk_gives_503_and_keeps_what_was_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    pool = SessionPool(store, cleanup_interval=None, max_size=10_000_000)
    with client_for(pool) as client:
        assert client.get("/set?key=a&value=kept").text == "set"
        # "Disk full": no connection of the store may grow the file, neither
        # the pooled ones (the event loop's and the thread's) nor new ones.
        connect = store._connect

        def full(conn: sqlite3.Connection) -> sqlite3.Connection:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            return conn

        for conn in (*store._idle, *store._idle_now):
            full(conn)
        store._connect = lambda busy_timeout: full(connect(busy_timeout))  # type: ignore[method-assign]
        try:
            with caplog.at_level(logging.ERROR, "dibble.error"):
                response = client.post("/set", data={"key": "b", "value": "x" * 200_000})
        finally:
            store._connect = connect  # type: ignore[method-assign]
        assert_unavailable(response)
        assert "full" in caplog.text
        # The failed connection was dropped; a fresh one has room again.
        assert client.get("/all").json() == {"a": "kept"}
        assert client.get("/set?key=c&value=3").text == "set"
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_a_hung_redis_gives_503_without_hanging_then_recovers(
    redis_process: Callable[[], RedisProcess], caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_process()
    store = RedisStore(server.url, timeout=0.3)
    pool = SessionPool(store, cleanup_interval=None, retry_after=0.5)
    with client_for(pool) as client:
        assert client.get("/set?key=a&value=1").text == "set"
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with caplog.at_level(logging.ERROR, "dibble.error"):
                assert_unavailable(client.get("/all"))
                # Within retry_after the pool answers at once, not after a timeout.
                quick = time.monotonic()
                assert_unavailable(client.get("/set?key=b&value=2"))
                assert time.monotonic() - quick < 0.1
            assert time.monotonic() - started < 2
            assert "cannot be reached" in caplog.text
            assert client.get("/plain").text == "plain"
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        time.sleep(0.6)
        assert client.get("/all").json() == {"a": "1"}
        assert client.get("/set?key=c&value=3").text == "set"
        assert client.get("/all").json() == {"a": "1", "c": "3"}
    store.close()


def test_a_stopped_redis_gives_503_at_once(
    redis_process: Callable[[], RedisProcess], caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_process()
    store = RedisStore(server.url, timeout=0.5)
    pool = SessionPool(store, cleanup_interval=None)
    with client_for(pool) as client:
        assert client.get("/set?key=a&value=1").text == "set"
        server.stop()
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, "dibble.error"):
            assert_unavailable(client.get("/all"))
        assert time.monotonic() - started < 2
        assert "cannot be reached" in caplog.text
    store.close()
