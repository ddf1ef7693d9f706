"""Session stores for the tests: every test that takes ``store`` runs on all three.

The Redis store talks to the real ``redis-server`` of tests/conftest.py
(``redis_url``), started on a free loopback port for the test session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dibble.sessions import MemoryStore, RedisStore, SessionStore, SQLiteStore

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
