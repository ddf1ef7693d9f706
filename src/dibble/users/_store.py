"""``UserStore``: users, projects and privileges in an SQLite database.

A user has a name, a scrypt password hash (``_hashing.py``), an admin flag
and memberships: a privilege level (1-9) in each of any number of projects
(the Astro-WISE groups).  An admin has every privilege in every project.

The database is the configured one (``[database] url``; by default
``dibble.sqlite3`` in the data directory), opened in WAL mode, so the
``dibble user`` command can change users while servers run.  One connection,
serialised by a lock: user operations are rare next to requests.

Names are NFC-normalised, 1 to 64 characters, without control characters
or ``:`` (HTTP Basic credentials split at the first colon).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from ._hashing import DEFAULT_PARAMS, ScryptParams, hash_password, needs_rehash, verify_password

__all__ = [
    "ADMIN",
    "MAX_PRIVILEGE",
    "READ",
    "WRITE",
    "User",
    "UserError",
    "UserStore",
    "valid_name",
]

#: Privilege levels with names; any level from 1 to ``MAX_PRIVILEGE`` may be used.
READ: Final = 1
WRITE: Final = 2
ADMIN: Final = 3
MAX_PRIVILEGE: Final = 9

_NAME: Final = re.compile(r"[^\x00-\x1f\x7f:]{1,64}")
_PROJECT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dibble_users (
    name TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    logins_ended REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dibble_projects (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS dibble_memberships (
    user TEXT NOT NULL REFERENCES dibble_users (name) ON DELETE CASCADE,
    project TEXT NOT NULL REFERENCES dibble_projects (name) ON DELETE CASCADE,
    privilege INTEGER NOT NULL,
    PRIMARY KEY (user, project)
);
"""


class UserError(ValueError):
    """A user operation that cannot be done: unknown user, taken name, bad value."""


def valid_name(name: str) -> str:
    """``name`` NFC-normalised if it can be a user name; UserError saying why not."""
    if not isinstance(name, str):
        raise UserError("a user name must be a string")
    normal = unicodedata.normalize("NFC", name)
    if not _NAME.fullmatch(normal) or normal != normal.strip():
        raise UserError(
            f"invalid user name {name[:70]!r}: 1 to 64 characters, no ':' or control "
            "characters, no spaces around it"
        )
    return normal


def _valid_project(project: str) -> str:
    if not isinstance(project, str) or not _PROJECT.fullmatch(project):
        raise UserError(
            f"invalid project name {str(project)[:70]!r}: letters, digits, '.', '_', '-'"
        )
    return project


def _valid_privilege(privilege: int) -> int:
    if type(privilege) is not int or not 1 <= privilege <= MAX_PRIVILEGE:
        raise UserError(f"a privilege is a level from 1 to {MAX_PRIVILEGE}, not {privilege!r}")
    return privilege


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored: name, admin flag, privilege per project."""

    name: str
    admin: bool = False
    projects: Mapping[str, int] = field(default_factory=dict)
    created: float = 0.0
    #: When the user last logged out: single sign-on tokens issued before
    #: then are no longer honoured (``UserStore.end_logins``).
    logins_ended: float = 0.0

    def privilege(self, project: str) -> int:
        """The user's privilege level in ``project`` (0: none)."""
        if self.admin:
            return MAX_PRIVILEGE
        return self.projects.get(project, 0)

    def allows(self, privilege: int = 1, project: str | None = None) -> bool:
        """Whether the user has ``privilege`` in ``project`` (in any project when None)."""
        if self.admin or privilege <= 0:
            return True
        if project is None:
            return any(level >= privilege for level in self.projects.values())
        return self.privilege(project) >= privilege

    @property
    def fingerprint(self) -> str:
        """Changes whenever the user's privileges change (sessions rotate their id then)."""
        text = repr((self.name, self.admin, sorted(self.projects.items())))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class UserStore:
    """Users, projects and memberships in the SQLite database at ``path``.

    ``params`` are the scrypt parameters new hashes get (lower them only for
    tests); stored hashes keep their own.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, params: ScryptParams = DEFAULT_PARAMS
    ) -> None:
        self.path = os.fspath(path)
        self.params = params
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.executescript(_SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(dibble_users)")}
            if "logins_ended" not in columns:  # a database made by an earlier version
                self._conn.execute(
                    "ALTER TABLE dibble_users ADD COLUMN logins_ended REAL NOT NULL DEFAULT 0"
                )
        except BaseException:
            self._conn.close()
            raise
        self._dummy: str | None = None

    def __repr__(self) -> str:
        return f"<UserStore {self.path}>"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- users ----------------------------------------------------------------------

    def add(
        self,
        name: str,
        password: str,
        *,
        admin: bool = False,
        projects: Mapping[str, int] | None = None,
    ) -> User:
        """Create a user (and any project named); UserError if the name is taken."""
        name = valid_name(name)
        hashed = hash_password(password, self.params)
        for project, privilege in (projects or {}).items():
            _valid_project(project)
            _valid_privilege(privilege)
        with self._transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO dibble_users (name, password, admin, created) "
                    "VALUES (?, ?, ?, ?)",
                    (name, hashed, int(admin), time.time()),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"a user named {name!r} already exists") from None
            for project, privilege in (projects or {}).items():
                self._grant(conn, name, project, privilege)
        user = self.get(name)
        assert user is not None
        return user

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT name, admin, created, logins_ended FROM dibble_users WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                return None
            memberships = self._conn.execute(
                "SELECT project, privilege FROM dibble_memberships WHERE user = ?", (name,)
            ).fetchall()
        return User(row[0], bool(row[1]), dict(memberships), row[2], row[3])

    def users(self) -> list[User]:
        """Every user, by name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, admin, created, logins_ended FROM dibble_users ORDER BY name"
            ).fetchall()
            memberships = self._conn.execute(
                "SELECT user, project, privilege FROM dibble_memberships"
            ).fetchall()
        projects: dict[str, dict[str, int]] = {}
        for user, project, privilege in memberships:
            projects.setdefault(user, {})[project] = privilege
        return [User(n, bool(a), projects.get(n, {}), c, e) for n, a, c, e in rows]

    def remove(self, name: str) -> None:
        """Delete a user and their memberships; UserError if there is no such user."""
        with self._transaction() as conn:
            if conn.execute("DELETE FROM dibble_users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user named {name!r}")

    def set_password(self, name: str, password: str) -> None:
        """Store a new password hash for ``name``."""
        hashed = hash_password(password, self.params)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE dibble_users SET password = ? WHERE name = ?", (hashed, name)
            )
            if cursor.rowcount == 0:
                raise UserError(f"no user named {name!r}")

    def end_logins(self, name: str, when: float | None = None) -> None:
        """Stop honouring the single sign-on tokens ``name`` was issued until ``when``
        (now): what a logout does, so a copied token cannot be replayed."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE dibble_users SET logins_ended = ? WHERE name = ?",
                (time.time() if when is None else when, name),
            )

    def set_admin(self, name: str, admin: bool) -> None:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE dibble_users SET admin = ? WHERE name = ?", (int(admin), name)
            )
            if cursor.rowcount == 0:
                raise UserError(f"no user named {name!r}")

    def password_hash(self, name: str) -> str | None:
        """The stored hash (for caches that must notice a changed password)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT password FROM dibble_users WHERE name = ?", (name,)
            ).fetchone()
        return row[0] if row else None

    def _spend(self, password: str) -> None:
        # A verification costs a scrypt hash; a user who does not exist costs
        # the same, so response times do not reveal who does.
        if self._dummy is None:
            self._dummy = hash_password("not a password", self.params)
        verify_password(password, self._dummy)

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (in about the same time).

        A hash made with weaker parameters than the store's is replaced.
        """
        try:
            name = valid_name(name)
        except UserError:
            self._spend(password)
            return None
        stored = self.password_hash(name)
        if stored is None:
            self._spend(password)
            return None
        if not verify_password(password, stored):
            return None
        if needs_rehash(stored, self.params):
            self.set_password(name, password)
        return self.get(name)

    # --- projects -------------------------------------------------------------------

    def add_project(self, project: str, description: str = "") -> None:
        """Create a project (nothing happens if it exists)."""
        _valid_project(project)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO dibble_projects (name, description) VALUES (?, ?)",
                (project, description),
            )

    def projects(self) -> dict[str, str]:
        """Every project's description, by name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, description FROM dibble_projects ORDER BY name"
            ).fetchall()
        return dict(rows)

    def _grant(self, conn: sqlite3.Connection, name: str, project: str, privilege: int) -> None:
        conn.execute("INSERT OR IGNORE INTO dibble_projects (name) VALUES (?)", (project,))
        conn.execute(
            "INSERT INTO dibble_memberships (user, project, privilege) VALUES (?, ?, ?) "
            "ON CONFLICT (user, project) DO UPDATE SET privilege = excluded.privilege",
            (name, project, privilege),
        )

    def grant(self, name: str, project: str, privilege: int = READ) -> None:
        """Make ``name`` a member of ``project`` at ``privilege`` (the project is created)."""
        _valid_project(project)
        _valid_privilege(privilege)
        with self._transaction() as conn:
            if (
                conn.execute("SELECT 1 FROM dibble_users WHERE name = ?", (name,)).fetchone()
                is None
            ):
                raise UserError(f"no user named {name!r}")
            self._grant(conn, name, project, privilege)

    def revoke(self, name: str, project: str) -> None:
        """End ``name``'s membership of ``project``."""
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM dibble_memberships WHERE user = ? AND project = ?", (name, project)
            )
