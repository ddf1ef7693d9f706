"""The request log: one row per request in the ``dibble_request_log`` table.

The hot path only appends a tuple of references to a bounded deque
(``Collector``); this module's ``RequestLog.write`` runs in the statistics
thread, takes what is waiting and inserts it in one transaction, through
``dibble.db`` (so the SQL log shows it).  Rows of anonymous requests
without arguments, the common case, go in multi-row ``INSERT``\\ s of 1000
rows each, which costs about half of inserting them one by one, and hands
the GIL to the busy event loop (and waits to get it back) once per 1000
rows rather than once per row.

Columns (see docs/statistics.md):

``id``
    increasing with time, batch by batch (within a batch of up to a second,
    rows without arguments or a user come first): order by ``created`` for
    the exact order;
``created``
    when the request finished, Unix time in seconds (``datetime(created,
    'unixepoch')`` in SQLite shows it);
``method``, ``query``
    the method; the path and query string as sent (still percent-encoded),
    values of secret-looking arguments replaced by ``***``;
``args``
    the arguments as a JSON object (name: value, or a list for repeated
    ones), masked the same way; the query string's, and the form's too when
    the page read its arguments.  NULL when there were none;
``username``, ``project``, ``privileges``
    the user the page found (a login or HTTP authentication), the project
    it worked in and the user's privilege level there (9 for an admin);
``session``
    the first 16 hex digits of the SHA-256 of the session id: enough to
    tell one session's requests from another's, useless for taking the
    session over (the id itself is never stored);
``duration``
    milliseconds from the request reaching the application to its response
    being complete (NULL for a request refused as malformed);
``status``
    the response's status code.

An argument is secret when its name contains one of ``SECRET_WORDS``
(``password``, ``token``, ``csrf_token``, ``api_key``, ``session``...) or
one of the configured ``[statistics] masked_args``.  Values are cut at 200
characters and at most 50 arguments are kept, so a row stays small.

When the database cannot be written, the rows are kept and tried again,
up to the buffer's size; beyond that they are dropped and counted, and
the error log says how many.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, islice
from operator import methodcaller
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

from ..db import Database
from ._collector import LogRow, PlainRow

__all__ = ["MASK", "SECRET_WORDS", "RequestLog", "mask_args", "mask_query"]

error_log: Final = logging.getLogger("dibble.error")

#: An argument whose name contains one of these (in any case) is masked.
SECRET_WORDS: Final = (
    "pass",  # password, passwd, passphrase
    "pwd",
    "secret",
    "token",
    "csrf",
    "xsrf",
    "key",  # api_key, apikey, key
    "auth",
    "session",
    "credential",
    "signature",
    "otp",
)
#: What a masked value becomes.
MASK: Final = "***"

MAX_VALUE: Final = 200
MAX_ARGS: Final = 50
MAX_QUERY: Final = 2000
# Rows per multi-row INSERT.  Each statement hands the GIL to the event loop and
# waits up to a switch interval (5 ms) to get it back while the loop is busy, so
# statements must be big: 1000 rows of 5 values (SQLite allows 32766 since 3.32).
_CHUNK: Final = 1000 if sqlite3.sqlite_version_info >= (3, 32) else 190

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dibble_request_log (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    method TEXT NOT NULL,
    query TEXT NOT NULL,
    args TEXT,
    username TEXT,
    project TEXT,
    privileges INTEGER,
    session TEXT,
    duration REAL,
    status INTEGER NOT NULL
);
"""

_INSERT_FULL: Final = (
    "INSERT INTO dibble_request_log (created, method, query, args, username, project, "
    "privileges, session, duration, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PLAIN: Final = (
    "INSERT INTO dibble_request_log (created, method, query, duration, status) VALUES "
)


class _Secrets:
    """Which argument names are secret, remembered per name."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.words = tuple(w.lower() for w in (*SECRET_WORDS, *extra) if w)
        self._known: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        verdict = self._known.get(name)
        if verdict is None:
            lower = name.lower()
            verdict = any(word in lower for word in self.words)
            if len(self._known) < 4096:
                self._known[name] = verdict
        return verdict


def mask_args(
    params: dict[str, list[str]], is_secret: Callable[[str], bool]
) -> dict[str, str | list[str]]:
    """``params`` as logged: secret values masked, long values cut, at most ``MAX_ARGS``."""
    logged: dict[str, str | list[str]] = {}
    for name, values in params.items():
        if len(logged) >= MAX_ARGS:
            break
        if is_secret(name):
            logged[name[:MAX_VALUE]] = MASK
        elif len(values) == 1:
            logged[name[:MAX_VALUE]] = values[0][:MAX_VALUE]
        else:
            logged[name[:MAX_VALUE]] = [v[:MAX_VALUE] for v in values[:MAX_ARGS]]
    return logged


def mask_query(query: str, is_secret: Callable[[str], bool]) -> str:
    """The query string with the values of secret arguments replaced by ``***``."""
    pieces = query.split("&")
    changed = False
    for i, piece in enumerate(pieces):
        name, eq, _ = piece.partition("=")
        if eq and is_secret(unquote_plus(name)):
            pieces[i] = f"{name}={MASK}"
            changed = True
    return "&".join(pieces) if changed else query


def session_hash(sid: str) -> str:
    """The short, one-way form of a session id that the log keeps."""
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()[:16]


class RequestLog:
    """Writes the rows waiting in ``plain_rows`` and ``log_rows`` to ``database``.

    ``database`` is a ``dibble.db.Database`` or a function that opens one
    (called in the writing thread, again after a failure).  ``keep_days``:
    rows older than this are deleted once a day (0: never).
    """

    def __init__(
        self,
        database: Database | Callable[[], Database],
        plain_rows: deque[PlainRow],
        log_rows: deque[LogRow],
        *,
        masked_args: Sequence[str] = (),
        max_rows: int = 20_000,
        keep_days: float = 90.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(database, Database):
            self._db: Database | None = database
            self._open: Callable[[], Database] | None = None
        else:
            self._db = None
            self._open = database
        self.plain_rows = plain_rows
        self.log_rows = log_rows
        self.max_rows = max_rows
        self.keep_days = keep_days
        self.is_secret = _Secrets(masked_args)
        self._wall = wall
        self._retry_plain: list[PlainRow] = []
        self._retry_rows: list[LogRow] = []
        self._ready = False
        self._pruned = float("-inf")
        #: Rows written so far, and rows given up on after failures.
        self.written = 0
        self.lost = 0
        self._statements: dict[int, str] = {}

    def _database(self) -> Database:
        db = self._db
        if db is None:
            assert self._open is not None
            db = self._db = self._open()
        if not self._ready:
            db.script(_SCHEMA)
            self._ready = True
        return db

    def write(self) -> int:
        """Insert every waiting row (blocking); returns how many were written.

        Never raises for a database error: the rows are kept for the next
        call (as many as the buffer holds) and the error is logged.
        """
        plain = self._retry_plain
        rows = self._retry_rows
        self._retry_plain = []
        self._retry_rows = []
        # popleft() until the count seen now, in C: rows appended meanwhile wait.
        plain += islice(iter(self.plain_rows.popleft, None), len(self.plain_rows))
        rows += islice(iter(self.log_rows.popleft, None), len(self.log_rows))
        if not plain and not rows:
            return 0
        full = [self._convert(row) for row in rows]
        try:
            db = self._database()
            with db.transaction():
                self._insert_plain(db, plain)
                if full:
                    db.executemany(_INSERT_FULL, full)
        except (sqlite3.Error, OSError) as exc:
            self._failed(plain, rows, exc)
            return 0
        self.written += len(plain) + len(rows)
        return len(plain) + len(rows)

    def _convert(self, row: LogRow) -> tuple[Any, ...]:
        created, method, target, params, user, project, privilege, sid, duration, status = row
        query, args = self._query_and_args(target, params)
        session = session_hash(sid) if sid else None
        return (created, method, query, args, user, project, privilege, session, duration, status)

    def _query_and_args(
        self, target: bytes, params: dict[str, list[str]] | None
    ) -> tuple[str, str | None]:
        text = target.decode("latin-1")
        path, mark, query = text.partition("?")
        if mark:
            text = f"{path}?{mask_query(query, self.is_secret)}"
        if params is None and query:
            params = {}
            for name, value in parse_qsl(query, keep_blank_values=True, max_num_fields=1000):
                params.setdefault(name, []).append(value)
        args = None
        if params:
            args = json.dumps(mask_args(params, self.is_secret), ensure_ascii=False)
        return text[:MAX_QUERY], args

    def _insert_plain(self, db: Database, rows: list[PlainRow]) -> None:
        # Multi-row INSERTs of _CHUNK rows, the parameters flattened in C.
        whole = len(rows) - len(rows) % _CHUNK
        if whole:
            statement = self._plain_statement(_CHUNK)
            db.executemany(
                statement, (_flat(rows[i : i + _CHUNK]) for i in range(0, whole, _CHUNK))
            )
        if whole < len(rows):
            db.execute(self._plain_statement(len(rows) - whole), _flat(rows[whole:]))

    def _plain_statement(self, rows: int) -> str:
        statement = self._statements.get(rows)
        if statement is None:
            statement = _INSERT_PLAIN + ", ".join(["(?, ?, ?, ?, ?)"] * rows)
            if len(self._statements) < 16:
                self._statements[rows] = statement
        return statement

    def _failed(self, plain: list[PlainRow], rows: list[LogRow], exc: BaseException) -> None:
        room_plain = max(0, self.max_rows - len(self.plain_rows))
        room_rows = max(0, self.max_rows - len(self.log_rows))
        lost = max(0, len(plain) - room_plain) + max(0, len(rows) - room_rows)
        self._retry_plain = plain[max(0, len(plain) - room_plain) :]
        self._retry_rows = rows[max(0, len(rows) - room_rows) :]
        self.lost += lost
        error_log.error(
            "request log: cannot write %d row(s) to %s: %s; %s",
            len(plain) + len(rows),
            self._db.path if self._db is not None else "the database",
            exc,
            f"{lost} dropped, the rest tried again" if lost else "they are tried again",
        )
        db = self._db
        if self._open is not None and db is not None:
            db.close()  # opened afresh next time
            self._db = None
            self._ready = False

    def prune(self) -> int:
        """Delete rows older than ``keep_days`` (at most once a day); returns how many."""
        if self.keep_days <= 0:
            return 0
        now = self._wall()
        if now - self._pruned < 86400:
            return 0
        self._pruned = now
        try:
            db = self._database()
            return db.execute(
                "DELETE FROM dibble_request_log WHERE created < ?", (now - self.keep_days * 86400,)
            )
        except (sqlite3.Error, OSError) as exc:
            error_log.error("request log: cannot delete old rows: %s", exc)
            return 0

    @property
    def waiting(self) -> int:
        """Rows not yet written."""
        return (
            len(self.plain_rows)
            + len(self.log_rows)
            + len(self._retry_plain)
            + len(self._retry_rows)
        )

    def close(self) -> None:
        if self._db is not None and self._open is not None:
            self._db.close()
        self._db = None


_latin1: Final = methodcaller("decode", "latin-1")


def _flat(rows: list[PlainRow]) -> list[Any]:
    """The rows' values in one list, targets decoded: in C, without a Python loop."""
    values = list(chain.from_iterable(rows))
    values[2::5] = map(_latin1, values[2::5])
    return values
