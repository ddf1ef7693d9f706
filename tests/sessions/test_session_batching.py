"""Prepared routes: sessions loaded before and saved after the methlet, in batches.

Every test runs on all three stores with batching forced on (memory does
not batch by default, since it has nothing to gain).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.app import PREPARED
from dibble.sessions import SessionPool, SessionStore, SQLiteStore, service_name
from dibble.sessions._batch import SessionPreparation
from dibble.sessions._store import LoopBatches
from dibble.testing import TestClient

Serve = Callable[..., dibble.HTTPServer]


class Counter(dibble.Plugin):
    def onCount(self) -> str:
        count = self.session.get("count", 0) + 1
        self.session["count"] = count
        return str(count)

    async def onAsyncCount(self) -> str:
        count = self.session.get("count", 0) + 1
        self.session["count"] = count
        return str(count)

    def onStream(self) -> None:
        self.session["streamed"] = self.session.get("streamed", 0) + 1
        self.write_ok_headers("text/plain")
        self.write("one ")
        self.flush()
        self.write("two")

    def onAll(self) -> dict[str, Any]:
        return dict(self.session)


class Recording:
    """Wraps a store and records the size of each batch it stores or loads.

    Every way is recorded: on the event loop (``*_now``, SQLite; the loop's
    own connection, Redis) and in the I/O thread; a batch that found the
    store busy is counted where it ran.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.saves: list[int] = []
        self.loads: list[int] = []
        self.lock = threading.Lock()
        for name, sizes in (
            ("save_many", self.saves),
            ("load_many", self.loads),
            ("save_many_now", self.saves),
            ("load_many_now", self.loads),
        ):
            setattr(store, name, self._recorded(getattr(store, name), sizes))
        loop_batches = store.loop_batches

        def recorded_loop_batches(loop: asyncio.AbstractEventLoop) -> LoopBatches | None:
            batches = loop_batches(loop)
            return None if batches is None else _RecordedBatches(batches, self)

        store.loop_batches = recorded_loop_batches  # type: ignore[method-assign]

    def _recorded(
        self, method: Callable[[Sequence[Any]], list[Any]], sizes: list[int]
    ) -> Callable[[Sequence[Any]], list[Any]]:
        def recorded(items: Sequence[Any]) -> list[Any]:
            result = method(items)
            with self.lock:
                sizes.append(len(items))
            return result

        return recorded


class _RecordedBatches:
    def __init__(self, batches: LoopBatches, recording: Recording) -> None:
        self.batches = batches
        self.recording = recording

    def batch(
        self,
        loads: Sequence[Any],
        saves: Sequence[Any],
        done: Callable[[list[Any] | BaseException, list[Any] | BaseException], None],
    ) -> None:
        def recorded(loaded: list[Any] | BaseException, saved: list[Any] | BaseException) -> None:
            with self.recording.lock:
                if loads:
                    self.recording.loads.append(len(loads))
                if saves:
                    self.recording.saves.append(len(saves))
            done(loaded, saved)

        self.batches.batch(loads, saves, recorded)


def test_a_route_is_prepared_after_its_first_session_use(store: SessionStore) -> None:
    pool = SessionPool(store, batching=True, cleanup_interval=None)
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True)
    server.register(Counter())
    recording = Recording(store)
    with TestClient(server, cookies=True) as client:
        assert client.get("/count").text == "1"  # the plain, synchronous way
        route = server.router.cache[b"/count"]
        assert route.mode == PREPARED
        assert isinstance(route.preparation, SessionPreparation)
        assert route.preparation.services == [(service_name(Counter), None)]
        assert recording.saves == []
        assert [client.get("/count").text for _ in range(3)] == ["2", "3", "4"]
        assert recording.saves == [1, 1, 1]
        assert recording.loads == [1, 1, 1]
        assert client.get("/async_count").text == "5"
        assert client.get("/async_count").text == "6"
        assert server.router.cache[b"/async_count"].mode == PREPARED


def test_a_streamed_response_on_a_prepared_route(store: SessionStore) -> None:
    pool = SessionPool(store, batching=True, cleanup_interval=None)
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True)
    server.register(Counter())
    with TestClient(server, cookies=True) as client:
        for expected in (1, 2, 3):
            assert client.get("/stream").text == "one two"
            assert client.get("/all").json() == {"streamed": expected}


def test_concurrent_requests_share_batches(live_server: Serve, store: SessionStore) -> None:
    recording = Recording(store)
    pool = SessionPool(store, batching=True, cleanup_interval=None)
    server = live_server(Counter(), sessions=pool)
    port = server.addresses[0][1]
    cookies = []
    for _ in range(8):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/count")
        response = conn.getresponse()
        assert response.read() == b"1"
        cookies.append(response.getheader("Set-Cookie", "").split(";")[0])
        conn.close()

    def hammer(cookie: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(25):
            conn.request("GET", "/count", headers={"Cookie": cookie})
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        conn.close()

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(hammer, cookies))
    for cookie in cookies:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/all", headers={"Cookie": cookie})
        assert json.loads(conn.getresponse().read()) == {"count": 26}
        conn.close()
    # The first /count of all was synchronous; the other seven made sessions
    # on the prepared route, and then the 200 counts.
    assert sum(recording.saves) == 7 + 8 * 25
    assert len(recording.saves) < 8 * 25  # some batches held several requests


def test_a_failed_batch_fails_its_requests_with_503(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path, busy_timeout=0.2)
    pool = SessionPool(store, cleanup_interval=None)
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True)
    server.register(Counter())
    with TestClient(server, cookies=True) as client:
        assert client.get("/count").text == "1"
        assert client.get("/count").text == "2"  # prepared from now on
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            response = client.get("/count")
            assert response.status == 503
            assert "session store is not available" in response.text
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert client.get("/count").text == "3"  # the failed request stored nothing
    pool.close()


@pytest.mark.parametrize("batching", [True, False])
def test_the_default_follows_the_store(batching: bool, tmp_path: Path) -> None:
    store: SessionStore = SQLiteStore(tmp_path / "s.sqlite3") if batching else SessionPool().store
    pool = SessionPool(store)
    assert pool.batching is batching
    pool.close()
