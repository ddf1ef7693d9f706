"""The jobs a server's housekeeping timer runs, made from ``[housekeeping]``.

In the order they run:

* ``sessions``: ``SessionPool.cleanup()`` (expired sessions go, with their
  services' cleanup hooks).  While the timer runs it is the only one that
  cleans the pool made from the configuration: that pool's own timer
  (``[sessions] cleanup_interval``) stands down, and comes back when the
  timer stops.  A pool given in code keeps its own timer when it has one
  (its ``cleanup_interval``), and is cleaned here when it has none.  A
  shared store (SQLite, Redis) is cleaned by the lock holder only; a
  memory store, which no other process sees, by every worker.
* ``statistics``: ``dibble.stats.statistics_of(server).flush()`` in every
  worker (each counts its own requests).
* ``log files``: rotated logs older than ``log_short_age`` days (access,
  performance, SQL) or ``log_long_age`` days (error) are removed.
* ``error mail``: see ``_mail.py``.
* ``cleanup class``: ``do_work()`` of the ``cleanup_class`` object, made
  with the server on its first run.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..config import import_object
from ..stats import statistics_of
from ._housekeeping import Housekeeping
from ._lock import HousekeepingLock, MemoryLock, open_lock
from ._mail import ErrorMail, MailSettings

if TYPE_CHECKING:
    from ..app import HTTPServer
    from ..config import Config
    from ..sessions import SessionPool

__all__ = [
    "CleanupClassJob",
    "LogCleanup",
    "SessionCleanup",
    "default_housekeeping",
    "flush_statistics",
    "load_cleanup_class",
    "lock_for",
]

error_log: Final = logging.getLogger("dibble.error")

#: Rotated logs kept ``log_short_age`` days, and those kept ``log_long_age`` days.
SHORT_LIVED_LOGS: Final = ("access.log", "performance.log", "sql.log")
LONG_LIVED_LOGS: Final = ("error.log",)

#: The lock's SQLite file in the data directory.
LOCK_FILE: Final = "housekeeping.sqlite3"


class SessionCleanup:
    """Remove expired sessions of ``server``'s pool (see the module docstring)."""

    def __init__(self, server: HTTPServer, housekeeping: Housekeeping) -> None:
        self.server = server
        self.housekeeping = housekeeping
        self._stood_down: dict[int, tuple[SessionPool, float | None]] = {}

    def pool(self) -> SessionPool | None:
        """The server's pool; the default one is made only when its store is shared."""
        pool = self.server.sessions
        if pool is not None:
            return pool
        settings = self.server.site.settings
        store = settings.sessions.store
        if store == "memory" or not (store or settings.paths.data_dir):
            return None  # a memory pool nobody made yet holds nothing
        from ..sessions import pool_of

        return pool_of(self.server)

    def stand_down(self) -> None:
        """Take over the cleanup from the own timer of a pool made from the configuration."""
        pool = self.server.sessions
        if pool is not None and pool.made_by_default and id(pool) not in self._stood_down:
            self._stood_down[id(pool)] = (pool, pool.cleanup_interval)
            pool.cleanup_interval = None

    def restore(self) -> None:
        """Give the cleanup back to the pools' own timers."""
        for pool, interval in self._stood_down.values():
            pool.cleanup_interval = interval
        self._stood_down.clear()

    def __call__(self) -> str:
        pool = self.pool()
        if pool is None:
            return "no session store in use"
        self.stand_down()
        if pool.cleanup_interval is not None:
            # A pool given in code with a timer of its own keeps it.
            return f"the session pool cleans itself every {pool.cleanup_interval:g} s"
        from ..sessions import MemoryStore

        if not self.housekeeping.held and not isinstance(pool.store, MemoryStore):
            return "another worker cleans the shared store"
        removed = pool.cleanup()
        return f"{removed} expired session record(s) removed"


def flush_statistics(server: HTTPServer) -> str:
    """Write this process's statistics to their store (nothing when they are off)."""
    statistics = statistics_of(server)
    if statistics is None:
        return "statistics are off"
    statistics.flush()
    return "flushed"


class LogCleanup:
    """Remove rotated logs in ``directory`` older than their age, in days (0: keep)."""

    def __init__(
        self,
        directory: str,
        short_age: float,
        long_age: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.short_age = short_age
        self.long_age = long_age
        self.clock = clock

    def age_of(self, name: str) -> float:
        """How many days the file ``name`` is kept (0: forever, or not a rotated log)."""
        base, dot, suffix = name.partition(".log.")
        if not dot or not suffix:
            return 0.0  # a live log, or not a log at all
        kind = base + ".log"
        if kind in SHORT_LIVED_LOGS:
            return self.short_age
        if kind in LONG_LIVED_LOGS:
            return self.long_age
        return 0.0

    def __call__(self) -> str:
        now = self.clock()
        removed = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                age = self.age_of(entry.name)
                if age <= 0:
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if now - entry.stat(follow_symlinks=False).st_mtime > age * 86400:
                        os.remove(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue  # gone meanwhile (logrotate, another worker)
        return f"{removed} old log file(s) removed"


def load_cleanup_class(spec: str) -> type:
    """The class ``"module:Class"`` names; ImportError or TypeError saying what is wrong."""
    cls = import_object(spec)
    if not inspect.isclass(cls):
        raise TypeError(f"{spec!r} is not a class")
    if not callable(getattr(cls, "do_work", None)):
        raise TypeError(f"{cls.__qualname__} has no do_work() method")
    return cls


class CleanupClassJob:
    """Call ``do_work()`` of an instance of ``spec``'s class, made with the server."""

    def __init__(self, server: HTTPServer, spec: str) -> None:
        self.server = server
        self.spec = spec
        self.worker: Any = None

    def __call__(self) -> object:
        if self.worker is None:
            self.worker = load_cleanup_class(self.spec)(self.server)
        return self.worker.do_work()


def lock_for(config: Config) -> Callable[[], HousekeepingLock]:
    """What ``[housekeeping] lock`` names (made when first used).

    Empty: where the workers share state: the Redis server of ``[sessions]
    store`` when it is one, else ``housekeeping.sqlite3`` in ``[paths]
    data_dir``, else this process's memory.
    """
    spec = config.housekeeping.lock
    data_dir = config.paths.data_dir
    sessions = config.sessions.store
    if not spec:
        if sessions.startswith(("redis://", "rediss://", "unix://")):
            spec = sessions
        elif data_dir:
            spec = os.path.join(data_dir, LOCK_FILE)
        else:
            return MemoryLock
    base = data_dir or config.paths.root

    def make() -> HousekeepingLock:
        return open_lock(spec, base)

    return make


def default_housekeeping(server: HTTPServer) -> Housekeeping | None:
    """The timer ``server``'s configuration asks for; None when it is turned off."""
    settings = server.site.settings
    section = settings.housekeeping
    if not section.enabled:
        return None
    housekeeping = Housekeeping(interval=section.interval, lock=lock_for(settings))
    housekeeping.made_by_default = True
    sessions = SessionCleanup(server, housekeeping)
    housekeeping.add_job("sessions", sessions, exclusive=False)
    housekeeping.on_start(sessions.stand_down)
    housekeeping.on_stop(sessions.restore)
    housekeeping.add_job("statistics", lambda: flush_statistics(server), exclusive=False)
    directory = settings.logging.directory
    if directory:
        housekeeping.add_job(
            "log files", LogCleanup(directory, section.log_short_age, section.log_long_age)
        )
        mail = MailSettings.from_config(settings)
        if mail is not None:
            housekeeping.add_job(
                "error mail", ErrorMail(directory, mail, name=settings.server.name)
            )
    elif section.mail_to:
        error_log.warning(
            "[housekeeping] mail_to is set but [logging] directory is not: "
            "there is no error log file to mail"
        )
    if section.cleanup_class:
        housekeeping.add_job("cleanup class", CleanupClassJob(server, section.cleanup_class))
    return housekeeping
