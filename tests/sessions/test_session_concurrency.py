"""Concurrent requests of one session over real sockets: writes merge, none is lost.

The rule under test (docs/sessions.md): each request's changes are applied
key by key on top of what is stored when it saves, so requests that change
different keys keep all their writes; ``increment`` is atomic; for the same
key the later save wins, whole (never a mix).  Every request here loads the
session before any of them saves (a barrier), the worst case for a
read-modify-write scheme.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dibble
from dibble.sessions import SessionPool, SessionStore

Serve = Callable[..., dibble.HTTPServer]

N = 16


class Racers(dibble.Plugin):
    def __init__(self) -> None:
        self.barrier = threading.Barrier(N, timeout=10)
        self.arrived = 0
        self.all_in: asyncio.Event | None = None

    def onStart(self) -> str:
        self.session["start"] = 0
        return "started"

    @dibble.blocking
    def onPut(self, key: str) -> str:
        session = self.session  # loaded now, before anyone saves
        self.barrier.wait()
        session[key] = {"by": key}
        return "put"

    @dibble.blocking
    def onSame(self, key: str) -> str:
        session = self.session
        self.barrier.wait()
        session["same"] = {"by": key, "filler": key * 100}
        return "same"

    @dibble.blocking
    def onCount(self) -> str:
        session = self.session
        self.barrier.wait()
        return str(session.increment("count"))

    async def onAsyncPut(self, key: str) -> str:
        if self.all_in is None:
            self.all_in = asyncio.Event()
        session = self.session
        self.arrived += 1
        if self.arrived == N:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 10)
        session[key] = key
        return "put"

    def onAll(self) -> dict[str, Any]:
        return dict(self.session)


def serve_with(live_server: Serve, store: SessionStore) -> int:
    pool = SessionPool(store, cleanup_interval=None)
    server = live_server(Racers(), sessions=pool)
    return server.addresses[0][1]


def get(port: int, path: str, cookie: str | None = None) -> tuple[str, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return body, response.getheader("Set-Cookie")
    finally:
        conn.close()


def race(port: int, cookie: str, paths: list[str]) -> list[str]:
    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda p: get(port, p, cookie)[0], paths))


def start(port: int) -> str:
    body, set_cookie = get(port, "/start")
    assert body == "started" and set_cookie is not None
    return set_cookie.split(";")[0]


def test_writes_to_different_keys_all_survive(live_server: Serve, store: SessionStore) -> None:
    port = serve_with(live_server, store)
    cookie = start(port)
    race(port, cookie, [f"/put?key=k{i}" for i in range(N)])
    data = json.loads(get(port, "/all", cookie)[0])
    assert data == {"start": 0, **{f"k{i}": {"by": f"k{i}"} for i in range(N)}}


def test_async_writes_to_different_keys_all_survive(
    live_server: Serve, store: SessionStore
) -> None:
    port = serve_with(live_server, store)
    cookie = start(port)
    race(port, cookie, [f"/async_put?key=a{i}" for i in range(N)])
    data = json.loads(get(port, "/all", cookie)[0])
    assert data == {"start": 0, **{f"a{i}": f"a{i}" for i in range(N)}}


def test_increments_are_never_lost(live_server: Serve, store: SessionStore) -> None:
    port = serve_with(live_server, store)
    cookie = start(port)
    answers = race(port, cookie, ["/count"] * N)
    assert sorted(int(a) for a in answers) == list(range(1, N + 1))
    assert json.loads(get(port, "/all", cookie)[0])["count"] == N


def test_the_same_key_ends_with_one_whole_write(live_server: Serve, store: SessionStore) -> None:
    port = serve_with(live_server, store)
    cookie = start(port)
    race(port, cookie, [f"/same?key=s{i}" for i in range(N)])
    same = json.loads(get(port, "/all", cookie)[0])["same"]
    assert same["by"] in {f"s{i}" for i in range(N)}
    assert same["filler"] == same["by"] * 100
