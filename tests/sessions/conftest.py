"""Session stores for the tests: every test that takes ``store`` runs on all three.

The Redis store talks to the real ``redis-server`` of tests/conftest.py
(``redis_url``), started on a free loopback port for the test session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import dibble
from dibble.sessions import MemoryStore, RedisStore, SessionPool, SessionStore, SQLiteStore
from dibble.testing import TestClient

STORES = ["memory", "sqlite", "redis"]


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


def session_client(store: SessionStore, plugin: dibble.Plugin) -> TestClient:
    """A TestClient (with cookies) over ``plugin``, its sessions in ``store`` (no cleanup
    timer, a short ``retry_after``)."""
    pool = SessionPool(store, cleanup_interval=None, retry_after=0.3)
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True, access_log=False
    )
    server.register(plugin)
    return TestClient(server, cookies=True)


class Counter(dibble.Plugin):
    """``/count``: a counter in the session, plus one per request."""

    def onCount(self) -> str:
        count = self.session.get("count", 0) + 1
        self.session["count"] = count
        return str(count)
