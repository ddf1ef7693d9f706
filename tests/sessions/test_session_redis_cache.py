"""The sessions a worker keeps from Redis (dibble.sessions._rediscache).

A loop that read or wrote a session through its own connection answers the
next load of it without a round trip, until Redis's tracking notices (or the
worker's own writes elsewhere) say it changed.  These tests run real
workers (TestClients, each a loop of its own) on one real redis-server and
change sessions behind each other's backs; the ``LoadCache`` rules are also
tested alone, without sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import dibble
from dibble.app import get_request
from dibble.config import parse_config
from dibble.sessions import Changes, RedisStore, SessionPool, service_name
from dibble.sessions._pool import sessions_of
from dibble.sessions._rediscache import LoadCache, _applied
from dibble.sessions._store import Loaded, Record
from dibble.testing import TestClient

from .conftest import Counter as BaseCounter
from .conftest import session_client

RedisProcess = Any  # tests/conftest.py's: .url, .port, .process, .stop()


class Counter(BaseCounter):
    def onPeek(self) -> str:
        return str(self.session.get("count", 0))

    def onLogout(self) -> str:
        self.session.get("count")  # (the session is found when first read)
        sessions_of(get_request()).invalidate()
        return "bye"


Workers = Callable[..., TestClient]


@pytest.fixture
def workers() -> Iterator[Workers]:
    """``workers(url, prefix, cache=True)``: a TestClient (a loop of its own) over ``Counter``."""
    made: list[TestClient] = []

    def make(url: str, prefix: str, *, cache: bool = True) -> TestClient:
        client = session_client(RedisStore(url, prefix=prefix, cache=cache), Counter())
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def store_of(client: TestClient) -> RedisStore:
    pool = client.server.sessions
    assert pool is not None
    store = pool.store
    assert isinstance(store, RedisStore)
    return store


def cache_of(client: TestClient) -> LoadCache:
    (batches,) = store_of(client)._loops.values()
    assert batches.cache is not None
    return batches.cache


def counts(client: TestClient, times: int) -> list[str]:
    return [client.get("/count").text for _ in range(times)]


def until(condition: Callable[[], bool], what: str, client: TestClient | None = None) -> None:
    """Wait for ``condition``; a TestClient's loop runs only in its requests, so with
    ``client`` each try is a request (``/peek``, which changes nothing)."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"waited 5 s for {what}"
        if client is not None:
            client.get("/peek")
        else:
            time.sleep(0.01)


def prefix() -> str:
    return f"t:{uuid.uuid4().hex}:"


def tracked(workers: Workers, url: str, prefix: str) -> tuple[TestClient, LoadCache]:
    """A worker that counted to 3, and its cache, once tracking is on."""
    client = workers(url, prefix)
    assert counts(client, 3) == ["1", "2", "3"]
    cache = cache_of(client)
    until(lambda: cache.enabled, "tracking to be on", client)
    return client, cache


def sid_of(client: TestClient) -> str:
    assert client.cookies is not None
    (sid,) = client.cookies.values()
    return sid


# --- one worker ---------------------------------------------------------------------------


def test_a_worker_answers_a_session_it_kept_without_asking_redis(
    redis_url: str, workers: Workers
) -> None:
    client, cache = tracked(workers, redis_url, prefix())
    before = redis.Redis.from_url(redis_url).info("commandstats").get("cmdstat_hgetall", {})
    assert counts(client, 20) == [str(n) for n in range(4, 24)]
    after = redis.Redis.from_url(redis_url).info("commandstats").get("cmdstat_hgetall", {})
    assert cache.hits >= 18
    # At most the load that filled it went to Redis.
    assert after.get("calls", 0) - before.get("calls", 0) <= 2
    # And what Redis holds is what the worker answered.
    stored = redis.Redis.from_url(redis_url).hget(
        f"{store_of(client).prefix}d:{sid_of(client)}:{service(client)}", "count"
    )
    assert stored == b"23"


def service(client: TestClient) -> str:
    return service_name(Counter)


def test_without_the_cache_every_load_goes_to_redis(redis_url: str, workers: Workers) -> None:
    client = workers(redis_url, prefix(), cache=False)
    assert counts(client, 5) == ["1", "2", "3", "4", "5"]
    (batches,) = store_of(client)._loops.values()
    assert batches.cache is None
    assert not hasattr(batches, "cached")


def test_the_config_can_turn_the_cache_off(redis_url: str) -> None:
    for settings, cache in (({}, True), ({"redis_cache": False}, False)):
        config = parse_config({"sessions": {"store": redis_url, **settings}})
        server = dibble.HTTPServer.from_config(config, dibble.Context())
        server.register(Counter())
        with TestClient(server, cookies=True) as client:
            assert counts(client, 4) == ["1", "2", "3", "4"]
            store = store_of(client)
            assert store.cache is cache
            (batches,) = store._loops.values()
            assert (batches.cache is not None) is cache


# --- changes from elsewhere ------------------------------------------------------------------


def test_a_change_by_another_worker_is_seen_by_the_next_request(
    redis_url: str, workers: Workers
) -> None:
    shared = prefix()
    a, b = workers(redis_url, shared), workers(redis_url, shared)
    assert counts(a, 3) == ["1", "2", "3"]
    until(lambda: cache_of(a).enabled, "tracking to be on", a)
    assert counts(a, 2) == ["4", "5"]
    assert a.cookies is not None and b.cookies is not None
    b.cookies.update(a.cookies)
    for expected in range(6, 16):  # back and forth: each sees the other's last write
        worker = a if expected % 2 else b
        assert worker.get("/count").text == str(expected)
    assert cache_of(a).hits >= 1


def test_a_logout_on_another_worker_is_honoured_at_once(redis_url: str, workers: Workers) -> None:
    shared = prefix()
    a, b = workers(redis_url, shared), workers(redis_url, shared)
    assert counts(a, 3) == ["1", "2", "3"]
    until(lambda: cache_of(a).enabled, "tracking to be on", a)
    assert counts(a, 2) == ["4", "5"]
    old = dict(a.cookies or {})
    assert b.cookies is not None
    b.cookies.update(old)
    assert b.get("/logout").text == "bye"
    a.cookies = dict(old)  # a client that still sends the old cookie
    assert a.get("/peek").text == "0"
    assert a.get("/count").text == "1"  # a new session, not the old one's 6
    assert sid_of(a) != next(iter(old.values()))


def test_a_change_made_straight_in_redis_is_seen(redis_url: str, workers: Workers) -> None:
    client = workers(redis_url, prefix())
    assert counts(client, 3) == ["1", "2", "3"]
    until(lambda: cache_of(client).enabled, "tracking to be on", client)
    assert counts(client, 2) == ["4", "5"]
    key = f"{store_of(client).prefix}d:{sid_of(client)}:{service(client)}"
    redis.Redis.from_url(redis_url).hset(key, "count", "100")
    assert client.get("/count").text == "101"
    assert client.get("/count").text == "102"


def test_a_flushed_redis_drops_everything_kept(redis_url: str, redis_process: Any) -> None:
    server = redis_process()
    client = _worker(server.url)
    try:
        assert counts(client, 3) == ["1", "2", "3"]
        until(lambda: cache_of(client).enabled, "tracking to be on", client)
        assert counts(client, 2) == ["4", "5"]
        redis.Redis.from_url(server.url).flushdb()
        assert client.get("/count").text == "1"  # the session is gone: a new one
    finally:
        client.close()


def _worker(url: str) -> TestClient:
    return session_client(RedisStore(url, prefix=prefix()), Counter())


def test_losing_the_notices_turns_the_cache_off_until_they_are_back(
    redis_url: str, workers: Workers
) -> None:
    client, cache = tracked(workers, redis_url, prefix())
    (batches,) = store_of(client)._loops.values()
    assert batches.invalidations is not None
    client_id = batches.invalidations.client_id
    direct = redis.Redis.from_url(redis_url)
    direct.execute_command("CLIENT", "KILL", "ID", client_id)  # type: ignore[no-untyped-call]
    key = f"{store_of(client).prefix}d:{sid_of(client)}:{service(client)}"
    direct.hset(key, "count", "50")  # its notice has nowhere to go
    assert client.get("/count").text == "51"  # the lost connection was noticed first
    until(
        lambda: cache.enabled and batches.invalidations.client_id != client_id,  # type: ignore[union-attr]
        "it back",
        client,
    )
    assert counts(client, 3) == ["52", "53", "54"]
    direct.hset(key, "count", "70")
    assert client.get("/count").text == "71"


def test_a_lost_data_connection_drops_what_was_kept(redis_url: str, workers: Workers) -> None:
    client, cache = tracked(workers, redis_url, prefix())
    direct = redis.Redis.from_url(redis_url)
    (batches,) = store_of(client)._loops.values()
    batches.client.close()  # (the loop runs only in requests: this is between two)
    assert not cache.enabled
    assert len(cache) == 0
    key = f"{store_of(client).prefix}d:{sid_of(client)}:{service(client)}"
    direct.hset(key, "count", "40")
    # The store's connection was closed for good: requests fail, none answered from memory.
    response = client.get("/count")
    assert response.status == 503


def test_without_tracking_rights_the_cache_stays_off_and_says_why(
    redis_process: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_process()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", "plain", "on", ">secret", "~*", "+@all", "-client", "-subscribe"
    )
    host_port = server.url.split("//", 1)[1]
    client = _worker(f"redis://plain:secret@{host_port}")
    try:
        with caplog.at_level(logging.WARNING, logger="dibble.error"):
            assert counts(client, 6) == ["1", "2", "3", "4", "5", "6"]
            until(lambda: "keeps no sessions" in caplog.text, "the warning")
        assert not cache_of(client).enabled
        assert counts(client, 2) == ["7", "8"]
        assert caplog.text.count("keeps no sessions") == 1
    finally:
        client.close()


# --- the rules, without sockets -------------------------------------------------------------

NOW = 1_700_000_000.0


class _Loop:
    """What ``LoadCache`` asks of a loop."""

    def __init__(self) -> None:
        self.clock = 100.0
        self.soon: list[Callable[[], None]] = []

    def time(self) -> float:
        return self.clock

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def turn(self) -> None:
        soon, self.soon = self.soon, []
        for callback in soon:
            callback()


def make_cache(**kwargs: Any) -> tuple[LoadCache, _Loop]:
    loop = _Loop()
    cache = LoadCache(loop, "p:", patience=2.0, **kwargs)  # type: ignore[arg-type]
    cache.enable()
    return cache, loop


def loaded(count: str = "1", *, expires: float = NOW + 600) -> Loaded:
    return Loaded(NOW + 3600, Record({"count": count}, NOW - 60, NOW - 1, expires))


def test_a_load_that_crossed_a_notice_is_not_kept() -> None:
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    token = cache.token()
    cache.invalidated(["p:d:s1:svc"])  # another client wrote it after the read
    cache.loaded(items, [loaded()], token)
    assert cache.get(items) is None
    token = cache.token()
    cache.loaded(items, [loaded("2")], token)
    loop.turn()
    assert cache.get(items) == [loaded("2")]
    cache.invalidated(["p:i:s1"])  # the id's key: every service of it
    loop.turn()
    assert cache.get(items) is None


def kept_values(cache: LoadCache, loop: _Loop, items: list[Any]) -> dict[str, str]:
    """The values ``cache`` answers for its one item, in a new loop turn."""
    loop.turn()
    (kept,) = cache.get(items) or [None]
    assert kept is not None and kept.record is not None
    return kept.record.values


def test_a_save_updates_what_was_kept_when_it_is_sent() -> None:
    # The connection is ordered: a load sent after the save would read it.
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    cache.loaded(items, [loaded()], cache.token())
    save = [("s1", "svc", Changes({"count": "2"}), NOW, NOW + 600)]
    cache.saving(save)
    loop.turn()
    (after,) = cache.get(items) or []
    assert after is not None and after.record is not None
    assert after.record.values == {"count": "2"}
    assert after.record.modified == NOW
    assert after.record.started == NOW - 60
    cache.saved(save, [True])
    assert cache.get(items) == [after]


def test_saves_in_flight_apply_in_the_order_they_were_sent() -> None:
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    cache.loaded(items, [loaded()], cache.token())
    first = [("s1", "svc", Changes({"count": "2", "a": "x"}), NOW, NOW + 600)]
    second = [("s1", "svc", Changes({"count": "3"}, frozenset({"a"})), NOW, NOW + 600)]
    cache.saving(first)
    cache.saving(second)
    cache.saved(first, [True])
    cache.saved(second, [True])
    assert kept_values(cache, loop, items) == {"count": "3"}


def test_a_load_sent_before_a_save_does_not_bring_older_data_back() -> None:
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    cache.loaded(items, [loaded("1")], cache.token())
    token = cache.token()  # a load on its way (another request's, say)
    cache.saving([("s1", "svc", Changes({"count": "2"}), NOW, NOW + 600)])
    cache.loaded(items, [loaded("1")], token)  # read before the save landed
    assert kept_values(cache, loop, items) == {"count": "2"}


def test_a_save_that_failed_or_found_no_id_forgets_the_session() -> None:
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    for outcome in ([False], None):
        cache.loaded(items, [loaded()], cache.token())
        save = [("s1", "svc", Changes({"count": "2"}), NOW, NOW + 600)]
        cache.saving(save)
        cache.saved(save, outcome)
        loop.turn()
        assert cache.get(items) is None
    cache.disable()
    cache.loaded(items, [loaded()], cache.token())
    cache.saving([("s1", "svc", Changes({"count": "9"}), NOW, NOW + 600)])
    cache.enable()
    assert cache.get(items) is None  # nothing was kept while it was off


def test_forget_and_disable_and_flush_drop_sessions() -> None:
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    drops: list[Callable[[], None]] = [
        lambda: cache.forget("s1"),
        cache.flush,
        lambda: cache.invalidated(None),
    ]
    for drop in drops:
        cache.loaded(items, [loaded()], cache.token())
        loop.turn()
        assert cache.get(items) is not None
        drop()
        loop.turn()
        assert cache.get(items) is None
    cache.loaded(items, [loaded()], cache.token())
    cache.disable()
    assert cache.get(items) is None
    token = cache.token()
    assert token is None
    cache.enable()
    cache.loaded(items, [loaded()], token)  # sent while it was off: not kept
    assert cache.get(items) is None


def test_expired_sessions_and_a_silent_redis_are_not_answered() -> None:
    cache, loop = make_cache()
    items = [("s1", "svc", NOW)]
    cache.loaded(items, [loaded(expires=NOW - 1)], cache.token())
    assert cache.get(items) is None  # the pool's expiry hook runs through Redis
    cache.loaded(items, [loaded()], cache.token())
    loop.turn()
    assert cache.get(items) is not None
    loop.clock += 2.5  # no reply for longer than the store's timeout
    loop.turn()
    assert cache.get(items) is None
    assert cache.get(items) is None  # the same turn
    cache.loaded([("s2", "svc", NOW)], [None], cache.token())  # Redis answered
    loop.turn()
    assert cache.get(items) is not None


def test_at_most_max_sessions_are_kept_the_oldest_going_first() -> None:
    cache, loop = make_cache(max_sessions=3)
    for n in range(5):
        cache.loaded([(f"s{n}", "svc", NOW)], [loaded()], cache.token())
    assert len(cache) == 3
    loop.turn()
    assert cache.get([("s0", "svc", NOW)]) is None
    assert cache.get([("s4", "svc", NOW)]) is not None


def test_unknown_ids_and_other_keys_are_ignored() -> None:
    cache, loop = make_cache()
    cache.loaded([("s1", "svc", NOW)], [None], cache.token())
    assert len(cache) == 0
    cache.loaded([("s2", "svc", NOW)], [loaded()], cache.token())
    cache.invalidated(["other:key", b"raw", "p:expiry"])
    loop.turn()
    assert cache.get([("s2", "svc", NOW)]) is not None


ONE = Record({"a": "1"}, 10.0, 20.0, NOW + 60)
TWO = Record({"a": "1", "b": "2"}, 10.0, 20.0, NOW + 60)


@pytest.mark.parametrize(
    ("record", "changes", "values", "started", "modified"),
    [
        # A live record: merged key by key; started kept; modified when changed.
        (TWO, Changes({"a": "5"}), {"a": "5", "b": "2"}, 10.0, NOW),
        (ONE, Changes({}), {"a": "1"}, 10.0, 20.0),
        (TWO, Changes({}, frozenset({"b"})), {"a": "1"}, 10.0, NOW),
        (ONE, Changes({"c": "3"}, cleared=True), {"c": "3"}, 10.0, NOW),
        # None yet, or an expired one: a new record.
        (None, Changes({"a": "1"}), {"a": "1"}, NOW, NOW),
        (ONE._replace(expires=NOW - 1), Changes({"b": "2"}), {"b": "2"}, NOW, NOW),
    ],
)
def test_a_save_applies_as_the_script_applies_it(
    record: Record | None,
    changes: Changes,
    values: dict[str, str],
    started: float,
    modified: float,
) -> None:
    before = Loaded(NOW + 100, record)
    after = _applied(before, changes, NOW + 0.0004, NOW + 600.0006)
    assert after.record is not None
    assert after.record.values == values
    assert after.record.started == started
    assert after.record.modified == modified
    assert after.record.expires == NOW + 600.001  # to the millisecond, as Redis keeps it
    assert after.id_expires == NOW + 600.001  # the id is extended with it
    assert _applied(Loaded(NOW + 9999, record), changes, NOW, NOW + 600).id_expires == NOW + 9999
    if record is not None:
        assert record.values != values or changes == Changes({})  # never changed in place


def test_the_cache_matches_redis_after_many_saves(redis_url: str, workers: Workers) -> None:
    """What a worker keeps after its own saves is what a fresh read of Redis gives."""

    class Notes(dibble.Plugin):
        def onNote(self, key: str = "", value: str = "", drop: str = "", clear: str = "") -> str:
            if clear:
                self.session.clear()
            if drop:
                self.session.pop(drop, None)
            if key:
                self.session[key] = value
            return ",".join(f"{k}={v}" for k, v in sorted(self.session.items()))

    pool = SessionPool(RedisStore(redis_url, prefix=prefix()), cleanup_interval=None)
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True, access_log=False
    )
    server.register(Notes())
    with TestClient(server, cookies=True) as client:
        client.get("/note?key=a&value=1")
        client.get("/note?key=b&value=2")
        cache = cache_of(client)
        until(lambda: cache.enabled, "tracking to be on", client)
        steps = [
            "key=c&value=3",
            "drop=a",
            "key=a&value=9",
            "clear=1&key=z&value=0",
            "key=y&value=%C3%A9",
        ]
        for step in steps:
            client.get(f"/note?{step}")
        assert cache.hits >= 3
        (services,) = cache._entries.values()
        (kept,) = services.values()
        store = store_of(client)
        (fresh,) = store.load_many([(sid_of(client), next(iter(services)), time.time())])
        assert fresh == kept
        assert client.get("/note").text == "y=é,z=0"


def test_the_rules_hold_on_a_real_loop() -> None:
    """``LoadCache`` on an asyncio loop: the turn's poll runs once per turn."""
    loop = asyncio.new_event_loop()
    try:
        polls: list[int] = []
        cache = LoadCache(loop, "p:", patience=2.0)
        cache.poll = lambda: polls.append(1)

        async def run() -> None:
            cache.enable()
            cache.loaded([("s", "v", NOW)], [loaded()], cache.token())
            assert cache.get([("s", "v", NOW)]) is not None
            assert cache.get([("s", "v", NOW)]) is not None
            assert len(polls) == 1
            await asyncio.sleep(0)
            assert cache.get([("s", "v", NOW)]) is not None
            assert len(polls) == 2

        loop.run_until_complete(run())
    finally:
        loop.close()
