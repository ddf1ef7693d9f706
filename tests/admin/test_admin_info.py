"""What the admin pages gather: the masked configuration, database tables, memberships."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dibble.admin import database_tables, masked_config, membership_rows
from dibble.admin._info import privilege_name
from dibble.config import dump_toml, parse_config
from dibble.users import ScryptParams, UserStore


def test_every_secret_is_hidden_and_the_rest_kept() -> None:
    config = parse_config(
        {
            "server": {"secret_key": "x" * 33, "name": "site"},
            "auth": {"sso_keys": ["a" * 32, "b" * 40]},
            "sessions": {"store": "rediss://:pw@cache:6380/1"},
            "housekeeping": {
                "smtp_user": "mailer",
                "smtp_password_file": "/etc/dibble/smtp",
                "lock": "redis://u:p@h/0",
            },
            "vhosts": {"hosts": {"a.example": {"services": []}}},
        }
    )
    masked = masked_config(config)
    assert masked.server.secret_key == "<hidden: 33 characters>"
    assert masked.auth.sso_keys == ("<hidden: 32 characters>", "<hidden: 40 characters>")
    assert masked.sessions.store == "rediss://***@cache:6380/1"
    assert masked.housekeeping.lock == "redis://u:***@h/0"
    assert masked.housekeeping.smtp_password_file == "/etc/dibble/smtp"  # where, not what
    assert masked.server.name == "site"
    assert masked.vhosts.hosts == config.vhosts.hosts
    text = dump_toml(masked)
    assert "x" * 33 not in text and "pw@" not in text
    assert config.server.secret_key == "x" * 33  # the real one is untouched


def test_empty_secrets_stay_empty() -> None:
    masked = masked_config(parse_config({}))
    assert masked.server.secret_key == ""
    assert masked.auth.sso_keys == ()


def test_tables_and_columns_read_only(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            'CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT \'x\')'
        )
        db.execute('CREATE VIEW later AS SELECT v FROM "odd ""name"""')
    db.close()
    before = path.read_bytes()
    tables = database_tables(str(path))
    assert [(t.name, t.kind) for t in tables] == [("later", "view"), ('odd "name"', "table")]
    columns = tables[1].columns
    assert [(c.name, c.type, c.not_null, c.default, c.primary_key) for c in columns] == [
        ("id", "INTEGER", False, None, True),
        ("v", "TEXT", True, "'x'", False),
    ]
    assert path.read_bytes() == before


def test_a_missing_database_is_not_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        database_tables(str(tmp_path / "nope.sqlite3"))
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        database_tables(str(path))


def test_memberships_sorted_by_any_column(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "u.sqlite3", params=ScryptParams(ln=4))
    users.add("Zed", "pw", projects={"alpha": 1})
    users.add("amy", "pw", projects={"Beta": 5, "alpha": 2})
    users.add_project("gamma", "nobody here")
    try:
        rows = membership_rows(users)
        assert [(r.project, r.user) for r in rows] == [
            ("alpha", "amy"),
            ("alpha", "Zed"),
            ("Beta", "amy"),
            ("gamma", ""),
        ]
        by_privilege = membership_rows(users, "privilege", descending=True)
        assert [r.privilege for r in by_privilege] == [5, 2, 1, 0]
        assert [r.user for r in membership_rows(users, "user")][1:] == ["amy", "amy", "Zed"]
        assert membership_rows(users, "description")[-1].description == "nobody here"
        with pytest.raises(ValueError, match="cannot sort by 'password'"):
            membership_rows(users, "password")
    finally:
        users.close()


@pytest.mark.parametrize(
    ("level", "name"),
    [(0, ""), (1, "1 (read)"), (2, "2 (write)"), (3, "3 (admin)"), (5, "5"), (9, "9 (all)")],
)
def test_privilege_names(level: int, name: str) -> None:
    assert privilege_name(level) == name
