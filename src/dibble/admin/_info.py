"""What the admin pages show, gathered without a request: plain functions.

* ``masked_config``: the effective configuration with every secret hidden
  (keys, passwords, the password in a store URL);
* ``database_tables``: the tables and columns of an SQLite database, read
  through a read-only connection (a missing file is not created);
* ``membership_rows``: projects with their users and privileges, sorted by
  any column.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .._urls import without_password
from ..config import Config
from ..users import MAX_PRIVILEGE, UserStore

__all__ = [
    "SORT_COLUMNS",
    "Column",
    "Membership",
    "Table",
    "database_tables",
    "hidden",
    "masked_config",
    "membership_rows",
]

# Settings whose values are secrets, wherever they appear.
_SECRET_WORDS: Final = ("secret", "password", "key")
# ... except these, which only name where a secret is kept.
_NOT_SECRET: Final = frozenset({"smtp_password_file"})


def hidden(value: str) -> str:
    """How a secret is shown: its length only."""
    return f"<hidden: {len(value)} characters>"


def _is_secret(name: str) -> bool:
    return name not in _NOT_SECRET and any(word in name for word in _SECRET_WORDS)


def _mask(value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _mask(getattr(value, f.name), f.name)
            for f in dataclasses.fields(value)
            if not f.metadata.get("internal")
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {key: _mask(item, name) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_mask(item, name) for item in value)
    if isinstance(value, str):
        if value and _is_secret(name):
            return hidden(value)
        if "://" in value and "@" in value:
            return without_password(value)
    return value


def masked_config(config: Config) -> Config:
    """``config`` with every secret replaced by ``<hidden: N characters>``."""
    masked: Config = _mask(config, "")
    return masked


@dataclass(frozen=True, slots=True)
class Column:
    """One column, as ``PRAGMA table_info`` describes it."""

    name: str
    type: str
    not_null: bool
    default: str | None
    primary_key: bool


@dataclass(frozen=True, slots=True)
class Table:
    """A table (or view) and its columns."""

    name: str
    kind: str
    columns: tuple[Column, ...]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_tables(path: str) -> list[Table]:
    """The tables and views of the SQLite database at ``path``, by name.

    Opened read-only: nothing is written, and a missing file raises
    ``FileNotFoundError`` rather than being created.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no database file at {path}")
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=2.0)
    try:
        found = conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        tables = []
        for name, kind in found:
            info = conn.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
            columns = tuple(
                Column(row[1], row[2] or "", bool(row[3]), row[4], bool(row[5])) for row in info
            )
            tables.append(Table(name, kind, columns))
        return tables
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Membership:
    """A row of the Projects page: a user's privilege in a project."""

    project: str
    description: str
    user: str
    privilege: int


#: The columns the Projects page sorts by, and their keys.
SORT_COLUMNS: Final[dict[str, Callable[[Membership], Any]]] = {
    "project": lambda row: (row.project.casefold(), row.user.casefold()),
    "description": lambda row: (row.description.casefold(), row.project.casefold()),
    "user": lambda row: (row.user.casefold(), row.project.casefold()),
    "privilege": lambda row: (row.privilege, row.project.casefold(), row.user.casefold()),
}


def membership_rows(
    users: UserStore, sort: str = "project", descending: bool = False
) -> list[Membership]:
    """Every project with its members (a project without any has one empty row),
    sorted by column ``sort`` (a key of ``SORT_COLUMNS``; ValueError otherwise)."""
    key = SORT_COLUMNS.get(sort)
    if key is None:
        raise ValueError(f"cannot sort by {sort!r} (columns: {', '.join(SORT_COLUMNS)})")
    projects = users.projects()
    rows: list[Membership] = []
    members: set[str] = set()
    for user in users.users():
        for project, privilege in user.projects.items():
            rows.append(Membership(project, projects.get(project, ""), user.name, privilege))
            members.add(project)
    for project, description in projects.items():
        if project not in members:
            rows.append(Membership(project, description, "", 0))
    return sorted(rows, key=key, reverse=descending)


def privilege_name(level: int) -> str:
    """``"2 (write)"`` for the named levels, the number for the rest."""
    names = {1: "read", 2: "write", 3: "admin", MAX_PRIVILEGE: "all"}
    if level <= 0:
        return ""
    return f"{level} ({names[level]})" if level in names else str(level)
