"""The built-in jobs: old logs, the statistics flush, expired sessions, the cleanup class."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import parse_config
from dibble.housekeeping import (
    CleanupClassJob,
    Housekeeping,
    LogCleanup,
    SessionCleanup,
    flush_statistics,
)
from dibble.sessions import MemoryStore, SessionPool, SQLiteStore

DAY = 86400.0


def touch(path: Path, age_days: float, now: float) -> None:
    path.write_text("x")
    when = now - age_days * DAY
    os.utime(path, (when, when))


def test_rotated_logs_go_after_their_age(tmp_path: Path, clock: Any) -> None:
    now = clock()
    ages = {
        "access.log": 400,  # a live log is never removed
        "access.log.1": 15,
        "access.log.2": 13,
        "access.log.2024-01-01": 30,
        "performance.log.3.gz": 20,
        "sql.log.1": 15,
        "error.log": 400,
        "error.log.1": 30,
        "error.log.2": 91,
        "other.log.1": 400,  # not ours
        "notes.txt": 400,
        ".error-mail.json": 400,
    }
    for name, age in ages.items():
        touch(tmp_path / name, age, now)
    (tmp_path / "access.log.9").mkdir()  # not a file
    cleanup = LogCleanup(str(tmp_path), short_age=14, long_age=90, clock=clock)
    assert cleanup() == "5 old log file(s) removed"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [
            "access.log",
            "access.log.2",
            "access.log.9",
            "error.log",
            "error.log.1",
            "other.log.1",
            "notes.txt",
            ".error-mail.json",
        ]
    )


def test_an_age_of_zero_keeps_everything(tmp_path: Path, clock: Any) -> None:
    touch(tmp_path / "access.log.1", 1000, clock())
    touch(tmp_path / "error.log.1", 1000, clock())
    assert LogCleanup(str(tmp_path), 0, 0, clock=clock)() == "0 old log file(s) removed"
    assert len(list(tmp_path.iterdir())) == 2


def test_a_missing_log_folder_fails_the_job_only(tmp_path: Path) -> None:
    timer = Housekeeping()
    timer.add_job("log files", LogCleanup(str(tmp_path / "gone"), 14, 90))
    timer.add_job("next", lambda: "ran")
    runs = timer.run_once()
    assert runs[0].error is not None and "FileNotFoundError" in runs[0].error
    assert runs[1].result == "ran"


# --- statistics -------------------------------------------------------------------------------


class Flushing:
    def __init__(self) -> None:
        self.flushed = 0

    def flush(self) -> None:
        self.flushed += 1


def test_the_statistics_are_flushed(monkeypatch: pytest.MonkeyPatch) -> None:
    statistics = Flushing()
    monkeypatch.setattr("dibble.housekeeping._jobs.statistics_of", lambda server: statistics)
    server = dibble.HTTPServer(0, dibble.Context())
    assert flush_statistics(server) == "flushed"
    assert statistics.flushed == 1


def test_statistics_that_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    server = dibble.HTTPServer(0, dibble.Context())
    assert flush_statistics(server) == "statistics are off"  # the server is not running


def test_the_real_statistics_reach_their_store(tmp_path: Path) -> None:
    from dibble.stats import statistics_of
    from dibble.testing import TestClient

    config = parse_config({"paths": {"data_dir": str(tmp_path)}, "statistics": {"enabled": True}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())

    class Hello(dibble.Plugin):
        def onHome(self) -> str:
            return "hello"

    server.register(Hello())
    with TestClient(server) as client:
        for _ in range(3):
            assert client.get("/").status == 200
        statistics = statistics_of(server)
        assert statistics is not None
        timer = server.housekeeping
        assert timer is not None
        runs = {run.name: run for run in timer.run_once()}
        assert runs["statistics"].result == "flushed"
        stored = dict(statistics.store.read())
        people = stored.get(("forever", "", "requests"), 0)
        bots = stored.get(("bots", "", "requests"), 0)  # no User-Agent may count as one
        assert people + bots == 3


def test_a_statistics_store_that_fails_to_flush_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing:
        def flush(self) -> None:
            raise OSError("the statistics store is missing")

    monkeypatch.setattr("dibble.housekeeping._jobs.statistics_of", lambda server: Failing())
    server = dibble.HTTPServer(0, dibble.Context())
    timer = Housekeeping()
    timer.add_job("statistics", lambda: flush_statistics(server), exclusive=False)
    timer.add_job("after", lambda: "ran")
    runs = timer.run_once()
    assert runs[0].error == "OSError: the statistics store is missing"
    assert runs[1].ok
    assert "the job 'statistics' failed" in caplog.text


# --- sessions ---------------------------------------------------------------------------------


def test_expired_sessions_are_removed_with_their_hooks(clock: Any) -> None:
    expired: list[str] = []
    pool = SessionPool(MemoryStore(), cleanup_interval=300.0, clock=clock)
    pool.made_by_default = True  # as if made from [sessions]: the timer takes its cleanup over
    pool.on_expired("cart", lambda sid, data: expired.append(sid))
    now = clock()
    pool.store.create("a" * 32, now - 100, now - 1)
    pool.store.save("a" * 32, "cart", dibble.sessions.Changes({"x": "1"}), now - 100, now - 1)
    pool.store.create("b" * 32, now, now + 100)
    server = dibble.HTTPServer(0, dibble.Context(), sessions=pool)
    timer = Housekeeping(clock=clock)
    job = SessionCleanup(server, timer)
    timer.add_job("sessions", job, exclusive=False)
    (run,) = timer.run_once()
    assert run.result == "1 expired session record(s) removed"
    assert expired == ["a" * 32]
    assert [pool.cleanup_interval] == [None]  # the timer does it from now on
    job.restore()
    assert [pool.cleanup_interval] == [300.0]
    pool.close()


def test_a_shared_store_is_cleaned_by_the_lock_holder_only(tmp_path: Path, clock: Any) -> None:
    pool = SessionPool(SQLiteStore(tmp_path / "s.sqlite3"), cleanup_interval=None, clock=clock)
    server = dibble.HTTPServer(0, dibble.Context(), sessions=pool)
    timer = Housekeeping(clock=clock)
    job = SessionCleanup(server, timer)
    timer.held = False
    assert job() == "another worker cleans the shared store"
    timer.held = True
    assert job() == "0 expired session record(s) removed"
    pool.close()


def test_no_pool_is_made_for_memory_sessions_nobody_used() -> None:
    server = dibble.HTTPServer.from_config(parse_config({}), dibble.Context())
    job = SessionCleanup(server, Housekeeping())
    assert job() == "no session store in use"
    assert server.sessions is None


def test_a_shared_store_is_cleaned_even_when_this_worker_never_used_it(
    tmp_path: Path,
) -> None:
    config = parse_config({"paths": {"data_dir": str(tmp_path)}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    timer = Housekeeping()
    timer.held = True
    job = SessionCleanup(server, timer)
    assert job() == "0 expired session record(s) removed"
    assert server.sessions is not None
    assert (tmp_path / "sessions.sqlite3").exists()
    server.sessions.close()


# --- the cleanup class --------------------------------------------------------------------------


class Counter:
    made = 0

    def __init__(self, server: dibble.HTTPServer) -> None:
        Counter.made += 1
        self.server = server
        self.runs = 0

    def do_work(self) -> str:
        self.runs += 1
        return f"run {self.runs}"


def test_the_cleanup_class_is_made_once_and_worked_each_tick() -> None:
    import sys

    server = dibble.HTTPServer(0, dibble.Context())
    module = sys.modules[__name__]
    name = module.__name__
    job = CleanupClassJob(server, f"{name}:Counter")
    assert job() == "run 1"
    assert job() == "run 2"
    assert Counter.made == 1
    assert job.worker.server is server
