"""The request log: what a row holds, masking, batches and the view, a bounded buffer,
a stuck database, migration from the old table, pruning."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from dibble.app import Route
from dibble.db import Database
from dibble.stats import MASK, RequestLog, Statistics, mask_args, mask_query, session_hash
from dibble.stats._collector import MICROS
from dibble.stats._requestlog import _Secrets
from dibble.users import User

from .conftest import Clock, make_request

# Every test here runs with the compiled helpers and with the Python ones.
pytestmark = pytest.mark.usefixtures("fast_way")

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


# --- storage: batches and the view ----------------------------------------------------


def batches_of(path: Path) -> list[tuple[int, float, float, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT id, first, last, rows FROM dibble_request_log_batch ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def test_each_write_is_one_batch_and_the_view_has_the_columns(
    tmp_path: Path, clock: Clock, routes: Routes
) -> None:
    path = tmp_path / "dibble.sqlite3"
    stats = Statistics(
        request_log=Database(path), clock=clock.perf, wall=clock.wall, start_thread=False
    )
    page = routes("/page")
    for round_ in range(3):
        for i in range(4):
            clock.advance(0.001)
            stats.collector.response(
                None, make_request(page, target=b"/page", started=clock.now - 0.002), 200, i
            )
        clock.advance(0.001)
        stats.collector.response(
            None,
            make_request(
                page,
                method="POST",
                target=b"/page?api_key=k",
                started=clock.now - 0.5,
                user=User("Zo\u00eb", projects={"hubble": 2}),
                sid=f"session-{round_}",
                params={"api_key": ["k"], "note": ["\u00e9t\u00e9 \u2603"]},
            ),
            303,
            0,
        )
        stats.flush()
    batches = batches_of(path)
    assert len(batches) == 3  # one per write, plain and full rows together
    assert all(first <= last for _, first, last, _ in batches)
    rows = rows_of(path)
    assert len(rows) == 15
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids) and len(set(ids)) == 15
    assert [row["id"] // 100_000 for row in rows] == [b[0] for b in batches for _ in range(5)]
    conn = sqlite3.connect(path)
    names = [c[1] for c in conn.execute("PRAGMA table_info(dibble_request_log)")]
    conn.close()
    assert names == [
        "id",
        "created",
        "method",
        "query",
        "args",
        "username",
        "project",
        "privileges",
        "session",
        "duration",
        "status",
    ]
    plain = rows[0]
    assert (plain["method"], plain["query"], plain["status"]) == ("GET", "/page", 200)
    assert plain["created"] == pytest.approx(clock.wall_time - 3 * 0.005 + 0.001, abs=1e-5)
    assert plain["duration"] == pytest.approx(2.0, abs=1e-3)
    for name in ("args", "username", "project", "privileges", "session"):
        assert plain[name] is None
    full = rows[4]
    assert full["method"] == "POST"
    assert full["query"] == f"/page?api_key={MASK}"
    assert json.loads(full["args"]) == {"api_key": MASK, "note": "\u00e9t\u00e9 \u2603"}
    assert (full["username"], full["project"], full["privileges"]) == ("Zo\u00eb", "hubble", 2)
    assert full["session"] == session_hash("session-0")
    assert full["duration"] == pytest.approx(500.0)
    assert full["status"] == 303
    stats.close()


def test_unusual_rows_take_the_slow_way_and_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "dibble.sqlite3"
    log = RequestLog(Database(path), [], deque())
    when = 1_714_560_000.25

    def add(method: str, target: bytes, duration_ms: float, status: int) -> None:
        created = when * 1e6 + MICROS
        log.plain_rows.extend((created, method, target, duration_ms * 1e3 + MICROS, status))

    add("GET", b'/say/"hi"', 1.5, 200)  # a quote: escaped by json.dumps
    log.write()
    add("GET", b"/caf\xe9", 0.25, 200)  # Latin-1, as the target came
    add("M-SEARCH%", b"/", 0.0, 404)  # a % in the method, another status
    log.write()
    add("GET", b"/", -3.0, 200)  # a clock that went back: no 433 digits
    log.write()
    add("GET", b"/", 1.0, 1000)  # not three digits
    log.write()
    batches = batches_of(path)
    assert [b[3].startswith('["') for b in batches] == [False, True, False, False]
    got = [
        (row["method"], row["query"], row["duration"], row["status"], row["created"])
        for row in rows_of(path)
    ]
    assert got == [
        ("GET", '/say/"hi"', 1.5, 200, when),
        ("GET", "/caf\u00e9", 0.25, 200, when),
        ("M-SEARCH%", "/", 0.0, 404, when),
        ("GET", "/", -3.0, 200, when),
        ("GET", "/", 1.0, 1000, when),
    ]
    log.close()


def test_microseconds_survive_the_fast_way(tmp_path: Path) -> None:
    path = tmp_path / "dibble.sqlite3"
    log = RequestLog(Database(path), [], deque())
    expected = []
    for i in range(300):  # more than one cut of 256 rows
        created = 1_714_560_000_000_000 + i * 7_919
        duration = i * 104_729 % 9_000_000_000
        log.plain_rows.extend((created + MICROS, "GET", b"/%d" % i, duration + MICROS, 200))
        expected.append((created / 1e6, f"/{i}", duration / 1e3))
    assert log.write() == 300
    (batch,) = batches_of(path)
    assert batch[1:3] == (expected[0][0], expected[-1][0])
    got = [(row["created"], row["query"], row["duration"]) for row in rows_of(path)]
    assert got == expected
    log.close()


def test_a_table_from_an_older_dibble_stays_readable(tmp_path: Path, routes: Routes) -> None:
    path = tmp_path / "dibble.sqlite3"
    now = time.time()
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE dibble_request_log (id INTEGER PRIMARY KEY, created REAL NOT NULL, "
        "method TEXT NOT NULL, query TEXT NOT NULL, args TEXT, username TEXT, project TEXT, "
        "privileges INTEGER, session TEXT, duration REAL, status INTEGER NOT NULL)"
    )
    old.executemany(
        "INSERT INTO dibble_request_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (7, now - 60, "GET", "/old", None, None, None, None, None, 1.25, 200),
            (250042, now - 30, "POST", "/old?x=1", '{"x": "1"}', "ada", "p", 2, "abcd", None, 400),
        ],
    )
    old.commit()
    old.close()
    for _ in range(2):  # the second start finds the work done
        stats = Statistics(request_log=Database(path), start_thread=False)
        stats.collector.response(None, make_request(routes("/")), 200, 1)
        stats.flush()
        stats.close()
    rows = rows_of(path)
    assert [(r["id"], r["query"]) for r in rows[:2]] == [(7, "/old"), (250042, "/old?x=1")]
    assert tuple(rows[1]) == (
        250042,
        now - 30,
        "POST",
        "/old?x=1",
        '{"x": "1"}',
        "ada",
        "p",
        2,
        "abcd",
        None,
        400,
    )
    new = rows[2:]
    assert len(new) == 2 and all(r["id"] > 250042 for r in new)
    assert new[0]["id"] < new[1]["id"]
    conn = sqlite3.connect(path)
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'dibble_%'"))
    conn.close()
    assert kinds == {
        "dibble_request_log": "view",
        "dibble_request_log_rows": "table",
        "dibble_request_log_batch": "table",
    }


def test_pruning_deletes_batches_whose_newest_row_is_old(
    tmp_path: Path, clock: Clock, routes: Routes
) -> None:
    path = tmp_path / "dibble.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE dibble_request_log (id INTEGER PRIMARY KEY, created REAL NOT NULL, "
        "method TEXT NOT NULL, query TEXT NOT NULL, args TEXT, username TEXT, project TEXT, "
        "privileges INTEGER, session TEXT, duration REAL, status INTEGER NOT NULL)"
    )
    conn.execute(
        "INSERT INTO dibble_request_log (created, method, query, status) VALUES (?, ?, ?, ?)",
        (clock.wall_time - 3 * 86400, "GET", "/ancient", 200),
    )
    conn.commit()
    conn.close()
    stats = Statistics(
        request_log=Database(path),
        request_log_days=2,
        clock=clock.perf,
        wall=clock.wall,
        start_thread=False,
    )
    log = stats.request_log
    assert log is not None
    collector = stats.collector
    collector.response(None, make_request(routes("/"), started=clock.now), 200, 1)
    log.write()  # batch 1: old in a moment
    clock.advance(1.5 * 86400)
    collector.response(None, make_request(routes("/"), started=clock.now), 200, 1)
    log.write()  # batch 2: its newest row is recent
    clock.advance(0.75 * 86400)
    collector.response(None, make_request(routes("/"), started=clock.now), 200, 1)
    log.write()
    # Batch 1 is 2.25 days old, batch 2 0.75 days, the old table's row 5.25 days.
    assert log.prune() == 2
    assert [b[0] for b in batches_of(path)] == [2, 3]
    assert [r["query"] for r in rows_of(path)] == ["/", "/"]
    assert log.prune() == 0  # once a day
    stats.close()


def test_rows_that_fail_are_written_later_or_dropped_and_counted(
    tmp_path: Path, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dibble.sqlite3"
    Database(path).close()
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock

    def opener() -> Database:
        return Database(path, timeout=0.05)

    stats = Statistics(request_log=opener, request_log_buffer=4, start_thread=False)
    log = stats.request_log
    assert log is not None
    for i in range(3):
        stats.collector.response(None, make_request(routes("/"), target=b"/%d" % i), 200, 1)
    stats.collector.response(None, make_request(routes("/"), target=b"/?q=1"), 200, 1)
    assert log.write() == 0
    assert log.waiting == 4 and log.lost == 0
    for i in range(3, 5):  # two more than the buffer holds, with those waiting
        stats.collector.response(None, make_request(routes("/"), target=b"/%d" % i), 200, 1)
    assert log.write() == 0
    assert log.lost == 1  # the oldest plain row went; the one with arguments stays
    assert "1 dropped, the rest tried again" in caplog.text
    blocker.execute("ROLLBACK")
    blocker.close()
    assert log.write() == 5
    assert sorted(r["query"] for r in rows_of(path)) == ["/1", "/2", "/3", "/4", "/?q=1"]
    stats.close()
