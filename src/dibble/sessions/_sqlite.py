"""``SQLiteStore``: sessions in an SQLite file, the embedded default.

The file lives in the data directory (``sessions.sqlite3``) and is opened in
WAL mode, so readers never wait for the writer and several worker processes
can share it.  ``synchronous=NORMAL`` skips the fsync per commit: a power
cut may lose the last few seconds of session writes, but WAL keeps the file
consistent whatever happens, and a session is not worth an fsync per
request.

Three tables, one row per id, per (id, service) and per (id, service, key):
a request's changes become a handful of upserts and deletes of single keys
inside one ``BEGIN IMMEDIATE`` transaction, which is how concurrent
requests merge key by key (see ``_store.py``).  Connections are pooled and
shared by threads; each operation borrows one.  A failed operation rolls
back and closes its connection, and raises ``StoreError``: a locked
database waits ``busy_timeout`` seconds at most, a full disk fails the
transaction without touching what was stored.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from ._store import (
    NO_CHANGES,
    Changes,
    Expired,
    Loaded,
    Record,
    SessionInfo,
    SessionStore,
    StoreBusy,
    StoreError,
    integer_value,
)

__all__ = ["SQLiteStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dibble_session_ids (
    sid TEXT PRIMARY KEY,
    started REAL NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dibble_session_ids_expires ON dibble_session_ids (expires);
CREATE TABLE IF NOT EXISTS dibble_session_services (
    sid TEXT NOT NULL,
    service TEXT NOT NULL,
    started REAL NOT NULL,
    modified REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (sid, service)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dibble_session_services_expires
    ON dibble_session_services (expires);
CREATE TABLE IF NOT EXISTS dibble_session_values (
    sid TEXT NOT NULL,
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (sid, service, key)
) WITHOUT ROWID;
"""

_LOAD: Final = """
SELECT i.expires, s.started, s.modified, s.expires, v.key, v.value
FROM dibble_session_ids AS i
LEFT JOIN dibble_session_services AS s ON s.sid = i.sid AND s.service = ?2
LEFT JOIN dibble_session_values AS v ON v.sid = s.sid AND v.service = s.service
WHERE i.sid = ?1 AND i.expires > ?3
"""

_STATE: Final = """
SELECT i.expires, s.expires
FROM dibble_session_ids AS i
LEFT JOIN dibble_session_services AS s ON s.sid = i.sid AND s.service = ?2
WHERE i.sid = ?1
"""

_UPSERT_VALUE: Final = """
INSERT INTO dibble_session_values (sid, service, key, value) VALUES (?, ?, ?, ?)
ON CONFLICT (sid, service, key) DO UPDATE SET value = excluded.value
"""


class SQLiteStore(SessionStore):
    """Sessions in the SQLite database at ``path`` (created when missing).

    ``busy_timeout`` is how long an operation waits for another writer
    before it fails with ``StoreError`` (and the request with a 503).
    """

    # The saves of many requests share one transaction (group commit), done
    # on the event loop with connections that never wait for a lock: a
    # local file answers in microseconds, and a busy one goes to the thread.
    batches = True
    in_loop = True

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self.description = f"SQLite {self.path}"
        self._idle: list[sqlite3.Connection] = []
        self._idle_now: list[sqlite3.Connection] = []  # busy_timeout 0: for the loop
        self._caches: dict[sqlite3.Connection, _LoopCache] = {}
        self._hot: _LoopCache | None = None  # the cache used last
        #: Bumped whenever a connection other than the loop's is lent (it may write).
        self._generation = 0
        self._all: set[sqlite3.Connection] = set()
        self._lock = threading.Lock()
        self._closed = False
        with self._connection() as conn:
            conn.executescript(_SCHEMA)

    # --- connections ----------------------------------------------------------------

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=busy_timeout,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE
            check_same_thread=False,  # pooled: one thread at a time, under our lock
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self, now: bool = False) -> Iterator[sqlite3.Connection]:
        """A pooled connection; ``now``: one that raises ``StoreBusy`` rather than wait."""
        idle = self._idle_now if now else self._idle
        with self._lock:
            if self._closed:
                raise StoreError(f"the session store ({self.description}) is closed")
            conn = idle.pop() if idle else None
            if not now:
                self._generation += 1
        try:
            if conn is None:
                conn = self._connect(0.0 if now else self.busy_timeout)
                with self._lock:
                    self._all.add(conn)
        except (sqlite3.Error, OSError) as exc:
            if now and isinstance(exc, sqlite3.Error) and _busy(exc):
                raise StoreBusy(str(exc)) from exc
            raise StoreError(f"cannot open the session store ({self.description}): {exc}") from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            if now and _busy(exc):
                try:
                    if conn.in_transaction:
                        conn.rollback()
                except sqlite3.Error:
                    self._discard(conn)
                else:
                    self._release(conn, idle)
                raise StoreBusy(str(exc)) from exc
            self._discard(conn)
            raise StoreError(f"the session store ({self.description}) failed: {exc}") from exc
        except BaseException:
            self._discard(conn)
            raise
        self._release(conn, idle)

    def _release(self, conn: sqlite3.Connection, idle: list[sqlite3.Connection]) -> None:
        with self._lock:
            if self.closed:  # closed while this operation ran
                self._all.discard(conn)
                conn.close()
            else:
                idle.append(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        # A connection that failed may be mid-transaction or broken: roll
        # back what it did and never reuse it.
        try:
            if conn.in_transaction:
                conn.rollback()
        except sqlite3.Error:
            pass
        with self._lock:
            self._all.discard(conn)
            if self._caches.pop(conn, None) is self._hot:
                self._hot = None
        conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in (*self._idle, *self._idle_now):
                self._all.discard(conn)
                conn.close()
            self._idle.clear()
            self._idle_now.clear()

    # --- the interface ----------------------------------------------------------------

    def create(self, sid: str, now: float, expires: float) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO dibble_session_ids (sid, started, expires) "
                "VALUES (?, ?, ?)",
                (sid, now, expires),
            )

    def load(self, sid: str, service: str, now: float) -> Loaded | None:
        with self._connection() as conn:
            return _loaded(conn.execute(_LOAD, (sid, service, now)).fetchall())

    def _begin(self, conn: sqlite3.Connection, sid: str, now: float) -> float | None:
        """Start a write transaction; the id's expiry, or None (rolled back) if it is gone."""
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT expires FROM dibble_session_ids WHERE sid = ?", (sid,)
        ).fetchone()
        if row is None or row[0] <= now:
            conn.execute("ROLLBACK")
            return None
        expires: float = row[0]
        return expires

    def _write(
        self,
        conn: sqlite3.Connection,
        sid: str,
        service: str,
        changes: Changes,
        now: float,
        expires: float,
        modified: bool = False,
        state: tuple[float, float | None] | None = None,
    ) -> bool:
        """Apply one save inside the open transaction; False if the id is gone.

        Few statements on purpose: this runs once per request that changed
        its session (one query for the state, one write for the record,
        one per kind of value change).  ``state`` is the id's and the
        record's expiry when the caller knows them for certain (the loop
        cache), which saves the query.
        """
        if state is None:
            row = conn.execute(_STATE, (sid, service)).fetchone()
            if row is None:
                return False
            state = row
        id_expires, record_expires = state
        if id_expires <= now:
            return False
        cleared = changes.cleared
        if record_expires is not None and record_expires <= now:
            # An expired record's old values must not merge into the new ones.
            conn.execute(
                "DELETE FROM dibble_session_services WHERE sid = ? AND service = ?", (sid, service)
            )
            record_expires = None
            cleared = True
        if cleared:
            conn.execute(
                "DELETE FROM dibble_session_values WHERE sid = ? AND service = ?", (sid, service)
            )
        if record_expires is None:
            conn.execute(
                "INSERT INTO dibble_session_services (sid, service, started, modified, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (sid, service, now, now, expires),
            )
        elif changes or modified:
            conn.execute(
                "UPDATE dibble_session_services SET modified = ?, expires = ? "
                "WHERE sid = ? AND service = ?",
                (now, expires, sid, service),
            )
        else:
            conn.execute(
                "UPDATE dibble_session_services SET expires = ? WHERE sid = ? AND service = ?",
                (expires, sid, service),
            )
        if expires > id_expires:
            conn.execute("UPDATE dibble_session_ids SET expires = ? WHERE sid = ?", (expires, sid))
        if changes.deleted:
            conn.executemany(
                "DELETE FROM dibble_session_values WHERE sid = ? AND service = ? AND key = ?",
                [(sid, service, key) for key in changes.deleted],
            )
        values = changes.set
        if len(values) == 1:  # the common save: one statement, no list
            for key, value in values.items():
                conn.execute(_UPSERT_VALUE, (sid, service, key, value))
        elif values:
            conn.executemany(
                _UPSERT_VALUE, [(sid, service, key, value) for key, value in values.items()]
            )
        return True

    def save(self, sid: str, service: str, changes: Changes, now: float, expires: float) -> bool:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            stored = self._write(conn, sid, service, changes, now, expires)
            conn.execute("COMMIT")
            return stored

    def save_many(self, items: Sequence[tuple[str, str, Changes, float, float]]) -> list[bool]:
        # One transaction for the saves of many requests (group commit): the
        # locking and the WAL write are paid once.
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            stored = [self._write(conn, *item) for item in items]
            conn.execute("COMMIT")
            return stored

    def load_many(self, items: Sequence[tuple[str, str, float]]) -> list[Loaded | None]:
        with self._connection() as conn:
            return [_loaded(conn.execute(_LOAD, item).fetchall()) for item in items]

    # --- on the event loop: no waiting, and a cache --------------------------------
    #
    # Each no-wait connection keeps what it loaded and saved (``_LoopCache``),
    # so the next request of a session reads nothing and its save queries no
    # state.  The cache is dropped when anything else may have written:
    # another connection of this store (``_generation``, bumped whenever one
    # is lent) or another process (``PRAGMA data_version``, which changes
    # when any other connection commits; read at most once a millisecond
    # for loads, and always inside a save's transaction).  A load may thus
    # see another process's write up to a millisecond late, as if it had
    # run that much earlier; saves always apply to the current state.

    def _cache_for(self, conn: sqlite3.Connection, exact: bool = False) -> _LoopCache:
        cache = self._caches.get(conn)
        if cache is None:
            cache = self._caches[conn] = _LoopCache()
        if cache.generation != self._generation:
            cache.records.clear()
            cache.generation = self._generation
            cache.checked = 0.0
        clock = time.monotonic()
        if exact or clock - cache.checked > _VERSION_CHECK:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != cache.version:
                cache.records.clear()
                cache.version = version
            cache.checked = clock
        if len(cache.records) > _CACHE_MAX:
            cache.records.clear()
        self._hot = cache
        return cache

    def load_many_now(self, items: Sequence[tuple[str, str, float]]) -> list[Loaded | None]:
        cache = self._hot
        if (
            cache is not None
            and not self._closed
            and cache.generation == self._generation
            and time.monotonic() - cache.checked <= _VERSION_CHECK
        ):
            # Checked within the millisecond: answered from the cache alone,
            # without borrowing a connection, when it holds every record.
            records = cache.records
            found: list[Loaded | None] = []
            for sid, service, now in items:
                loaded = records.get((sid, service))
                if loaded is None or loaded.id_expires <= now:
                    break
                found.append(loaded)
            else:
                return found
        with self._connection(now=True) as conn:
            records = self._cache_for(conn).records
            out: list[Loaded | None] = []
            for item in items:
                loaded = records.get((item[0], item[1]))
                if loaded is None or loaded.id_expires <= item[2]:
                    loaded = _loaded(conn.execute(_LOAD, item).fetchall())
                    if loaded is not None:
                        records[item[0], item[1]] = loaded
                out.append(loaded)
            return out

    def save_many_now(self, items: Sequence[tuple[str, str, Changes, float, float]]) -> list[bool]:
        with self._connection(now=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            records = self._cache_for(conn, exact=True).records
            stored: list[bool] = []
            try:
                for sid, service, changes, now, expires in items:
                    known = records.pop((sid, service), None)
                    state = None
                    if known is not None:
                        record = known.record
                        state = (known.id_expires, record.expires if record is not None else None)
                    done = self._write(conn, sid, service, changes, now, expires, state=state)
                    if done and known is not None:
                        records[sid, service] = _after(known, changes, now, expires)
                    stored.append(done)
                conn.execute("COMMIT")
            except BaseException:
                records.clear()  # what it says was rolled back
                raise
            return stored

    def increment(
        self, sid: str, service: str, key: str, amount: int, now: float, expires: float
    ) -> int | None:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            if not self._write(conn, sid, service, NO_CHANGES, now, expires, modified=True):
                conn.execute("ROLLBACK")
                return None
            row = conn.execute(
                "SELECT value FROM dibble_session_values "
                "WHERE sid = ? AND service = ? AND key = ?",
                (sid, service, key),
            ).fetchone()
            try:
                value = integer_value(row[0] if row else "0", key) + amount
            except ValueError:
                conn.execute("ROLLBACK")
                raise
            conn.execute(_UPSERT_VALUE, (sid, service, key, str(value)))
            conn.execute("COMMIT")
            return value

    def rename(self, old: str, new: str, now: float) -> bool:
        with self._connection() as conn:
            if self._begin(conn, old, now) is None:
                return False
            for table in (
                "dibble_session_ids",
                "dibble_session_services",
                "dibble_session_values",
            ):
                conn.execute(f"UPDATE {table} SET sid = ? WHERE sid = ?", (new, old))  # noqa: S608
            conn.execute("COMMIT")
            return True

    def delete(self, sid: str) -> None:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            for table in (
                "dibble_session_values",
                "dibble_session_services",
                "dibble_session_ids",
            ):
                conn.execute(f"DELETE FROM {table} WHERE sid = ?", (sid,))  # noqa: S608
            conn.execute("COMMIT")

    def _take_rows(self, conn: sqlite3.Connection, pairs: list[tuple[str, str]]) -> list[Expired]:
        taken: list[Expired] = []
        for sid, service in pairs:
            rows = conn.execute(
                "DELETE FROM dibble_session_values WHERE sid = ? AND service = ? "
                "RETURNING key, value",
                (sid, service),
            ).fetchall()
            conn.execute(
                "DELETE FROM dibble_session_services WHERE sid = ? AND service = ?", (sid, service)
            )
            taken.append(Expired(sid, service, dict(rows)))
        return taken

    def take(self, sid: str, service: str, now: float) -> Expired | None:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT expires FROM dibble_session_services WHERE sid = ? AND service = ?",
                (sid, service),
            ).fetchone()
            if row is None or row[0] > now:
                conn.execute("ROLLBACK")
                return None
            (taken,) = self._take_rows(conn, [(sid, service)])
            conn.execute("COMMIT")
            return taken

    def take_expired(self, now: float, limit: int = 1000) -> list[Expired]:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            # Records that expired themselves, and every record of an expired id.
            pairs = conn.execute(
                "SELECT s.sid, s.service FROM dibble_session_services AS s "
                "JOIN dibble_session_ids AS i ON i.sid = s.sid "
                "WHERE s.expires <= ?1 OR i.expires <= ?1 LIMIT ?2",
                (now, limit),
            ).fetchall()
            taken = self._take_rows(conn, pairs)
            if len(taken) < limit:
                conn.execute(
                    "DELETE FROM dibble_session_ids WHERE expires <= ? AND sid NOT IN "
                    "(SELECT sid FROM dibble_session_services)",
                    (now,),
                )
            conn.execute("COMMIT")
            return taken

    def sessions(self, now: float, limit: int = 1000) -> list[SessionInfo]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT i.sid, i.started, i.expires, group_concat(s.service, char(0)) "
                "FROM dibble_session_ids AS i "
                "LEFT JOIN dibble_session_services AS s ON s.sid = i.sid "
                "WHERE i.expires > ? GROUP BY i.sid ORDER BY i.started LIMIT ?",
                (now, limit),
            ).fetchall()
        return [
            SessionInfo(sid, started, expires, tuple(sorted(services.split("\x00"))))
            if services
            else SessionInfo(sid, started, expires, ())
            for sid, started, expires, services in rows
        ]

    def summary(self, now: float) -> tuple[int, float | None, dict[str, int]]:
        with self._connection() as conn:
            count, oldest = conn.execute(
                "SELECT count(*), min(started) FROM dibble_session_ids WHERE expires > ?", (now,)
            ).fetchone()
            rows = conn.execute(
                "SELECT s.service, count(*) FROM dibble_session_services AS s "
                "JOIN dibble_session_ids AS i ON i.sid = s.sid "
                "WHERE i.expires > ? GROUP BY s.service",
                (now,),
            ).fetchall()
        return int(count), oldest, {service: int(n) for service, n in rows}


#: How often (seconds) a load on the loop asks whether another process wrote.
_VERSION_CHECK: Final = 0.001
#: Records one loop connection keeps at most (then it starts afresh).
_CACHE_MAX: Final = 10_000


class _LoopCache:
    """What one no-wait connection loaded and saved, and when that was still true."""

    __slots__ = ("checked", "generation", "records", "version")

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], Loaded] = {}
        self.generation = -1
        self.version = -1
        self.checked = 0.0


def _after(known: Loaded, changes: Changes, now: float, expires: float) -> Loaded:
    """``known`` once ``changes`` were saved (what ``_write`` did, in memory)."""
    record = known.record
    fresh = record is None or record.expires <= now
    # The cached dict is changed in place: sessions copy what they load.
    values = {} if fresh or changes.cleared else record.values  # type: ignore[union-attr]
    for key in changes.deleted:
        values.pop(key, None)
    values.update(changes.set)
    started = now if fresh else record.started  # type: ignore[union-attr]
    modified = now if fresh or changes else record.modified  # type: ignore[union-attr]
    return Loaded(max(known.id_expires, expires), Record(values, started, modified, expires))


def _busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds a lock (SQLITE_BUSY, SQLITE_LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)
    return "locked" in str(exc) or "busy" in str(exc)  # pragma: no cover - before 3.11


def _loaded(rows: list[Any]) -> Loaded | None:
    if not rows:
        return None
    id_expires, started, modified, expires = rows[0][:4]
    if started is None:
        return Loaded(id_expires, None)
    values = {row[4]: row[5] for row in rows if row[4] is not None}
    return Loaded(id_expires, Record(values, started, modified, expires))
