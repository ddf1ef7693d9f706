"""Redis batches on the event loop's own connection (dibble.sessions._redisloop).

Prepared routes (a route's second request on) load and save their sessions
in batches; with Redis those go out on a non-blocking connection of the
loop.  These tests drive that connection through its failures: a Redis
that hangs, restarts, loses its scripts, wants a password, was never there,
or answers nonsense; and the ``LoopClient`` itself against a fake server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import hiredis
import pytest

from dibble.app import PREPARED
from dibble.sessions import Changes, RedisStore, StoreError, new_session_id
from dibble.sessions._redisloop import LoopClient, RedisAddress
from dibble.sessions._store import NO_CHANGES
from dibble.testing import TestClient

from .conftest import Counter, session_client

RedisProcess = Any  # tests/conftest.py's: .url, .port, .process, .stop()


@pytest.fixture
def counting() -> Iterator[Callable[[RedisStore], TestClient]]:
    """A TestClient over ``Counter`` for a store (with a short ``retry_after``)."""
    made: list[TestClient] = []

    def make(store: RedisStore) -> TestClient:
        client = session_client(store, Counter())
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def counts(client: TestClient, times: int) -> list[str]:
    return [client.get("/count").text for _ in range(times)]


def assert_unavailable(response: Any) -> None:
    assert response.status == 503, response.text
    assert "session store is not available" in response.text


def test_prepared_routes_batch_on_the_loop_not_in_a_thread(
    redis_url: str, counting: Callable[[RedisStore], TestClient]
) -> None:
    store = RedisStore(redis_url, prefix=f"t:{uuid.uuid4().hex}:")
    client = counting(store)
    assert counts(client, 4) == ["1", "2", "3", "4"]
    assert client.server.router.cache[b"/count"].mode == PREPARED
    pool = client.server.sessions
    assert pool is not None
    assert pool._io is None  # no I/O thread was started
    assert list(store._loops) == [client.loop]
    client.close()
    assert store._loops == {}  # the server let go of its loop's connection
    store.close()


def test_without_on_loop_batches_go_through_the_io_thread(
    redis_url: str, counting: Callable[[RedisStore], TestClient]
) -> None:
    store = RedisStore(redis_url, prefix=f"t:{uuid.uuid4().hex}:", on_loop=False)
    client = counting(store)
    assert counts(client, 4) == ["1", "2", "3", "4"]
    assert client.server.sessions is not None
    assert client.server.sessions._io is not None
    assert store._loops == {}
    store.close()


def run_batch(store: RedisStore, loads: list[Any], saves: list[Any]) -> tuple[Any, Any]:
    """One batch on a loop's own connection: what its loads and saves came back as."""

    async def batch() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        batches = store.loop_batches(loop)
        assert batches is not None
        done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        batches.batch(loads, saves, lambda loaded, saved: done.set_result((loaded, saved)))
        try:
            return await done
        finally:
            store.release_loop(loop)

    return asyncio.run(batch())


def store_with_sessions(redis_url: str, count: int) -> tuple[RedisStore, float, list[str]]:
    """A store under a prefix of its own, the time, and ``count`` live session ids."""
    store = RedisStore(redis_url, prefix=f"t:{uuid.uuid4().hex}:")
    now = time.time()
    sids = [new_session_id() for _ in range(count)]
    for sid in sids:
        store.create(sid, now, now + 3600)
    return store, now, sids


def test_a_loop_batch_carries_odd_characters_and_many_keys(redis_url: str) -> None:
    store, now, (odd, many) = store_with_sessions(redis_url, 2)
    key = 'k:\u00e9 "quoted" back\\slash \U0001f600'
    service = "svc\x00with a NUL"
    keys = {f"key{i}": str(i) for i in range(3000)}
    saves = [
        (odd, service, Changes({key: '"v:\\u0000"'}), now, now + 3600),
        (many, "svc", Changes(keys), now, now + 3600),
        (new_session_id(), "svc", Changes({"a": "1"}), now, now + 3600),  # never made
    ]
    assert run_batch(store, [], saves) == ([], [True, True, False])
    loaded, saved = run_batch(store, [(odd, service, now), (many, "svc", now)], [])
    assert saved == []
    assert loaded[0].record.values == {key: '"v:\\u0000"'}
    assert loaded[1].record.values == keys
    store.flush()
    store.close()


def test_a_batch_s_saves_are_the_json_the_script_reads() -> None:
    # The saves' JSON is made piece by piece (with kept pieces); it must be
    # what a JSON encoder makes of each save's texts, for any text.
    from dibble.sessions import _redis

    store = RedisStore("redis://127.0.0.1:1/0", prefix="p:")
    now, expires = 1_700_000_000.0004, 1_700_003_600.9996
    odd = 'k:\u00e9 "quoted" back\\slash \x01\U0001f600 \udc80'
    saves = [
        ("sid", "svc", Changes({"count": "7"}), now, expires),
        ('s"i\\d', 'svc "x"\x00', Changes({odd: '"v:\\u0000"', "b": "[1,2]"}), now, expires),
        ("sid", "svc", Changes({}, frozenset({odd, "gone"})), -1.5, expires),
        ("sid", "svc", Changes({"a": "1"}, frozenset(), True), now, expires),
        ("sid", "svc", Changes({f"k{i}": str(i) for i in range(70)}), now, expires),
        ("sid", "svc", NO_CHANGES, now, expires),  # an expiry pushed forward
    ]
    for _ in range(2):  # made, then from what was kept
        prefix, text = store._save_many_args(saves)
        assert prefix == "p:"
        expected = []
        for sid, service, changes, at, until in saves:
            fields = [
                sid,
                service,
                _redis._seconds(at),
                _redis._seconds(until),
                _redis._expiry_ms(until),
                "1" if changes.cleared else "0",
                "1" if changes.set or changes.deleted or changes.cleared else "0",
                str(len(changes.set)),
                *[text for pair in changes.set.items() for text in pair],
                str(len(changes.deleted)),
                *changes.deleted,
            ]
            expected.append(fields)
        assert text == json.dumps(expected, separators=(",", ":"))
        assert json.loads(text) == expected
    store.close()


def test_an_error_reply_to_a_read_fails_the_batch_s_loads(redis_url: str) -> None:
    store, now, (good, spoilt) = store_with_sessions(redis_url, 2)
    store._client.delete(f"{store.prefix}i:{spoilt}")
    store._client.set(f"{store.prefix}i:{spoilt}", "not a hash")  # HGET: WRONGTYPE
    failure, _ = run_batch(store, [(good, "svc", now), (spoilt, "svc", now)], [])
    assert isinstance(failure, StoreError) and not failure.unavailable
    assert "WRONGTYPE" in str(failure)
    with pytest.raises(StoreError, match="WRONGTYPE"):  # the I/O thread's way too
        store.load_many([(spoilt, "svc", now)])
    assert store.load_many([(good, "svc", now)])[0] is not None
    store.flush()
    store.close()


def test_a_batch_that_cannot_be_sent_fails_its_requests_and_the_next_goes_out(
    redis_url: str, counting: Callable[[RedisStore], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore(redis_url, prefix=f"t:{uuid.uuid4().hex}:")
    client = counting(store)
    assert counts(client, 2) == ["1", "2"]  # prepared from now on
    real = store._save_many_args

    def broken(items: Any) -> Any:
        monkeypatch.setattr(store, "_save_many_args", real)  # once
        raise RuntimeError("cannot pack this batch")

    monkeypatch.setattr(store, "_save_many_args", broken)
    failed = client.get("/count")
    assert failed.status == 500
    # The batcher is not left waiting for a reply that never comes.
    assert counts(client, 2) == ["3", "4"]
    store.flush()
    store.close()


def test_a_hung_redis_fails_the_batch_in_time_and_the_connection_is_made_again(
    redis_process: Callable[..., RedisProcess],
    counting: Callable[[RedisStore], TestClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_process()
    store = RedisStore(server.url, timeout=0.3)
    client = counting(store)
    assert counts(client, 3) == ["1", "2", "3"]
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, "dibble.error"):
            assert_unavailable(client.get("/count"))
        assert 0.25 < time.monotonic() - started < 2
        assert "did not answer within 0.3 s" in caplog.text
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    time.sleep(0.35)  # retry_after
    # The late replies went with the dropped connection; a new one answers.  The
    # save that timed out may or may not have been carried out (with the session
    # kept on the loop, no load went before it): a timed-out write's outcome is
    # unknown, and the session goes on from whichever it was.
    first, second = counts(client, 2)
    assert first in ("4", "5")
    assert int(second) == int(first) + 1
    store.close()


def test_a_restarted_redis_is_reconnected_and_its_lost_scripts_loaded_again(
    redis_process: Callable[..., RedisProcess],
    counting: Callable[[RedisStore], TestClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_process()
    store = RedisStore(server.url, timeout=1.0)
    client = counting(store)
    assert counts(client, 3) == ["1", "2", "3"]
    server.stop()
    with caplog.at_level(logging.ERROR, "dibble.error"):
        assert_unavailable(client.get("/count"))
    assert "session store" in caplog.text
    again = redis_process(port=server.port)  # empty: no sessions, no scripts
    time.sleep(0.35)
    # The old session is gone with the old Redis: a new one starts.
    assert client.get("/count").text == "1"
    assert counts(client, 2) == ["2", "3"]
    again.stop()
    store.close()


def test_scripts_flushed_under_a_live_connection_are_sent_again(
    redis_url: str, counting: Callable[[RedisStore], TestClient]
) -> None:
    import redis

    store = RedisStore(redis_url, prefix=f"t:{uuid.uuid4().hex}:")
    client = counting(store)
    assert counts(client, 3) == ["1", "2", "3"]
    redis.Redis.from_url(redis_url).script_flush()
    assert counts(client, 3) == ["4", "5", "6"]
    store.close()


def test_a_password_and_a_database_number_in_the_url(
    redis_process: Callable[..., RedisProcess],
    counting: Callable[[RedisStore], TestClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    server = redis_process("--requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
    store = RedisStore(url)
    client = counting(store)
    assert counts(client, 3) == ["1", "2", "3"]
    direct = redis.Redis.from_url(url)
    assert direct.keys("dibble:session:*")  # in database 3
    assert not redis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/0").keys("*")
    direct.close()
    store.close()

    wrong = RedisStore(f"redis://:wrong@127.0.0.1:{server.port}/3")
    with caplog.at_level(logging.ERROR, "dibble.error"):
        # The first request goes the plain way (redis-py) and fails there.
        assert_unavailable(counting(wrong).get("/count"))
    assert "session store" in caplog.text
    wrong.close()


def test_redis_not_there_at_all_gives_503(
    counting: Callable[[RedisStore], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    with caplog.at_level(logging.ERROR, "dibble.error"):
        assert_unavailable(counting(store).get("/count"))
    assert "cannot be reached" in caplog.text
    store.close()


# --- the LoopClient on its own, against a fake Redis ----------------------------------


class FakeRedis(asyncio.Protocol):
    """Answers each command it reads with what ``answer`` says (None: stay silent)."""

    answer: Callable[[list[Any]], bytes | None] = staticmethod(lambda command: b"+OK\r\n")
    seen: list[list[Any]]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (command := self.reader.gets()) is not False:
            self.seen.append(command)
            reply = self.answer(command)
            if reply is not None:
                self.transport.write(reply)  # type: ignore[attr-defined]


def run_fake(
    answer: Callable[[list[Any]], bytes | None],
    scenario: Callable[[LoopClient, list[list[Any]]], Any],
    *,
    password: str | None = None,
    db: int = 0,
) -> Any:
    """Run ``scenario(client, seen)`` (a coroutine) against a fake Redis on loopback."""
    seen: list[list[Any]] = []

    async def main() -> Any:
        loop = asyncio.get_running_loop()

        def protocol() -> FakeRedis:
            fake = FakeRedis()
            fake.answer = answer
            fake.seen = seen
            return fake

        server = await loop.create_server(protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        address = RedisAddress({"host": "127.0.0.1", "port": port, "db": db, "password": password})
        client = LoopClient(address, loop, timeout=0.3, description="fake Redis")
        try:
            return await scenario(client, seen)
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def calling(client: LoopClient, commands: list[tuple[Any, ...]]) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.call(commands, future.set_result)
    return future


def test_replies_go_to_their_calls_in_order_and_login_comes_first() -> None:
    def answer(command: list[Any]) -> bytes:
        return b"+" + b" ".join(command) + b"\r\n"

    async def scenario(client: LoopClient, seen: list[list[Any]]) -> None:
        first = calling(client, [("ECHO", "a"), ("ECHO", "b")])
        second = calling(client, [("ECHO", "c")])
        assert await first == ["ECHO a", "ECHO b"]
        assert await second == ["ECHO c"]
        assert seen[:2] == [[b"AUTH", b"pw"], [b"SELECT", b"2"]]

    run_fake(answer, scenario, password="pw", db=2)


def test_a_silent_server_fails_every_waiting_call_after_the_timeout() -> None:
    async def scenario(client: LoopClient, seen: list[list[Any]]) -> None:
        started = time.monotonic()
        first = calling(client, [("GET", "a")])
        second = calling(client, [("GET", "b")])
        for future in (first, second):
            error = await future
            assert isinstance(error, StoreError) and error.unavailable
            assert "did not answer within 0.3 s" in str(error)
        assert time.monotonic() - started < 1.5

    run_fake(lambda command: None, scenario)


def test_nonsense_from_the_server_fails_the_call_and_drops_the_connection() -> None:
    answers = iter([b"!!! not RESP\r\n", b"+OK\r\n"])

    async def scenario(client: LoopClient, seen: list[list[Any]]) -> None:
        error = await calling(client, [("GET", "a")])
        assert isinstance(error, StoreError) and "not RESP" in str(error)
        assert await calling(client, [("GET", "b")]) == ["OK"]  # a new connection

    run_fake(lambda command: next(answers), scenario)


def test_error_replies_come_back_in_their_place() -> None:
    def answer(command: list[Any]) -> bytes:
        return b"-ERR no\r\n" if command[0] == b"BAD" else b":1\r\n"

    async def scenario(client: LoopClient, seen: list[list[Any]]) -> None:
        replies = await calling(client, [("GOOD",), ("BAD",), ("GOOD",)])
        assert replies[0] == 1 and replies[2] == 1
        assert isinstance(replies[1], hiredis.ReplyError)

    run_fake(answer, scenario)


def test_a_closed_client_fails_calls_at_once() -> None:
    async def scenario(client: LoopClient, seen: list[list[Any]]) -> None:
        assert await calling(client, [("PING",)]) == ["OK"]
        client.close()
        error = await calling(client, [("PING",)])
        assert isinstance(error, StoreError) and "closed" in str(error)

    run_fake(lambda command: b"+OK\r\n", scenario)
