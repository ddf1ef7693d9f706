"""The lock that elects one housekeeper among workers sharing a store.

Every worker process runs a housekeeping timer, but the jobs that must run
once per site (session cleanup, the error mail, log cleanup, the user's
cleanup class) run only in the worker that holds this lock.  A lock is a
name, an owner token and an expiry:

* ``acquire(owner, ttl)`` takes the lock when it is free or expired, or
  renews it when ``owner`` holds it, in one atomic step, and says whether
  ``owner`` holds it now.  The timer calls it at every tick, so a lock is
  renewed while its owner lives and passes to another worker ``ttl``
  seconds after the owner died.
* ``release(owner)`` gives it up (at shutdown), only if ``owner`` holds it.

Three implementations, chosen like the session store:

* ``MemoryLock``: for one process (threads and servers in it);
* ``SQLiteLock``: a row ``(name, owner, expires)`` in an SQLite file, taken
  with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement that
  only succeeds when the row is free, expired or already ours;
* ``RedisLock``: ``SET key token NX PX ttl`` to take it, and a script that
  renews or releases it only when the key still holds our token.

Times are wall-clock POSIX seconds, since workers on several machines
compare them (keep the clocks in sync, as for sessions).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from .._redis import redis_client
from .._urls import without_password
from ..users import sqlite_path

__all__ = [
    "Holder",
    "HousekeepingLock",
    "LockError",
    "MemoryLock",
    "RedisLock",
    "SQLiteLock",
    "new_owner",
    "open_lock",
]

#: The name of the housekeeping lock (a row in SQLite, a key suffix in Redis).
LOCK_NAME: Final = "housekeeping"


class LockError(Exception):
    """The lock's store failed (unreachable, locked for too long)."""


class Holder(NamedTuple):
    """Who holds a lock, and until when (POSIX seconds)."""

    owner: str
    expires: float


def new_owner() -> str:
    """An owner token naming this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class HousekeepingLock(ABC):
    """A lock with an owner and an expiry, shared by the workers of a site."""

    #: A short description for messages and the admin pages.
    description: str = "lock"

    @abstractmethod
    def acquire(self, owner: str, ttl: float) -> bool:
        """Take the lock if it is free or expired, or renew it if ``owner`` holds it.

        Returns whether ``owner`` holds it (for ``ttl`` more seconds) now.
        """

    @abstractmethod
    def release(self, owner: str) -> None:
        """Give the lock up if ``owner`` holds it; otherwise do nothing."""

    @abstractmethod
    def holder(self) -> Holder | None:
        """Who holds the lock now, or None when it is free."""

    def close(self) -> None:  # noqa: B027 - locks without connections need nothing
        """Release connections; the lock is not used afterwards."""


class MemoryLock(HousekeepingLock):
    """A lock for the servers and threads of one process."""

    description = "memory (this process)"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._holder: Holder | None = None

    def acquire(self, owner: str, ttl: float) -> bool:
        now = self._clock()
        with self._mutex:
            held = self._holder
            if held is None or held.owner == owner or held.expires <= now:
                self._holder = Holder(owner, now + ttl)
                return True
            return False

    def release(self, owner: str) -> None:
        with self._mutex:
            if self._holder is not None and self._holder.owner == owner:
                self._holder = None

    def holder(self) -> Holder | None:
        with self._mutex:
            held = self._holder
        return held if held is not None and held.expires > self._clock() else None


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dibble_locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
)
"""

# One statement, so it is atomic: the row is written only when it is new,
# ours, or expired; rowcount says which happened.
_ACQUIRE: Final = """
INSERT INTO dibble_locks (name, owner, expires) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
WHERE dibble_locks.owner = excluded.owner OR dibble_locks.expires <= ?4
"""


class SQLiteLock(HousekeepingLock):
    """The lock as a row of table ``dibble_locks`` in the SQLite file at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = LOCK_NAME,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.name = name
        self.description = f"SQLite {self.path}"
        self._clock = clock
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self._mutex = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise LockError(f"cannot open the lock database {self.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise LockError(f"cannot open the lock database {self.path}: {exc}") from exc

    def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[int, list[Any]]:
        """Run one statement: the rows it changed and the rows it returned."""
        with self._mutex:
            try:
                cursor = self._conn.execute(sql, args)
                return cursor.rowcount, cursor.fetchall()
            except sqlite3.Error as exc:
                raise LockError(f"the lock database {self.path} failed: {exc}") from exc

    def acquire(self, owner: str, ttl: float) -> bool:
        now = self._clock()
        changed, _ = self._run(_ACQUIRE, (self.name, owner, now + ttl, now))
        return changed == 1

    def release(self, owner: str) -> None:
        self._run("DELETE FROM dibble_locks WHERE name = ? AND owner = ?", (self.name, owner))

    def holder(self) -> Holder | None:
        _, rows = self._run(
            "SELECT owner, expires FROM dibble_locks WHERE name = ? AND expires > ?",
            (self.name, self._clock()),
        )
        return Holder(rows[0][0], rows[0][1]) if rows else None

    def close(self) -> None:
        with self._mutex:
            self._conn.close()


# KEYS[1] the lock; ARGV[1] the owner, ARGV[2] the ttl in ms.  Renews the
# key when it holds our token, else takes it if it is free.
_REDIS_ACQUIRE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_REDIS_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLock(HousekeepingLock):
    """The lock as key ``{prefix}housekeeping`` in the Redis server at ``url``.

    Redis expires the key itself (``PX``), so a lock whose owner died frees
    itself ``ttl`` after the last renewal.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "dibble:lock:",
        name: str = LOCK_NAME,
        timeout: float = 2.0,
    ) -> None:
        self._client = redis_client(
            url, timeout=timeout, user="a Redis housekeeping lock", quick_retry=False
        )
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.key = prefix + name
        self.description = f"Redis {without_password(url)}"
        self._acquire = self._client.register_script(_REDIS_ACQUIRE)
        self._release = self._client.register_script(_REDIS_RELEASE)

    def _call(self, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except self._errors as exc:
            raise LockError(f"the lock store ({self.description}) failed: {exc}") from exc

    def acquire(self, owner: str, ttl: float) -> bool:
        args: list[str | int] = [owner, max(1, int(ttl * 1000))]
        return bool(self._call(lambda: self._acquire(keys=[self.key], args=args)) == 1)

    def release(self, owner: str) -> None:
        self._call(lambda: self._release(keys=[self.key], args=[owner]))

    def holder(self) -> Holder | None:
        def read() -> tuple[Any, Any]:
            pipe = self._client.pipeline(transaction=True)
            pipe.get(self.key)
            pipe.pttl(self.key)
            owner, left = pipe.execute()
            return owner, left

        owner, left = self._call(read)
        if owner is None or left is None or left < 0:
            return None
        return Holder(owner.decode("utf-8"), time.time() + left / 1000)

    def close(self) -> None:
        self._client.close()


def open_lock(spec: str, base_dir: str = "") -> HousekeepingLock:
    """A lock from a spec, as ``[housekeeping] lock`` writes it.

    ``"memory"``; ``"redis://host:port/db"``; an SQLite file:
    ``"sqlite:///relative/file"``, ``"sqlite:////absolute/file"`` or a plain
    path.  Relative paths are relative to ``base_dir``.
    """
    if spec == "memory":
        return MemoryLock()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisLock(spec)
    return SQLiteLock(sqlite_path(spec, base_dir))
