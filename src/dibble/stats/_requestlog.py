"""The request log: one row per request, seen through the ``dibble_request_log`` view.

The hot path only adds a row's values to a bounded buffer (``Collector``);
this module's ``RequestLog.write`` runs in the statistics thread, takes
what is waiting and writes it in one transaction, through ``dibble.db``
(so the SQL log shows it).

Storage: one row of ``dibble_request_log_batch`` per write (at most
``BATCH_ROWS`` requests), its requests as one JSON array in ``rows``, and
the view ``dibble_request_log`` that expands them (``json_each``) into the
columns below.  An ``INSERT`` per request cost more than everything else
the log does (about 5,000 instructions in SQLite and 2,000 to bind its
values, on the core that serves); one text per write costs SQLite next to
nothing.  Writing a row's two times as decimal text would cost CPython about
2,000 more, so the common row (anonymous, no arguments) is one JSON string
made in C for all rows at once: the times as hex digits (see ``MICROS`` in
``_collector``), the target, the method and the status.  Other rows are
converted one by one (masking, hashing) and encoded by ``json.dumps`` as
arrays.  The view decodes both; reading it costs SQLite a few microseconds
a row, which is where the price of cheap writes is paid.

Columns of the view (see docs/statistics.md):

``id``
    batch id * ``ID_STRIDE`` + the row's place in the batch: increasing
    with time, batch by batch (within a batch, rows without arguments or a
    user come first): order by ``created`` for the exact order;
``created``
    when the request finished, Unix time in seconds (``datetime(created,
    'unixepoch')`` in SQLite shows it), to the microsecond;
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

A database written by an older dibble has ``dibble_request_log`` as a
table: it is renamed ``dibble_request_log_rows`` and the view shows its
rows too (ids unchanged; new ids start above them).

An argument is secret when its name contains one of ``SECRET_WORDS``
(``password``, ``token``, ``csrf_token``, ``api_key``, ``session``...) or
one of the configured ``[statistics] masked_args``.  Values are cut at 200
characters and at most 50 arguments are kept, so a row stays small.

When the database cannot be written, the rows are kept and tried again,
up to the buffer's size; beyond that they are dropped and counted, and
the error log says how many.  Rows older than ``keep_days`` go a batch at
a time: a batch is deleted once its newest row is old enough.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import math
import sqlite3
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

from ..db import Database
from ._collector import MICROS, PLAIN_WIDTH, LogRow
from ._native import speedups

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
#: A batch holds at most this many rows; row ``k`` of batch ``b`` has id ``b * ID_STRIDE + k``.
ID_STRIDE: Final = 100_000
BATCH_ROWS: Final = ID_STRIDE

_BATCH_TABLE: Final = """
CREATE TABLE dibble_request_log_batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first REAL NOT NULL,
    last REAL NOT NULL,
    rows TEXT NOT NULL
)
"""
#: The view's columns, in the order the table had them before it became a view.
COLUMNS: Final = (
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
)
# A row in ``rows`` is a JSON array of these (the first five for a row without
# arguments or a user that the fast way could not write)...
_FIELDS: Final = (
    "created",
    "method",
    "query",
    "duration",
    "status",
    "args",
    "username",
    "project",
    "privileges",
    "session",
)
# ...or, for the common row, one JSON string: 16 hex digits of created and 16 of
# duration (each "433" and then the microseconds, see MICROS), the target, a space,
# the method and 3 digits of status.
_HEX_DIGITS: Final = "'0123456789abcdef'"


def _micros(start: int) -> str:
    """SQL: the count in the 13 hex digits of the row's string from ``start`` (1-based)."""
    return " + ".join(
        f"((instr({_HEX_DIGITS}, substr(r.value, {start + i}, 1)) - 1) << {4 * (12 - i)})"
        for i in range(13)
    )


_SPACE: Final = "instr(substr(r.value, 33), ' ')"  # after the target
_STRING_COLUMNS: Final = {
    "created": f"({_micros(4)}) / 1e6",
    "method": f"substr(r.value, 33 + {_SPACE}, length(r.value) - 35 - {_SPACE})",
    "query": f"substr(r.value, 33, {_SPACE} - 1)",
    "duration": f"({_micros(20)}) / 1e3",
    "status": "CAST(substr(r.value, -3) AS INTEGER)",
}


def _view(old_rows: bool) -> str:
    """The ``CREATE VIEW`` of ``dibble_request_log`` (with the rows of an old table)."""
    columns = [f"b.id * {ID_STRIDE} + r.key AS id"]
    for name in COLUMNS[1:]:
        array = f"json_extract(r.value, '$[{_FIELDS.index(name)}]')"
        string = _STRING_COLUMNS.get(name, "NULL")
        columns.append(f"CASE WHEN r.type = 'text' THEN {string} ELSE {array} END AS {name}")
    sql = (
        "CREATE VIEW dibble_request_log AS\nSELECT\n    "
        + ",\n    ".join(columns)
        + "\nFROM dibble_request_log_batch AS b, json_each(b.rows) AS r"
    )
    if old_rows:
        sql += f"\nUNION ALL\nSELECT {', '.join(COLUMNS)} FROM dibble_request_log_rows"
    return sql


_INSERT: Final = "INSERT INTO dibble_request_log_batch (first, last, rows) VALUES (?, ?, ?)"


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
    (called in the writing thread, again after a failure).  ``plain_rows``
    holds ``PLAIN_WIDTH`` values per row, flat (see ``Collector``).
    ``keep_days``: rows older than this are deleted once a day (0: never).
    """

    def __init__(
        self,
        database: Database | Callable[[], Database],
        plain_rows: list[Any],
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
        self._retry_plain: list[Any] = []
        self._retry_rows: list[LogRow] = []
        self._ready = False
        self._old_rows = False
        self._pruned = float("-inf")
        #: Rows written so far, and rows given up on after failures.
        self.written = 0
        self.lost = 0

    def _database(self) -> Database:
        db = self._db
        if db is None:
            assert self._open is not None
            db = self._db = self._open()
        if not self._ready:
            self._old_rows = prepare(db)
            self._ready = True
        return db

    def write(self) -> int:
        """Write every waiting row (blocking); returns how many were written.

        Never raises for a database error: the rows are kept for the next
        call (as many as the buffer holds) and the error is logged.
        """
        plain = self._retry_plain
        rows = self._retry_rows
        self._retry_plain = []
        self._retry_rows = []
        # The values there now, in C: rows added meanwhile wait (see Collector).
        buffer = self.plain_rows
        taken = len(buffer)
        if plain:
            plain += buffer[:taken]
        else:
            plain = buffer[:taken]
        del buffer[:taken]
        rows += islice(iter(self.log_rows.popleft, None), len(self.log_rows))
        if not plain and not rows:
            return 0
        count = len(plain) // PLAIN_WIDTH + len(rows)
        size = PLAIN_WIDTH * BATCH_ROWS
        if len(plain) <= size:
            batches = [_plain_batch(plain)] if plain else []
        else:
            batches = [_plain_batch(plain[i : i + size]) for i in range(0, len(plain), size)]
        full = [self._convert(row) for row in rows]
        batches += (_full_batch(full[i : i + BATCH_ROWS]) for i in range(0, len(full), BATCH_ROWS))
        if len(batches) == 2 and count <= BATCH_ROWS:  # one write, one batch
            (first, last, text), (first2, last2, text2) = batches
            batches = [(min(first, first2), max(last, last2), f"{text[:-1]},{text2[1:]}")]
        try:
            db = self._database()
            with db.transaction():
                db.executemany(_INSERT, batches)
        except (sqlite3.Error, OSError) as exc:
            self._failed(plain, rows, exc)
            return 0
        self.written += count
        return count

    def _convert(self, row: LogRow) -> list[Any]:
        created, method, target, params, user, project, privilege, sid, duration, status = row
        query, args = self._query_and_args(target, params)
        session = session_hash(sid) if sid else None
        return [
            _finite(created),
            method,
            query,
            _finite(duration),
            status,
            args,
            user,
            project,
            privilege,
            session,
        ]

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

    def _failed(self, plain: list[Any], rows: list[LogRow], exc: BaseException) -> None:
        room_plain = max(0, self.max_rows - len(self.plain_rows) // PLAIN_WIDTH)
        room_rows = max(0, self.max_rows - len(self.log_rows))
        lost = max(0, len(plain) // PLAIN_WIDTH - room_plain) + max(0, len(rows) - room_rows)
        self._retry_plain = plain[max(0, len(plain) - PLAIN_WIDTH * room_plain) :]
        self._retry_rows = rows[max(0, len(rows) - room_rows) :]
        self.lost += lost
        error_log.error(
            "request log: cannot write %d row(s) to %s: %s; %s",
            len(plain) // PLAIN_WIDTH + len(rows),
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
        """Delete rows older than ``keep_days`` (at most once a day); returns how many.

        A batch goes once its newest row is old enough.
        """
        if self.keep_days <= 0:
            return 0
        now = self._wall()
        if now - self._pruned < 86400:
            return 0
        self._pruned = now
        cutoff = now - self.keep_days * 86400
        try:
            db = self._database()
            with db.transaction():
                ((deleted,),) = db.query(
                    "SELECT coalesce(sum(json_array_length(rows)), 0) "
                    "FROM dibble_request_log_batch WHERE last < ?",
                    (cutoff,),
                )
                db.execute("DELETE FROM dibble_request_log_batch WHERE last < ?", (cutoff,))
                if self._old_rows:
                    deleted += db.execute(
                        "DELETE FROM dibble_request_log_rows WHERE created < ?", (cutoff,)
                    )
            return int(deleted)
        except (sqlite3.Error, OSError) as exc:
            error_log.error("request log: cannot delete old rows: %s", exc)
            return 0

    @property
    def waiting(self) -> int:
        """Rows not yet written."""
        return (
            (len(self.plain_rows) + len(self._retry_plain)) // PLAIN_WIDTH
            + len(self.log_rows)
            + len(self._retry_rows)
        )

    def close(self) -> None:
        if self._db is not None and self._open is not None:
            self._db.close()
        self._db = None


def prepare(db: Database) -> bool:
    """Make the request log's table and view in ``db`` if missing; True if it has old rows.

    An older dibble's ``dibble_request_log`` table becomes ``dibble_request_log_rows``,
    shown by the view beside the batches, whose ids start above its ids.  In one
    ``BEGIN IMMEDIATE`` transaction: workers starting together migrate once.
    """
    with db.transaction():
        kinds = dict(
            db.query(
                "SELECT name, type FROM sqlite_master WHERE name IN "
                "('dibble_request_log', 'dibble_request_log_rows', 'dibble_request_log_batch')"
            )
        )
        if kinds.get("dibble_request_log") == "table":
            db.execute("ALTER TABLE dibble_request_log RENAME TO dibble_request_log_rows")
            kinds["dibble_request_log_rows"] = kinds.pop("dibble_request_log")
        old_rows = "dibble_request_log_rows" in kinds
        if "dibble_request_log_batch" not in kinds:
            db.execute(_BATCH_TABLE)
            if old_rows:
                ((top,),) = db.query("SELECT coalesce(max(id), 0) FROM dibble_request_log_rows")
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) "
                    "VALUES ('dibble_request_log_batch', ?)",
                    (int(top) // ID_STRIDE,),
                )
        if "dibble_request_log" not in kinds:
            db.execute(_view(old_rows))
    return old_rows


# --- the rows as JSON -----------------------------------------------------------------

# Bytes a JSON string cannot hold as they are (control characters, ``"``), and the
# space that ends the target in a row string, mapped to ``\\``, which a JSON string
# cannot hold either: one translate and one search find them all.
_UNSAFE: Final = bytes.maketrans(bytes(range(33)) + b'"', b"\\" * 34)
# Rows whose hex digits one struct cuts out at a time (more: several calls).
_CUT: Final = 256
_CUTTER: Final = struct.Struct("32s" * _CUT)


class _NotFast(ValueError):
    """A row the fast way cannot write: the slow one writes the batch."""


class _Ends(dict[tuple[int, str], bytes]):
    """What follows the target in a row string, by ``(status, method)``: a space,
    the method, the status and the separator of the next row."""

    def __missing__(self, key: tuple[int, str]) -> bytes:
        status, method = key
        if type(status) is not int or not 100 <= status <= 999:
            raise _NotFast(status)
        encoded = method.encode("latin-1")
        if not encoded or b"\\" in encoded.translate(_UNSAFE):  # no space either
            raise _NotFast(method)
        end = self[key] = b' %s%d","' % (encoded, status)
        return end


def _plain_batch(values: list[Any]) -> tuple[float, float, str]:
    """``(first, last, rows)`` of the rows of anonymous requests in ``values`` (flat)."""
    # The compiled encoder makes the same text in one pass; where it cannot tell
    # (None), the Python one decides.
    text = None if speedups is None else speedups.plain_json(values)
    if text is None:
        text = _plain_json(values)
    if text is None:
        text = json.dumps(
            [
                [_finite((c - MICROS) / 1e6), m, _text(t), _finite((d - MICROS) / 1e3), s]
                for c, m, t, d, s in zip(*(iter(values),) * PLAIN_WIDTH, strict=True)
            ],
            ensure_ascii=False,
        )
    ends = (values[0], values[-PLAIN_WIDTH])
    return *_bounds([(created - MICROS) / 1e6 for created in ends]), text


def _plain_json(values: list[Any]) -> str | None:
    """The JSON array of the rows in ``values``, made in C; None if one needs the slow way.

    Every row is one string (see ``_STRING_COLUMNS``): the numbers packed and
    hexlified for all rows at once, the target as it came, method and status
    from ``_Ends``; all joined at once and decoded as Latin-1.
    """
    rows = len(values) // PLAIN_WIDTH
    numbers: list[Any] = [None] * (2 * rows)
    numbers[0::2] = values[0::PLAIN_WIDTH]
    numbers[1::2] = values[3::PLAIN_WIDTH]
    methods = values[1::PLAIN_WIDTH]
    targets = values[2::PLAIN_WIDTH]
    statuses = values[4::PLAIN_WIDTH]
    ends = _Ends()
    pieces: list[Any]
    try:
        hexed = binascii.hexlify(struct.pack(f">{2 * rows}d", *numbers))
        # MICROS + a whole count below 2**52, and nothing else, starts with 433.
        for i, digit in enumerate(b"433"):
            if hexed[i::16] != bytes((digit,)) * (2 * rows):
                return None
        if b"\\" in b"".join(targets).translate(_UNSAFE):
            return None
        method = methods[0]
        status = statuses[0]
        if methods.count(method) == rows and statuses.count(status) == rows:
            pieces = [None, None, ends[status, method]] * rows
        else:
            pieces = [None, None, None] * rows
            pieces[2::3] = map(ends.__getitem__, zip(statuses, methods, strict=True))
    except (TypeError, ValueError, struct.error):  # _NotFast among them
        return None
    pieces[0::3] = _cut(hexed, rows)
    pieces[1::3] = targets
    body = b"".join(pieces)
    return f'["{body[:-2].decode("latin-1")}]'


def _cut(hexed: bytes, rows: int) -> list[bytes]:
    """``hexed`` in pieces of 32 digits, one per row."""
    whole = rows - rows % _CUT
    pieces: list[bytes] = []
    for offset in range(0, 32 * whole, 32 * _CUT):
        pieces += _CUTTER.unpack_from(hexed, offset)
    if whole < rows:
        pieces += struct.unpack_from("32s" * (rows - whole), hexed, 32 * whole)
    return pieces


def _full_batch(rows: list[list[Any]]) -> tuple[float, float, str]:
    """``(first, last, rows)`` of converted rows (see ``RequestLog._convert``)."""
    return *_bounds([rows[0][0], rows[-1][0]]), json.dumps(rows, ensure_ascii=False)


def _bounds(created: list[float | None]) -> tuple[float, float]:
    """The times of the first and last row (in the order written: oldest and newest
    but for a wall clock set back meanwhile, which pruning can bear)."""
    known = [when for when in created if when is not None and math.isfinite(when)]
    if not known:  # no usable time: now, so that pruning finds the batch some day
        now = time.time()
        return now, now
    return known[0], known[-1]


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _text(target: bytes | str) -> str:
    return target.decode("latin-1") if isinstance(target, bytes | bytearray) else str(target)
