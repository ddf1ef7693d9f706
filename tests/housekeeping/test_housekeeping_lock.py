"""The housekeeping lock: one holder among workers, renewed, passed on when it expires."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dibble.housekeeping import (
    Housekeeping,
    HousekeepingLock,
    LockError,
    MemoryLock,
    RedisLock,
    SQLiteLock,
    new_owner,
    open_lock,
)


@pytest.fixture(params=["memory", "sqlite"])
def lock_factory(request: pytest.FixtureRequest, tmp_path: Path, clock: Any) -> Iterator[Any]:
    """Makes locks on one shared store (two calls: two workers' views of it)."""
    if request.param == "memory":
        shared = MemoryLock(clock)
        yield lambda: shared
        return
    made: list[SQLiteLock] = []

    def make() -> SQLiteLock:
        made.append(SQLiteLock(tmp_path / "lock.sqlite3", clock=clock))
        return made[-1]

    yield make
    for lock in made:
        lock.close()


def note(ran: list[str], text: str) -> Callable[[], None]:
    """A job that appends ``text`` to ``ran``."""
    return lambda: ran.append(text)


def test_one_holder_at_a_time(lock_factory: Any, clock: Any) -> None:
    a, b = lock_factory(), lock_factory()
    assert a.acquire("A", 30)
    assert not b.acquire("B", 30)
    assert a.acquire("A", 30)  # renewed
    holder = b.holder()
    assert holder is not None and holder.owner == "A"
    assert holder.expires == pytest.approx(clock() + 30)
    b.release("B")  # not B's to release
    assert a.holder() is not None
    a.release("A")
    assert b.holder() is None
    assert b.acquire("B", 30)
    assert not a.acquire("A", 30)


def test_an_expired_lock_passes_to_another(lock_factory: Any, clock: Any) -> None:
    a, b = lock_factory(), lock_factory()
    assert a.acquire("A", 30)
    clock.advance(29)
    assert not b.acquire("B", 30)
    assert a.acquire("A", 30)  # the renewal pushed it forward
    clock.advance(29)
    assert not b.acquire("B", 30)
    clock.advance(2)  # A stopped renewing (it died)
    assert a.holder() is None
    assert b.acquire("B", 30)
    assert not a.acquire("A", 30)


def test_racing_workers_get_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "lock.sqlite3"
    SQLiteLock(path).close()  # the table exists before the race
    locks = [SQLiteLock(path) for _ in range(8)]
    start = threading.Barrier(len(locks))
    won: list[str] = []

    def worker(i: int) -> None:
        start.wait()
        if locks[i].acquire(f"w{i}", 30):
            won.append(f"w{i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(locks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lock in locks:
        lock.close()
    assert len(won) == 1


def test_two_timers_on_one_store_run_the_exclusive_jobs_once(
    lock_factory: Any, clock: Any
) -> None:
    ran: list[str] = []
    timers = []
    for name in ("first", "second"):
        timer = Housekeeping(interval=60, lock=lock_factory(), owner=name, clock=clock)
        timer.add_job("once per site", note(ran, f"site:{name}"))
        timer.add_job("every worker", note(ran, f"all:{name}"), exclusive=False)
        timers.append(timer)
    first, second = timers
    first.run_once()
    second.run_once()
    assert ran == ["site:first", "all:first", "all:second"]
    assert first.held and not second.held
    ran.clear()
    clock.advance(60)
    second.run_once()
    first.run_once()  # renewing in time keeps it
    assert ran == ["all:second", "site:first", "all:first"]
    ran.clear()
    clock.advance(200)  # first died: its lock expires (3 intervals)
    second.run_once()
    assert ran == ["site:second", "all:second"]
    assert second.held


def test_a_stopped_timer_hands_the_lock_on_at_once(lock_factory: Any, clock: Any) -> None:
    first = Housekeeping(interval=60, lock=lock_factory(), owner="first", clock=clock)
    second = Housekeeping(interval=60, lock=lock_factory(), owner="second", clock=clock)
    first.run_once()
    second.run_once()
    assert first.held and not second.held
    first.stop()
    second.run_once()
    assert second.held


def test_redis_lock(redis_url: str, redis_prefix: str) -> None:
    a = RedisLock(redis_url, prefix=redis_prefix)
    b = RedisLock(redis_url, prefix=redis_prefix)
    try:
        assert a.acquire("A", 0.3)
        assert not b.acquire("B", 0.3)
        assert a.acquire("A", 0.3)
        holder = b.holder()
        assert holder is not None and holder.owner == "A"
        assert time.time() < holder.expires <= time.time() + 0.31
        b.release("B")
        assert not b.acquire("B", 0.3)
        time.sleep(0.4)  # A stopped renewing: Redis expires the key
        assert a.holder() is None
        assert b.acquire("B", 30)
        a.release("A")
        assert not a.acquire("A", 30)
        b.release("B")
        assert b.holder() is None
        assert "Redis redis://127.0.0.1:" in a.description
    finally:
        a.close()
        b.close()


def test_two_timers_on_one_redis(redis_url: str, redis_prefix: str) -> None:
    ran: list[str] = []
    timers = []
    for name in ("first", "second"):
        lock = RedisLock(redis_url, prefix=redis_prefix)
        timer = Housekeeping(interval=60, lock=lock, owner=name)
        timer.add_job("once", note(ran, name))
        timers.append((timer, lock))
    try:
        for timer, _ in timers:
            timer.run_once()
        assert ran == ["first"]
        timers[0][0].stop()
        timers[1][0].run_once()
        assert ran == ["first", "second"]
    finally:
        for timer, lock in timers:
            timer.stop()
            lock.close()


def test_an_unreachable_redis_is_a_lock_error(dead_port: int) -> None:
    lock = RedisLock(f"redis://127.0.0.1:{dead_port}/0", timeout=0.5)
    try:
        with pytest.raises(LockError, match=r"lock store .* failed"):
            lock.acquire("A", 30)
    finally:
        lock.close()


class BrokenLock(HousekeepingLock):
    description = "broken"

    def __init__(self) -> None:
        self.fail = True

    def acquire(self, owner: str, ttl: float) -> bool:
        if self.fail:
            raise LockError("the lock store is gone")
        return True

    def release(self, owner: str) -> None:
        raise LockError("the lock store is gone")

    def holder(self) -> None:
        raise LockError("the lock store is gone")


def test_a_failing_lock_skips_the_exclusive_jobs_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = BrokenLock()
    timer = Housekeeping(lock=lock)
    ran: list[str] = []
    timer.add_job("once", lambda: ran.append("once"))
    timer.add_job("all", lambda: ran.append("all"), exclusive=False)
    timer.run_once()
    timer.run_once()
    assert ran == ["all", "all"]
    assert caplog.text.count("cannot take the lock (the lock store is gone)") == 1
    assert timer.holder() is None
    lock.fail = False
    timer.run_once()
    assert ran[-2:] == ["once", "all"]
    assert "the lock works again" in caplog.text
    timer.stop()  # a failing release is only a warning
    assert "cannot release the lock" in caplog.text


@pytest.fixture
def opened() -> Iterator[list[HousekeepingLock]]:
    locks: list[HousekeepingLock] = []
    yield locks
    for lock in locks:
        lock.close()


def test_open_lock_specs(tmp_path: Path, opened: list[HousekeepingLock]) -> None:
    memory = open_lock("memory")
    assert isinstance(memory, MemoryLock)
    relative = open_lock("sqlite:///locks/a.sqlite3", str(tmp_path))
    absolute = open_lock(f"sqlite:///{tmp_path}/b.sqlite3")
    plain = open_lock("c.sqlite3", str(tmp_path))
    opened.extend([relative, absolute, plain])
    assert isinstance(relative, SQLiteLock) and relative.path == str(tmp_path / "locks/a.sqlite3")
    assert isinstance(absolute, SQLiteLock) and absolute.path == str(tmp_path / "b.sqlite3")
    assert isinstance(plain, SQLiteLock) and plain.path == str(tmp_path / "c.sqlite3")
    redis = open_lock("redis://127.0.0.1:1/0")
    opened.append(redis)
    assert isinstance(redis, RedisLock)
    with pytest.raises(ValueError, match="names no file"):
        open_lock("sqlite://")


def test_a_lock_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="cannot open the lock database"):
        SQLiteLock(tmp_path)  # a folder, not a file


def test_owner_tokens_name_the_process() -> None:
    import os

    token = new_owner()
    assert f":{os.getpid()}:" in token
    assert token != new_owner()
