"""Statistics stores: SQLite and Redis add up across workers, survive damage and outages."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dibble.app import Route
from dibble.stats import (
    MemoryStatsStore,
    RedisStatsStore,
    SQLiteStatsStore,
    Statistics,
    StatsStore,
    StoreError,
    open_stats_store,
)

from .conftest import make_request

# Every test here runs with the compiled helpers and with the Python ones.
pytestmark = pytest.mark.usefixtures("fast_way")

Routes = Callable[[str], Route]


def hits(stats: Statistics, route: Route, n: int, size: int = 10) -> None:
    for _ in range(n):
        stats.collector.response(None, make_request(route), 200, size)


def requests_of(store: StatsStore) -> int:
    return sum(v for (s, k, f), v in store.read() if (s, k, f) == ("forever", "", "requests"))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], StatsStore]]:
    """Makes stores that share their data, as workers of one service do."""
    made: list[StatsStore] = []
    prefix = f"test:{uuid.uuid4().hex}:"
    shared = MemoryStatsStore()

    def make() -> StatsStore:
        store: StatsStore
        if request.param == "memory":
            store = shared
        elif request.param == "sqlite":
            store = SQLiteStatsStore(tmp_path / "statistics.sqlite3")
        else:
            store = RedisStatsStore(request.getfixturevalue("redis_url"), prefix=prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        if isinstance(store, RedisStatsStore):
            store.clear()
        store.close()


def test_a_store_adds(store_factory: Callable[[], StatsStore]) -> None:
    store = store_factory()
    store.add({("forever", "", "requests"): 2, ("day", "2024-05-01", "get"): 2}, "b1")
    store.add({("forever", "", "requests"): 3, ("user", "ada:x", "requests"): 1}, "b2")
    assert sorted(store.read()) == [
        (("day", "2024-05-01", "get"), 2),
        (("forever", "", "requests"), 5),
        (("user", "ada:x", "requests"), 1),
    ]


def test_two_workers_add_up(store_factory: Callable[[], StatsStore], routes: Routes) -> None:
    one = Statistics(store_factory(), start_thread=False)
    two = Statistics(store_factory(), start_thread=False)
    home = routes("/")
    hits(one, home, 3)
    hits(two, home, 4)
    one.flush()
    two.flush()
    hits(one, home, 1)
    one.flush()
    assert one.report().forever.requests == 8
    assert two.report().forever.requests == 8
    assert two.report().forever.bytes_sent == 80
    one.close()
    two.close()


def test_redis_applies_a_batch_once(redis_url: str) -> None:
    store = RedisStatsStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        store.add({("forever", "", "requests"): 5}, "same-batch")
        store.add({("forever", "", "requests"): 5}, "same-batch")  # a retry after a lost answer
        assert store.read() == [(("forever", "", "requests"), 5)]
    finally:
        store.clear()
        store.close()


def test_redis_down_keeps_the_counts_for_later(
    redis_process: Callable[[], Any], routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_process()
    stats = Statistics(RedisStatsStore(server.url, timeout=0.5), start_thread=False)
    hits(stats, routes("/"), 2)
    stats.flush()
    server.stop()
    hits(stats, routes("/"), 3)
    stats.flush()  # fails: logged, kept
    stats.flush()  # still failing: not logged again
    failures = [r for r in caplog.records if "kept in memory" in r.getMessage()]
    assert len(failures) == 1
    report = stats.report()
    assert report.store_error
    assert report.forever.requests == 3  # what this process still holds
    stats.close()


def test_sqlite_statistics_survive_a_restart(tmp_path: Path, routes: Routes) -> None:
    path = tmp_path / "statistics.sqlite3"
    first = Statistics(SQLiteStatsStore(path), start_thread=False)
    hits(first, routes("/"), 5)
    first.close()  # flushes
    second = Statistics(SQLiteStatsStore(path), start_thread=False)
    assert second.report().forever.requests == 5
    second.close()


def test_a_backup_follows_every_flush(tmp_path: Path, routes: Routes) -> None:
    path = tmp_path / "statistics.sqlite3"
    stats = Statistics(SQLiteStatsStore(path), start_thread=False)
    hits(stats, routes("/"), 2)
    stats.flush()
    backup = sqlite3.connect(f"{path}.bak")
    assert backup.execute(
        "SELECT value FROM dibble_statistics WHERE scope = 'forever' AND field = 'requests'"
    ).fetchall() == [(2,)]
    backup.close()
    stats.close()


def damage(path: Path) -> None:
    with open(path, "r+b") as file:
        file.seek(0)
        file.write(b"this is no longer an SQLite database" * 200)


def test_a_corrupt_store_is_restored_from_its_backup(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "statistics.sqlite3"
    stats = Statistics(SQLiteStatsStore(path), start_thread=False)
    hits(stats, routes("/"), 7)
    stats.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    damage(path)
    with caplog.at_level(logging.ERROR, logger="dibble.error"):
        store = SQLiteStatsStore(path)
    assert store.restored == 1
    assert requests_of(store) == 7  # nothing that was flushed is lost
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "restored it from the backup" in messages
    kept = [p for p in os.listdir(tmp_path) if ".corrupt-" in p]
    assert kept, "the damaged file is kept for a post-mortem"
    store.close()


def test_a_corrupt_store_without_a_backup_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "statistics.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    store = SQLiteStatsStore(path)
    assert store.read() == []
    assert "no usable backup" in caplog.text
    store.add({("forever", "", "requests"): 1}, "b")
    assert requests_of(store) == 1
    store.close()


def test_a_store_file_deleted_while_running(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "statistics.sqlite3"
    stats = Statistics(SQLiteStatsStore(path), start_thread=False)
    hits(stats, routes("/"), 3)
    stats.flush()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    hits(stats, routes("/"), 2)
    stats.flush()
    assert "removed or replaced" in caplog.text
    assert path.exists()
    assert stats.report().forever.requests == 5  # restored from the backup, then added to
    stats.close()


def test_a_store_folder_gone_while_running_keeps_counts(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data"
    path = folder / "statistics.sqlite3"
    stats = Statistics(SQLiteStatsStore(path), start_thread=False)
    hits(stats, routes("/"), 3)
    stats.flush()
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")  # the store cannot be made again
    hits(stats, routes("/"), 4)
    stats.flush()
    assert "kept in memory" in caplog.text
    assert stats.report().forever.requests == 4  # the unsent ones: the store is unreadable
    folder.unlink()
    folder.mkdir()
    stats.flush()  # works again: the waiting batch goes in
    assert "works again" in caplog.text
    assert stats.report().forever.requests == 4  # the first 3 went with the deleted folder
    stats.close()


def test_an_unopenable_store_at_start_does_not_stop_the_server(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    store = SQLiteStatsStore(blocker / "statistics.sqlite3")
    assert "cannot open the store" in caplog.text
    stats = Statistics(store, start_thread=False)
    hits(stats, routes("/"), 1)
    stats.flush()
    with pytest.raises(StoreError):
        store.read()
    stats.close()


def test_open_stats_store(tmp_path: Path) -> None:
    assert isinstance(open_stats_store(""), MemoryStatsStore)
    assert isinstance(open_stats_store("memory", data_dir=str(tmp_path)), MemoryStatsStore)
    store = open_stats_store("", data_dir=str(tmp_path))
    assert isinstance(store, SQLiteStatsStore)
    assert store.path == str(tmp_path / "statistics.sqlite3")
    store.close()
    other = open_stats_store("sqlite:///stats/s.sqlite3", data_dir=str(tmp_path))
    assert isinstance(other, SQLiteStatsStore)
    assert other.path == str(tmp_path / "stats" / "s.sqlite3")
    other.close()
    redis = open_stats_store("redis://127.0.0.1:1/0")
    assert isinstance(redis, RedisStatsStore)
    assert redis.description == "Redis redis://127.0.0.1:1/0"
    redis.close()


class FlakyStore(MemoryStatsStore):
    """A store that refuses every batch while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def add(self, increments: dict[tuple[str, str, str], int], batch: str) -> None:
        if self.down:
            raise StoreError("the store is down")
        super().add(increments, batch)


def test_a_long_outage_keeps_memory_bounded_and_loses_nothing(
    routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    stats = Statistics(store, start_thread=False)
    for _ in range(100):
        hits(stats, routes("/"), 1)
        stats.flush()
    assert len(stats._unsent) <= 64
    assert "merged unsent batches" in caplog.text
    store.down = False
    stats.flush()
    assert requests_of(store) == 100
    stats.close()
