"""``dibble.db``: statements, transactions, backups, and the SQL log switched at run time."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dibble.config import parse_config
from dibble.db import (
    PAGE_SIZE,
    Database,
    database_path,
    set_sql_logging,
    sql_logging,
    sqlite_path,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "sub" / "app.sqlite3")
    yield database
    database.close()


@pytest.fixture
def sql_log_on() -> Iterator[None]:
    set_sql_logging(True)
    yield
    set_sql_logging(False)


def test_statements(db: Database) -> None:
    db.script("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    assert db.execute("INSERT INTO notes (text) VALUES (?)", ("a",)) == 1
    assert db.executemany("INSERT INTO notes (text) VALUES (?)", [("b",), ("c",)]) == 2
    assert db.query("SELECT text FROM notes ORDER BY id") == [("a",), ("b",), ("c",)]
    assert db.query("SELECT text FROM notes WHERE id = :id", {"id": 2}) == [("b",)]
    assert db.query("PRAGMA journal_mode") == [("wal",)]


def test_a_new_file_has_larger_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    db = Database(tmp_path / "new.sqlite3")
    db.script("CREATE TABLE t (x)")
    assert db.query("PRAGMA page_size") == [(PAGE_SIZE,)]
    db.close()
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE t (x)")
    old.execute("INSERT INTO t VALUES ('kept')")
    old.commit()
    old.close()
    db = Database(tmp_path / "old.sqlite3")
    assert db.query("PRAGMA page_size") == [(4096,)]
    assert db.query("PRAGMA journal_mode") == [("wal",)]
    db.execute("INSERT INTO t VALUES ('added')")
    assert db.query("SELECT x FROM t ORDER BY rowid") == [("kept",), ("added",)]
    assert db.query("PRAGMA integrity_check") == [("ok",)]
    db.close()


def test_a_transaction_commits_or_rolls_back(db: Database) -> None:
    db.script("CREATE TABLE t (x)")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")

    def fails() -> None:
        with db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fails()
    assert db.query("SELECT x FROM t") == [(1,)]


def test_backup_is_a_whole_copy(db: Database, tmp_path: Path) -> None:
    db.script("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (42)")
    target = tmp_path / "copy.sqlite3"
    db.backup(target)
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT x FROM t").fetchall() == [(42,)]
    copy.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_urls() -> None:
    assert sqlite_path("sqlite:///data/x.sqlite3", "/srv") == "/srv/data/x.sqlite3"
    assert sqlite_path("sqlite:////var/x.sqlite3", "/srv") == "/var/x.sqlite3"
    assert sqlite_path("x.sqlite3") == "x.sqlite3"
    with pytest.raises(ValueError, match="only sqlite"):
        sqlite_path("postgresql://db/x")
    with pytest.raises(ValueError, match="no file"):
        sqlite_path("sqlite://")
    config = parse_config({"paths": {"data_dir": "/srv/data"}})
    assert database_path(config) == "/srv/data/dibble.sqlite3"
    assert database_path(parse_config({})) is None


def test_the_sql_log_is_off_by_default(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    assert not sql_logging()
    with caplog.at_level(logging.DEBUG, logger="dibble.sql"):
        db.query("SELECT 1")
    assert not [r for r in caplog.records if r.name == "dibble.sql"]


@pytest.mark.usefixtures("sql_log_on")
def test_the_sql_log_shows_statements_and_durations(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dibble.sql"):
        db.script("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (?)", ("secret value",))
        db.query("SELECT x\n  FROM t")
        with pytest.raises(sqlite3.OperationalError):
            db.query("SELECT x FROM nowhere")
    lines = [r.getMessage() for r in caplog.records if r.name == "dibble.sql"]
    assert any("INSERT INTO t VALUES (?) [1 row]" in line for line in lines)
    assert any("SELECT x FROM t [1 row]" in line for line in lines)  # on one line
    assert any("[failed: no such table: nowhere]" in line for line in lines)
    assert all(" ms " in line for line in lines)
    assert not any("secret value" in line for line in lines)  # parameters are never logged
