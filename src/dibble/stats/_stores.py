"""Where statistics are kept: memory, an SQLite file (the default), or Redis.

A store does two things: ``add`` a batch of increments (``_model.py``),
and ``read`` every counter.  Adding is what makes workers add up: SQLite
upserts ``value = value + ?`` inside one transaction, Redis runs
``HINCRBY``\\ s in one script.  Each batch carries an id, and the Redis
script applies a given id once only (it remembers ids for a day), so a
batch whose answer was lost with the connection can be sent again without
being counted twice.  An SQLite transaction either commits or not, so
there a failed batch is simply sent again.

**SQLite: corruption and backups.**  After every batch it adds, the SQLite
store copies the database to ``<file>.bak`` (SQLite's backup API into a
temporary file, synced, then renamed over the old copy: the backup is
always whole).  When the store is opened it runs ``PRAGMA quick_check``; a
file that fails it, or that is not a database at all, is renamed to
``<file>.corrupt-<time>`` (kept for a post-mortem), the last backup is
copied in its place, and the error log says so.  As the backup is made
after every batch, nothing that was added is lost.  A store file that
disappears while the server runs (deleted, or its folder replaced) is
noticed before the next batch (the file's inode changed) and restored the
same way.  Workers sharing the file take a lock file (``<file>.lock``)
around the check and the restore, so only one of them restores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any, Final, Protocol

from .._redis import redis_client
from .._urls import without_password
from ..db import Database, sqlite_path
from ._model import Increments

__all__ = [
    "MemoryStatsStore",
    "RedisStatsStore",
    "SQLiteStatsStore",
    "StatsStore",
    "StoreError",
    "open_stats_store",
]

error_log: Final = logging.getLogger("dibble.error")

#: The statistics file in the data directory when ``[statistics] store`` is empty.
STATS_FILE: Final = "statistics.sqlite3"

Counter = tuple[tuple[str, str, str], int]


class StoreError(Exception):
    """The statistics store cannot be read or written now."""


class StatsStore(Protocol):
    """What ``Statistics`` needs from a store."""

    description: str

    def add(self, increments: Increments, batch: str) -> None:
        """Add ``increments`` (batch id ``batch``) atomically; StoreError if not done."""

    def read(self) -> list[Counter]:
        """Every counter; StoreError when the store cannot be read."""

    def close(self) -> None: ...


class MemoryStatsStore:
    """Counters in this process only (lost on exit): no data directory, or tests."""

    description = "memory"

    def __init__(self) -> None:
        self._values: Increments = {}
        self._lock = threading.Lock()

    def add(self, increments: Increments, batch: str) -> None:
        with self._lock:
            values = self._values
            for name, amount in increments.items():
                values[name] = values.get(name, 0) + amount

    def read(self) -> list[Counter]:
        with self._lock:
            return list(self._values.items())

    def close(self) -> None:
        pass


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dibble_statistics (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    field TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (scope, key, field)
) WITHOUT ROWID;
"""

_ADD: Final = """
INSERT INTO dibble_statistics (scope, key, field, value) VALUES (?, ?, ?, ?)
ON CONFLICT (scope, key, field) DO UPDATE SET value = value + excluded.value
"""


class _Corrupt(Exception):
    pass


class SQLiteStatsStore:
    """Counters in the SQLite file ``path``, checked when opened, backed up after each batch."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.backup_path = self.path + ".bak"
        self.description = f"SQLite {self.path}"
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: Database | None = None
        self._identity: tuple[int, int] | None = None
        self._closed = False
        #: Set when the file was found damaged or missing and restored (for tests, logs).
        self.restored = 0
        with self._lock:
            try:
                self._open()
            except (OSError, sqlite3.Error) as exc:
                # Served all the same: counts wait in memory until it can be opened.
                error_log.error(
                    "statistics: cannot open the store %s: %s; counts are kept in memory "
                    "and written once it can be opened",
                    self.path,
                    exc,
                )

    # --- opening, checking, restoring ---------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise check-and-restore with other processes sharing the file."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _open(self) -> Database:
        """Open (checking, and restoring when needed) the file; called with ``_lock`` held."""
        with self._file_lock():
            if not os.path.exists(self.path) and os.path.exists(self.backup_path):
                self._restore("the file is missing")
            try:
                db = self._checked()
            except _Corrupt as exc:
                self._restore(str(exc))
                try:
                    db = self._checked()
                except _Corrupt as again:
                    raise sqlite3.DatabaseError(
                        f"still damaged after restoring: {again}"
                    ) from None
            if not os.path.exists(self.backup_path):
                # A known good state to come back to before the first batch.
                try:
                    db.backup(self.backup_path)
                except (OSError, sqlite3.Error) as exc:
                    error_log.error("statistics: cannot back up %s: %s", self.path, exc)
        stat = os.stat(self.path)
        self._db = db
        self._identity = (stat.st_dev, stat.st_ino)
        return db

    def _checked(self) -> Database:
        """The file opened, checked and with its table; ``_Corrupt`` if it is damaged."""
        try:
            db = Database(self.path, timeout=self.timeout)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _damaged(exc):
                raise
            raise _Corrupt(str(exc)) from None
        try:
            result = db.query("PRAGMA quick_check")
            if [row[0] for row in result] != ["ok"]:
                raise _Corrupt("; ".join(str(row[0]) for row in result[:5]))
            db.script(_SCHEMA)
            db.query("SELECT count(*) FROM dibble_statistics")
        except _Corrupt:
            db.close()
            raise
        except sqlite3.DatabaseError as exc:
            db.close()
            if isinstance(exc, sqlite3.OperationalError) and not _damaged(exc):
                raise
            raise _Corrupt(str(exc)) from None
        return db

    def _restore(self, reason: str) -> None:
        """Put the last backup in place of a damaged or missing file (file lock held)."""
        self.restored += 1
        stamp = time.strftime("%Y%m%dT%H%M%S")
        kept = ""
        if os.path.exists(self.path):
            kept = f"{self.path}.corrupt-{stamp}"
            os.replace(self.path, kept)
        for suffix in ("-wal", "-shm", "-journal"):
            if os.path.exists(self.path + suffix):
                if kept:
                    os.replace(self.path + suffix, kept + suffix)
                else:
                    os.unlink(self.path + suffix)
        where = f" (the damaged file was kept as {kept})" if kept else ""
        if not _good_backup(self.backup_path):
            error_log.error(
                "statistics: the store %s was unusable (%s) and there is no usable backup %s; "
                "starting it empty%s",
                self.path,
                reason,
                self.backup_path,
                where,
            )
            return
        temporary = f"{self.path}.{os.getpid()}.restore"
        shutil.copyfile(self.backup_path, temporary)
        os.replace(temporary, self.path)
        made = time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(os.stat(self.backup_path).st_mtime)
        )
        error_log.error(
            "statistics: the store %s was unusable (%s); restored it from the backup %s made %s%s",
            self.path,
            reason,
            self.backup_path,
            made,
            where,
        )

    def _database(self) -> Database:
        """The open database, reopened (and restored) if the file went away; lock held."""
        if self._closed:
            raise StoreError(f"the statistics store ({self.description}) is closed")
        db = self._db
        if db is not None:
            try:
                stat = os.stat(self.path)
                same = (stat.st_dev, stat.st_ino) == self._identity
            except OSError:
                same = False
            if same:
                return db
            error_log.error(
                "statistics: the store %s was removed or replaced while in use; reopening it",
                self.path,
            )
            db.close()
            self._db = None
        try:
            return self._open()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the statistics store {self.path}: {exc}") from exc

    # --- the store interface ------------------------------------------------------------

    def add(self, increments: Increments, batch: str) -> None:
        if not increments:
            return
        with self._lock:
            db = self._database()
            rows = [(s, k, f, v) for (s, k, f), v in increments.items()]
            try:
                with db.transaction():
                    db.executemany(_ADD, rows)
            except sqlite3.Error as exc:
                self._broken(db)
                raise StoreError(f"cannot write the statistics store {self.path}: {exc}") from exc
            try:
                db.backup(self.backup_path)
            except (OSError, sqlite3.Error) as exc:
                # The counts are stored; only the safety copy is missing this time.
                error_log.error("statistics: cannot back up %s: %s", self.path, exc)

    def read(self) -> list[Counter]:
        with self._lock:
            db = self._database()
            try:
                rows = db.query("SELECT scope, key, field, value FROM dibble_statistics")
            except sqlite3.Error as exc:
                self._broken(db)
                raise StoreError(f"cannot read the statistics store {self.path}: {exc}") from exc
        return [((str(s), str(k), str(f)), int(v)) for s, k, f, v in rows]

    def _broken(self, db: Database) -> None:
        # Open it afresh (checked) next time: the file may have been damaged meanwhile.
        db.close()
        self._db = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether an error means a damaged file rather than a busy or missing one."""
    text = str(exc).lower()
    return any(word in text for word in ("malformed", "not a database", "corrupt", "disk image"))


def _good_backup(path: str) -> bool:
    if not os.path.exists(path):
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        ok = [row[0] for row in conn.execute("PRAGMA quick_check")] == ["ok"]
        if ok:
            conn.execute("SELECT count(*) FROM dibble_statistics")
        return ok
    except sqlite3.Error:
        return False
    finally:
        conn.close()


# --- Redis -------------------------------------------------------------------------------

# KEYS[1]: the batch's marker, KEYS[2]: the index of hashes, KEYS[3...]: the hashes.
# ARGV[1]: seconds a batch id is remembered; then per hash: its index member, the
# number of fields, and that many field, amount pairs.
_ADD_SCRIPT: Final = r"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local i = 2
for k = 3, #KEYS do
  redis.call('SADD', KEYS[2], ARGV[i])
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end
return 1
"""

#: How long Redis remembers that a batch was added (a retry after that counts twice).
BATCH_MEMORY: Final = 86400


class RedisStatsStore:
    """Counters in Redis at ``url``: one hash per (scope, key), shared by workers and machines."""

    def __init__(self, url: str, *, prefix: str = "dibble:stats:", timeout: float = 2.0) -> None:
        self._client: Any = redis_client(url, timeout=timeout, user="the Redis statistics store")
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.url = url
        self.prefix = prefix
        self.description = f"Redis {without_password(url)}"
        self._add = self._client.register_script(_ADD_SCRIPT)
        self._index = prefix + "index"

    def _hash(self, member: str) -> str:
        return f"{self.prefix}c:{member}"

    def add(self, increments: Increments, batch: str) -> None:
        if not increments:
            return
        by_hash: dict[str, list[tuple[str, int]]] = {}
        for (scope, key, field), amount in increments.items():
            by_hash.setdefault(f"{scope}\0{key}", []).append((field, amount))
        keys = [f"{self.prefix}batch:{batch}", self._index]
        args: list[Any] = [BATCH_MEMORY]
        for member, fields in by_hash.items():
            keys.append(self._hash(member))
            args += [member, len(fields)]
            for field, amount in fields:
                args += [field, amount]
        try:
            self._add(keys=keys, args=args)
        except self._errors as exc:
            raise StoreError(
                f"cannot write the statistics store ({self.description}): {exc}"
            ) from exc

    def read(self) -> list[Counter]:
        try:
            members = sorted(m.decode() for m in self._client.smembers(self._index))
            pipe = self._client.pipeline(transaction=False)
            for member in members:
                pipe.hgetall(self._hash(member))
            hashes = pipe.execute()
        except self._errors as exc:
            raise StoreError(
                f"cannot read the statistics store ({self.description}): {exc}"
            ) from exc
        counters: list[Counter] = []
        for member, fields in zip(members, hashes, strict=True):
            scope, _, key = member.partition("\0")
            for field, value in fields.items():
                counters.append(((scope, key, field.decode()), int(value)))
        return counters

    def clear(self) -> None:
        """Remove every counter under the prefix (tests, and starting over)."""
        try:
            members = [m.decode() for m in self._client.smembers(self._index)]
            if members:
                self._client.delete(*(self._hash(m) for m in members))
            self._client.delete(self._index)
        except self._errors as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._client.close()


def open_stats_store(spec: str, *, data_dir: str = "", root: str = "") -> StatsStore:
    """The store ``spec`` names (``[statistics] store``).

    ``""``: ``statistics.sqlite3`` in ``data_dir`` (memory without one);
    ``"memory"``; ``"redis://..."`` / ``"rediss://..."`` / ``"unix://..."``;
    otherwise an SQLite file (``sqlite:///relative``, ``sqlite:////absolute``
    or a path), relative to ``data_dir`` (else ``root``).
    """
    if spec == "":
        if not data_dir:
            return MemoryStatsStore()
        return SQLiteStatsStore(os.path.join(data_dir, STATS_FILE))
    if spec == "memory":
        return MemoryStatsStore()
    scheme = spec.partition("://")[0] if "://" in spec else ""
    if scheme in ("redis", "rediss", "unix"):
        return RedisStatsStore(spec)
    return SQLiteStatsStore(sqlite_path(spec, data_dir or root))
