"""The quick ways of the session path: SQLite on the event loop with its cache,
Redis's batches (plain reads for loads, one script for saves) and their short
save, the expiry pushed only when due, ``Pending`` (the dispatcher's wait
without a task), and no reference cycles."""

from __future__ import annotations

import asyncio
import gc
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.app import Pending
from dibble.server import HTTPProtocol, Listener
from dibble.sessions import (
    Changes,
    MemoryStore,
    RedisStore,
    SessionPool,
    SessionStore,
    SQLiteStore,
    StoreBusy,
)
from dibble.testing import TestClient

# --- Pending ------------------------------------------------------------------------


def test_pending_runs_callbacks_once_in_order_and_late_ones_at_once() -> None:
    pending = Pending()
    seen: list[tuple[str, BaseException | None]] = []
    pending.then(lambda error: seen.append(("first", error)))
    pending.then(lambda error: seen.append(("second", error)))
    assert not pending.done and seen == []
    pending.finish()
    pending.finish(RuntimeError("ignored: already finished"))
    pending.then(lambda error: seen.append(("late", error)))
    assert seen == [("first", None), ("second", None), ("late", None)]


def test_pending_can_be_awaited_and_raises_its_error() -> None:
    async def main() -> None:
        ok, failed = Pending(), Pending()
        loop = asyncio.get_running_loop()
        loop.call_soon(ok.finish)
        loop.call_soon(failed.finish, ValueError("the store failed"))
        await ok
        with pytest.raises(ValueError, match="the store failed"):
            await failed
        done = Pending()
        done.finish()
        await done  # finished already: no wait

    asyncio.run(main())


# --- SQLite on the loop ------------------------------------------------------------------

NOW = 1_000_000.0


def _sqlite_with_session(path: Path) -> tuple[SQLiteStore, str]:
    store = SQLiteStore(path)
    sid = "a" * 32
    store.create(sid, NOW, NOW + 3600)
    assert store.save(sid, "svc", Changes({"n": "1"}), NOW, NOW + 3600)
    return store, sid


def _values(store: SQLiteStore, sid: str, now: float = NOW) -> dict[str, str]:
    (loaded,) = store.load_many_now([(sid, "svc", now)])
    assert loaded is not None and loaded.record is not None
    return loaded.record.values


def test_the_loop_cache_sees_writes_of_other_connections_and_processes(tmp_path: Path) -> None:
    store, sid = _sqlite_with_session(tmp_path / "s.db")
    assert _values(store, sid) == {"n": "1"}
    assert _values(store, sid) == {"n": "1"}  # from the cache
    # Another connection of this store (the I/O thread's, a blocking methlet's):
    assert store.save(sid, "svc", Changes({"n": "2"}), NOW, NOW + 3600)
    assert _values(store, sid) == {"n": "2"}
    # Another process (a second store on the same file): seen within a millisecond.
    other = SQLiteStore(tmp_path / "s.db")
    assert other.save(sid, "svc", Changes({"n": "3"}), NOW, NOW + 3600)
    time.sleep(0.005)
    assert _values(store, sid) == {"n": "3"}
    # Saves on the loop keep the cache true, merged key by key.
    assert store.save_many_now([(sid, "svc", Changes({"m": "x"}), NOW + 1, NOW + 3601)])
    assert _values(store, sid) == {"n": "3", "m": "x"}
    assert other.load(sid, "svc", NOW + 1) == store.load_many_now([(sid, "svc", NOW + 1)])[0]
    other.close()
    store.close()


def test_a_save_on_the_loop_applies_to_what_another_process_stored(tmp_path: Path) -> None:
    store, sid = _sqlite_with_session(tmp_path / "s.db")
    assert _values(store, sid) == {"n": "1"}  # cached
    other = SQLiteStore(tmp_path / "s.db")
    assert other.save(sid, "svc", Changes({"theirs": "1"}), NOW, NOW + 3600)
    # At once, without waiting for the load check: a save always asks.
    assert store.save_many_now([(sid, "svc", Changes({"mine": "1"}), NOW, NOW + 3600)])
    assert other.load(sid, "svc", NOW).record.values == {  # type: ignore[union-attr]
        "n": "1",
        "theirs": "1",
        "mine": "1",
    }
    other.delete(sid)  # a logout elsewhere: the id is gone for the loop too
    assert store.save_many_now([(sid, "svc", Changes({"late": "1"}), NOW, NOW + 3600)]) == [False]
    other.close()
    store.close()


def test_the_loop_cache_matches_the_database_after_random_saves(tmp_path: Path) -> None:
    store, sid = _sqlite_with_session(tmp_path / "s.db")
    fresh = SQLiteStore(tmp_path / "s.db")
    rng = random.Random(7)
    now = NOW
    for step in range(200):
        now += rng.choice([1, 10, 4000])  # some saves find the record expired
        keys = rng.sample(["a", "b", "c", "n"], rng.randint(0, 3))
        changes = Changes(
            {k: str(step) for k in keys[:2]},
            frozenset(keys[2:]),
            cleared=rng.random() < 0.1,
        )
        if not store.load_many_now([(sid, "svc", now)])[0]:
            store.create(sid, now, now + 3600)
        store.save_many_now([(sid, "svc", changes, now, now + 3600)])
        assert store.load_many_now([(sid, "svc", now)]) == [fresh.load(sid, "svc", now)]
    fresh.close()
    store.close()


def test_a_locked_database_sends_the_batch_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, sid = _sqlite_with_session(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy):
            store.save_many_now([(sid, "svc", Changes({"n": "2"}), NOW, NOW + 3600)])
    finally:
        blocker.execute("ROLLBACK")
    assert _values(store, sid) == {"n": "1"}  # nothing half-stored
    blocker.close()
    store.close()


class Counter(dibble.Plugin):
    def onCount(self) -> str:
        count = self.session.get("count", 0) + 1
        self.session["count"] = count
        return str(count)


def test_requests_wait_for_a_locked_database_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    pool = SessionPool(SQLiteStore(path, busy_timeout=5), cleanup_interval=None)
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True)
    server.register(Counter())
    with TestClient(server, cookies=True) as client:
        assert [client.get("/count").text for _ in range(3)] == ["1", "2", "3"]
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: blocker.execute("ROLLBACK"))
        release.start()
        started = time.monotonic()
        assert client.get("/count").text == "4"  # waited in the I/O thread
        assert time.monotonic() - started >= 0.2
        release.join()
        blocker.close()
        assert client.get("/count").text == "5"
    pool.close()


# --- Redis: batches and the short save --------------------------------------------


def test_redis_batches_load_in_one_round_trip_and_save_in_one_script(redis_url: str) -> None:
    T = time.time()  # Redis expires its keys by the real clock
    store = RedisStore(redis_url, prefix="test:batch:")
    store.flush()
    sids = [f"{i:032d}" for i in range(5)]
    for sid in sids:
        store.create(sid, T, T + 3600)
    saved = store.save_many(
        [(sid, "svc", Changes({"i": str(i)}), T, T + 3600) for i, sid in enumerate(sids)]
        + [("b" * 32, "svc", Changes({"i": "x"}), T, T + 3600)]  # unknown id
    )
    assert saved == [True] * 5 + [False]
    loaded = store.load_many([(sid, "svc", T + 1) for sid in [*sids, "b" * 32]])
    assert [x.record.values if x and x.record else None for x in loaded] == [
        {"i": str(i)} for i in range(5)
    ] + [None]
    # A large save goes in the batch's one argument too.
    big = Changes({f"k{i}": "v" for i in range(1500)})
    assert store.save_many([(sids[0], "svc", big, T, T + 3600)]) == [True]
    assert len(store.load(sids[0], "svc", T).record.values) == 1501  # type: ignore[union-attr]
    store.flush()
    store.close()


def test_redis_short_saves_keep_cleanup_exact(redis_url: str) -> None:
    T = time.time()
    store = RedisStore(redis_url, prefix="test:slack:")
    store.flush()
    sid = "c" * 32
    store.create(sid, T, T + 100)
    assert store.save(sid, "svc", Changes({"a": "1"}), T, T + 100)
    # Saves that move the expiry less than the index slack leave the index behind...
    for step in range(1, 6):
        assert store.save(
            sid, "svc", Changes({"a": str(step)}), T + step * 60, T + 100 + step * 60
        )
    # ...so cleanup at the old expiry finds the record, sees it is live, and keeps it.
    assert store.take_expired(T + 150) == []
    assert store.load(sid, "svc", T + 150).record.values == {"a": "5"}  # type: ignore[union-attr]
    # At the real expiry it goes, with its data, to exactly one taker.
    taken = store.take_expired(T + 100 + 5 * 60 + 1)
    assert [(t.sid, t.service, t.values) for t in taken] == [(sid, "svc", {"a": "5"})]
    assert store.take_expired(T + 10_000) == []
    store.flush()
    store.close()


# --- expiry pushed only when due -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_a_write_pushes_the_expiry_only_when_it_is_due() -> None:
    clock = Clock()
    store = MemoryStore()
    pool = SessionPool(store, lifetime=1000, clock=clock, cleanup_interval=None)
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True)
    server.register(Counter())

    def expiry() -> float:
        (info,) = store.sessions(clock.now)
        return info.expires

    with TestClient(server, cookies=True) as client:
        assert client.get("/count").text == "1"
        first = expiry()
        assert first == NOW + 1000
        clock.now += 50  # less than refresh_after (a tenth of the lifetime)
        assert client.get("/count").text == "2"
        assert expiry() == first  # stored, but the expiry stayed
        clock.now += 60  # now more than 100 s since it moved
        assert client.get("/count").text == "3"
        assert expiry() == clock.now + 1000
    pool.close()


# --- no garbage for the cyclic collector ---------------------------------------------


def test_session_requests_leave_no_reference_cycles(store: SessionStore) -> None:
    # A request whose objects refer to each other in a cycle waits for the
    # cyclic collector; with many requests in flight (a Redis batch) that is
    # most of a young collection's work.  Every object of a batched session
    # request must be freed by reference counting alone.
    class Counter(dibble.Plugin):
        def onCount(self) -> str:
            count = self.session.get("count", 0) + 1
            self.session["count"] = count
            return str(count)

    answered: list[bytes] = []

    class Transport(asyncio.Transport):
        def write(self, data: Any) -> None:
            answered.append(bytes(data))

        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    loop = asyncio.new_event_loop()
    pool = SessionPool(store, cleanup_interval=None, batching=True)
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), access_log=False, sessions=pool)
    server.register(Counter())
    listener = Listener(server.application(lambda: None), server.config, loop)
    connections = []
    for _ in range(8):
        protocol = HTTPProtocol(listener)
        protocol.connection_made(Transport())
        connections.append(protocol)

    def round_trip(requests: list[bytes]) -> list[bytes]:
        answered.clear()
        for protocol, request in zip(connections, requests, strict=True):
            protocol.data_received(request)

        async def wait() -> None:
            for _ in range(1000):
                if len(answered) == len(requests):
                    return
                await asyncio.sleep(0.001)

        loop.run_until_complete(wait())
        assert len(answered) == len(requests)
        return list(answered)

    first = round_trip([b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n"] * 8)
    cookies = [r.split(b"Set-Cookie: ")[1].split(b";")[0] for r in first]
    requests = [b"GET /count HTTP/1.1\r\nHost: x\r\nCookie: " + c + b"\r\n\r\n" for c in cookies]
    round_trip(requests)  # the route is prepared from now on
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            replies = round_trip(requests)
        assert all(reply.endswith(b"\r\n\r\n22") for reply in replies)
        assert gc.collect() == 0
    finally:
        gc.enable()
        for protocol in connections:
            protocol.connection_lost(None)
        pool.release_loops()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def test_the_session_cookie_found_in_a_field_is_kept_and_always_right() -> None:
    from dibble.app import Request
    from dibble.sessions import _pool

    def value(*fields: bytes, name: str = "s") -> str | None:
        request = Request()
        request.raw_headers = [(b"host", b"h"), *((b"cookie", f) for f in fields)]
        found = _pool._cookie_value(request, name)
        if found is not None:  # the verdict on its shape comes with it
            assert found[1] == _pool.valid_session_id(found[0])
        return found[0] if found is not None else None

    _pool._found.clear()
    field = b'a=1; s="abc"; xs=2'
    for _ in range(3):  # found, then kept: the same answer each time
        assert value(field) == "abc"
        assert value(field, name="xs") == "2"
        assert value(field, name="a") == "1"
        assert value(field, name="b") is None
    assert value(b"xs=1; s=z") == "z"  # "xs=" is not "s="
    assert value(b"other=1", b"s=second") == "second"  # a later field
    long = b"pad=" + b"x" * 600 + b"; s=long"
    assert value(long) == "long"  # parsed, not kept
    assert all(len(kept) <= _pool._MAX_KEPT_FIELD for _, kept in _pool._found)
    for n in range(_pool._MAX_FOUND + 10):
        value(b"s=%d" % n)
    assert len(_pool._found) <= _pool._MAX_FOUND
    assert value(b"s=5") == "5"
    sid = _pool.new_session_id()
    for _ in range(2):  # judged, then kept with its verdict
        assert _pool._cookie_value(Request(), "s") is None
        request = Request()
        request.raw_headers = [(b"cookie", b"s=" + sid.encode())]
        assert _pool._cookie_value(request, "s") == (sid, True)
