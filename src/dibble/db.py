"""``dibble.db``: the database helper, and the SQL log.

``Database`` is one connection to the configured database (SQLite for now:
``sqlite:///relative/file``, ``sqlite:////absolute/file`` or a plain path)
with the few calls dibble's features and pages need::

    db = Database("sqlite:///data/app.sqlite3")
    db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)")
    with db.transaction():
        db.execute("INSERT INTO notes (text) VALUES (?)", ("hello",))
    rows = db.query("SELECT id, text FROM notes")

Every statement run through it goes to the SQL log (the ``dibble.sql``
logger: the statement on one line, how many rows it touched or returned,
and how long it took) while the log is switched on (``[logging] sql_log``,
or at run time ``set_sql_logging(True)``).  Parameters are never logged:
they hold passwords' hashes and session data.  Switched off, a statement
costs one attribute test more than calling ``sqlite3`` directly.

The connection is opened in WAL mode with ``synchronous=NORMAL`` (readers
never wait for the writer; a power cut may lose the last commits, never
the file) and may be shared by threads: calls are serialised by a lock,
and ``transaction()`` holds it until the transaction ends.  A database
file dibble makes has pages of ``PAGE_SIZE`` (16 KiB) rather than SQLite's
4 KiB: the request log writes its rows in large batches, which then take a
quarter of the pages (about a third of the time); a file made before keeps
its own page size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "DATABASE_FILE",
    "PAGE_SIZE",
    "Database",
    "database_path",
    "set_sql_logging",
    "sql_log",
    "sql_logging",
    "sqlite_path",
]

#: The logger every statement goes to while the SQL log is on.
sql_log: Final = logging.getLogger("dibble.sql")

#: The database file in the data directory when no ``[database] url`` is configured.
DATABASE_FILE: Final = "dibble.sqlite3"

#: The page size of a database file dibble makes (SQLite's default is 4,096).
PAGE_SIZE: Final = 16_384

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")


class _Switch:
    """Whether the SQL log is on: one flag for the whole process, like the logger."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


_switch: Final = _Switch()


def sql_logging() -> bool:
    """Whether statements are written to the SQL log."""
    return _switch.on


def set_sql_logging(on: bool) -> None:
    """Switch the SQL log on or off (for every ``Database`` of the process), at once."""
    _switch.on = bool(on)
    if on and sql_log.getEffectiveLevel() > logging.INFO:
        sql_log.setLevel(logging.INFO)


def sqlite_path(url: str, root: str = "") -> str:
    """The file an ``sqlite:///relative`` / ``sqlite:////absolute`` URL or a plain path names.

    A relative path is taken relative to ``root`` when one is given.
    Raises ValueError for another scheme or a URL without a file.
    """
    if "://" in url:
        scheme, _, rest = url.partition("://")
        if scheme != "sqlite":
            raise ValueError(f"only sqlite:// databases are supported so far, not {scheme}://")
        url = rest[1:] if rest.startswith("/") else rest
    if not url:
        raise ValueError("the database URL names no file")
    if not os.path.isabs(url) and root:
        url = os.path.join(root, url)
    return url


def database_path(config: Config) -> str | None:
    """The file of ``config``'s database: ``[database] url``, else the data directory's.

    None when neither is configured.
    """
    if config.database.url:
        return sqlite_path(config.database.url, config.paths.root)
    if config.paths.data_dir:
        return os.path.join(config.paths.data_dir, DATABASE_FILE)
    return None


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


class Database:
    """One connection to the SQLite database ``url`` (made, with its folder, when missing).

    ``timeout`` is how long a statement waits for another writer's lock
    before it fails with ``sqlite3.OperationalError``.
    """

    def __init__(self, url: str | os.PathLike[str], *, root: str = "", timeout: float = 5.0):
        self.path = sqlite_path(os.fspath(url), root)
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # Only a new, empty file takes it (a database's page size is fixed
            # once it has tables, and in WAL mode).
            self._conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            self._conn.close()
            raise
        self.closed = False

    def __repr__(self) -> str:
        return f"<Database {self.path}>"

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed (-1 if none apply)."""
        with self._lock:
            if not _switch.on:
                return self._conn.execute(sql, params).rowcount
            return self._logged(sql, lambda: self._conn.execute(sql, params).rowcount, int)

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement for each of ``rows``; returns the rows changed in all."""
        with self._lock:
            if not _switch.on:
                return self._conn.executemany(sql, rows).rowcount
            return self._logged(sql, lambda: self._conn.executemany(sql, rows).rowcount, int)

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """The rows a ``SELECT`` (or ``PRAGMA``) returns, as tuples."""
        with self._lock:
            if not _switch.on:
                return self._conn.execute(sql, params).fetchall()
            return self._logged(sql, lambda: self._conn.execute(sql, params).fetchall(), len)

    def _logged(self, sql: str, run: Callable[[], T], rows: Callable[[T], int]) -> T:
        """``run()`` with its duration (and ``rows(result)``) in the SQL log, or its failure."""
        start = perf_counter()
        try:
            result = run()
        except sqlite3.Error as exc:
            _log_failure(sql, start, exc)
            raise
        _log(sql, start, rows(result))
        return result

    def script(self, sql: str) -> None:
        """Run several statements separated by ``;`` (a schema); no parameters."""
        with self._lock:
            start = perf_counter()
            self._conn.executescript(sql)
            if _switch.on:
                _log(sql, start, -1)

    @contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[Database]:
        """``with db.transaction():`` commits at the end, rolls back on an exception.

        ``BEGIN IMMEDIATE`` by default: the write lock is taken at once, so
        the transaction cannot fail half-way for want of it.  Other threads
        using this ``Database`` wait until it ends.
        """
        with self._lock:
            self.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self
            except BaseException:
                if self._conn.in_transaction:
                    self.execute("ROLLBACK")
                raise
            self.execute("COMMIT")

    def backup(self, target: str | os.PathLike[str]) -> None:
        """Copy the database to ``target`` as one consistent snapshot, atomically.

        The copy is written beside ``target`` first, synced to disk, then
        renamed over it: ``target`` is always either the old copy or the
        new one, never half of one.
        """
        target = os.fspath(target)
        temporary = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            copy = sqlite3.connect(temporary)
            try:
                with self._lock:
                    start = perf_counter()
                    self._conn.backup(copy)
                    if _switch.on:
                        _log(f"-- backup to {target}", start, -1)
            finally:
                copy.close()
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @property
    def connection(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection, for what the helper does not cover (not logged)."""
        return self._conn

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._conn.close()


def _log(sql: str, start: float, count: int) -> None:
    elapsed = (perf_counter() - start) * 1000.0
    rows = f" [{count} row{'s' if count != 1 else ''}]" if count >= 0 else ""
    sql_log.info("%.3f ms %s%s", elapsed, _one_line(sql), rows)


def _log_failure(sql: str, start: float, exc: BaseException) -> None:
    elapsed = (perf_counter() - start) * 1000.0
    sql_log.info("%.3f ms %s [failed: %s]", elapsed, _one_line(sql), exc)
