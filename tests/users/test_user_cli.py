"""``dibble user``: add, passwd, list, remove, and the errors that stop them."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from dibble.cli import main
from dibble.users import UserStore


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_add_list_passwd_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "users.sqlite3")
    add = ["user", "add", "alice", "--project", "lofar", "--project", "euclid"]
    assert (
        run(
            [*add, "--privilege", "2", "--password-stdin", "--database", db],
            monkeypatch,
            "pw one\n",
        )
        == 0
    )
    assert (
        run(
            ["user", "add", "root", "--admin", "--password-stdin", "--database", db],
            monkeypatch,
            "pw\n",
        )
        == 0
    )
    assert run(["user", "list", "--database", db], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "added alice" in out
    assert "alice  euclid:2, lofar:2" in out
    assert "root admin" in out
    assert (
        run(
            ["user", "passwd", "alice", "--password-stdin", "--database", db],
            monkeypatch,
            "pw two\n",
        )
        == 0
    )
    store = UserStore(db)
    assert store.verify("alice", "pw two") is not None
    assert store.verify("alice", "pw one") is None
    store.close()
    assert run(["user", "remove", "alice", "--database", db], monkeypatch) == 0
    assert run(["user", "list", "--database", db], monkeypatch) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "root admin"


def test_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "users.sqlite3")
    assert (
        run(["user", "add", "a:b", "--password-stdin", "--database", db], monkeypatch, "pw\n") == 1
    )
    assert "invalid user name" in capsys.readouterr().err
    assert (
        run(["user", "add", "bob", "--password-stdin", "--database", db], monkeypatch, "\n") == 1
    )
    assert "empty" in capsys.readouterr().err
    assert run(["user", "add", "bob", "--database", db], monkeypatch) == 1  # no terminal
    assert "--password-stdin" in capsys.readouterr().err
    assert run(["user", "remove", "nobody", "--database", db], monkeypatch) == 1
    assert (
        run(["user", "passwd", "nobody", "--password-stdin", "--database", db], monkeypatch, "x\n")
        == 1
    )
    assert "no user named" in capsys.readouterr().err
    assert run(["user", "list"], monkeypatch) == 2
    assert "no user database" in capsys.readouterr().err
    assert run(["user"], monkeypatch) == 2
    with pytest.raises(SystemExit):
        run(["user", "add", "x", "--privilege", "10", "--database", db], monkeypatch)


def test_the_database_comes_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[paths]\ndata_dir = "data"\n')
    assert (
        run(["user", "add", "carol", "--password-stdin", "-c", str(config)], monkeypatch, "pw\n")
        == 0
    )
    assert (tmp_path / "data" / "dibble.sqlite3").exists()
    config.write_text('[database]\nurl = "sqlite:///other.sqlite3"\n')
    assert (
        run(["user", "add", "dave", "--password-stdin", "-c", str(config)], monkeypatch, "pw\n")
        == 0
    )
    store = UserStore(tmp_path / "other.sqlite3")
    assert [u.name for u in store.users()] == ["dave"]
    store.close()


def test_an_older_database_gains_the_new_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE dibble_users (name TEXT PRIMARY KEY, password TEXT NOT NULL, "
            "admin INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)"
        )
        db.execute("INSERT INTO dibble_users VALUES ('old', 'x', 0, 1.0)")
    db.close()
    store = UserStore(path)
    user = store.get("old")
    assert user is not None and user.logins_ended == 0.0
    store.end_logins("old", 5.0)
    ended = store.get("old")
    assert ended is not None and ended.logins_ended == 5.0
    store.close()
