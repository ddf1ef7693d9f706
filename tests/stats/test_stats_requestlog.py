"""The request log: what a row holds, masking, batches, a bounded buffer, a stuck database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from dibble.app import Route
from dibble.db import Database
from dibble.stats import MASK, Statistics, mask_args, mask_query, session_hash
from dibble.stats._requestlog import _Secrets
from dibble.users import User

from .conftest import Clock, make_request

Routes = Callable[[str], Route]


def rows_of(path: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM dibble_request_log ORDER BY created, id").fetchall()
    finally:
        conn.close()


def test_secret_names() -> None:
    secret = _Secrets(["pin"])
    for name in ("password", "Passwd", "pwd", "new_password", "api_key", "csrf_token", "token"):
        assert secret(name), name
    for name in ("session", "client_secret", "auth", "pin"):
        assert secret(name), name
    for name in ("q", "year", "project", "page"):
        assert not secret(name), name


def test_masking() -> None:
    secret = _Secrets()
    assert mask_query("user=ada&password=hunter2&x=1", secret) == f"user=ada&password={MASK}&x=1"
    assert mask_query("a=1&b", secret) == "a=1&b"
    assert mask_query("pass%77ord=x", secret) == f"pass%77ord={MASK}"
    logged = mask_args({"user": ["ada"], "token": ["abc"], "tag": ["a", "b"]}, secret)
    assert logged == {"user": "ada", "token": MASK, "tag": ["a", "b"]}
    long = mask_args({"q": ["x" * 1000]}, secret)
    assert long["q"] == "x" * 200


def test_rows_are_written_with_their_columns(tmp_path: Path, clock: Clock, routes: Routes) -> None:
    path = tmp_path / "dibble.sqlite3"
    stats = Statistics(
        request_log=Database(path), clock=clock.perf, wall=clock.wall, start_thread=False
    )
    page = routes("/page")
    collector = stats.collector
    clock.advance(1.0)
    collector.response(None, make_request(page, target=b"/page", started=clock.now - 0.25), 200, 1)
    collector.response(
        None,
        make_request(
            page,
            method="POST",
            target=b"/page?user=ada&password=hunter2",
            started=clock.now - 0.5,
            user=User("ada", projects={"hubble": 2}),
            sid="the-session-id",
            params={"user": ["ada"], "password": ["hunter2"], "note": ["hi"]},
        ),
        303,
        0,
    )
    collector.invalid(None, None, 400)
    stats.flush()
    rows = rows_of(path)
    assert len(rows) == 3
    plain = next(r for r in rows if r["query"] == "/page")
    assert plain["method"] == "GET"
    assert plain["args"] is None
    assert plain["username"] is None
    assert plain["status"] == 200
    assert plain["duration"] == pytest.approx(250.0)
    assert plain["created"] == pytest.approx(clock.wall_time, abs=0.01)
    full = next(r for r in rows if r["method"] == "POST")
    assert full["query"] == f"/page?user=ada&password={MASK}"
    assert json.loads(full["args"]) == {"user": "ada", "password": MASK, "note": "hi"}
    assert full["username"] == "ada"
    assert full["project"] == "hubble"
    assert full["privileges"] == 2
    assert full["session"] == session_hash("the-session-id")
    assert "the-session-id" not in full["session"]
    assert full["duration"] == pytest.approx(500.0)
    refused = next(r for r in rows if r["status"] == 400)
    assert refused["duration"] is None
    stats.close()


def test_query_arguments_are_logged_even_when_the_page_never_read_them(
    tmp_path: Path, routes: Routes
) -> None:
    path = tmp_path / "dibble.sqlite3"
    stats = Statistics(request_log=Database(path), start_thread=False)
    stats.collector.response(
        None, make_request(routes("/"), target=b"/?year=2003&secret=s"), 200, 1
    )
    stats.flush()
    (row,) = rows_of(path)
    assert json.loads(row["args"]) == {"year": "2003", "secret": MASK}
    assert row["query"] == f"/?year=2003&secret={MASK}"
    stats.close()


def test_many_rows_go_in_batches(tmp_path: Path, routes: Routes) -> None:
    path = tmp_path / "dibble.sqlite3"
    stats = Statistics(request_log=Database(path), start_thread=False)
    for i in range(1234):
        stats.collector.response(None, make_request(routes("/"), target=b"/"), 200, i)
    stats.flush()
    assert len(rows_of(path)) == 1234
    assert stats.request_log is not None
    assert stats.request_log.written == 1234
    stats.close()


def test_bots_are_left_out_unless_asked_for(tmp_path: Path, routes: Routes) -> None:
    for log_bots, expected in ((False, 1), (True, 2)):
        path = tmp_path / f"log-{log_bots}.sqlite3"
        stats = Statistics(
            request_log=Database(path), request_log_bots=log_bots, start_thread=False
        )
        stats.collector.response(None, make_request(routes("/"), agent=b"bingbot/2.0"), 200, 1)
        stats.collector.response(None, make_request(routes("/")), 200, 1)
        stats.flush()
        assert len(rows_of(path)) == expected
        stats.close()


def test_a_full_buffer_drops_and_counts(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Statistics(
        request_log=Database(tmp_path / "dibble.sqlite3"),
        request_log_buffer=10,
        start_thread=False,
    )
    for _ in range(25):
        stats.collector.response(None, make_request(routes("/")), 200, 1)
    assert stats.collector.dropped == 15
    stats.flush()
    assert "15 row(s) dropped" in caplog.text
    stats.close()


def test_a_stuck_database_keeps_rows_for_later(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dibble.sqlite3"
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("PRAGMA journal_mode=WAL")
    blocker.execute("CREATE TABLE other (x)")
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock

    def opener() -> Database:
        return Database(path, timeout=0.05)

    stats = Statistics(request_log=opener, start_thread=False)
    for _ in range(3):
        stats.collector.response(None, make_request(routes("/")), 200, 1)
    stats.flush()
    assert "cannot write 3 row(s)" in caplog.text
    assert stats.request_log is not None
    assert stats.request_log.waiting == 3
    blocker.execute("ROLLBACK")
    blocker.close()
    stats.flush()
    assert len(rows_of(path)) == 3
    assert stats.request_log.waiting == 0
    stats.close()


def test_old_rows_are_pruned(tmp_path: Path, clock: Clock, routes: Routes) -> None:
    path = tmp_path / "dibble.sqlite3"
    stats = Statistics(
        request_log=Database(path),
        request_log_days=1,
        clock=clock.perf,
        wall=clock.wall,
        start_thread=False,
    )
    stats.collector.response(None, make_request(routes("/"), started=clock.now), 200, 1)
    stats.flush()
    clock.advance(2 * 86400)
    stats.collector.response(None, make_request(routes("/"), started=clock.now), 200, 1)
    stats.flush()
    assert len(rows_of(path)) == 1
    stats.close()


def test_the_background_thread_writes_rows(tmp_path: Path, routes: Routes) -> None:
    import time

    path = tmp_path / "dibble.sqlite3"
    stats = Statistics(request_log=Database(path), log_interval=0.02)
    stats.collector.response(None, make_request(routes("/")), 200, 1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if rows_of(path):
                break
        except sqlite3.OperationalError:
            pass  # the table is not there yet
        time.sleep(0.02)
    assert len(rows_of(path)) == 1
    stats.close()
