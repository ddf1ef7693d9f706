"""The housekeeping timer: periodic jobs that keep a server healthy.

::

    from dibble.housekeeping import housekeeping_of

    housekeeping_of(server).add_job("reports", make_nightly_reports)

A server configured with ``[housekeeping] enabled = true`` (the default)
runs its jobs every ``interval`` seconds (300): session cleanup, the
statistics flush, removal of old rotated logs, a daily mail of new errors
in the error log, and the ``cleanup_class`` named in the configuration.
With several workers only the one holding the lock (SQLite or Redis) runs
the jobs that must run once per site.  See docs/housekeeping.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._housekeeping import Housekeeping, Job, JobRun
from ._jobs import (
    CleanupClassJob,
    LogCleanup,
    SessionCleanup,
    default_housekeeping,
    flush_statistics,
    load_cleanup_class,
    lock_for,
)
from ._lock import (
    Holder,
    HousekeepingLock,
    LockError,
    MemoryLock,
    RedisLock,
    SQLiteLock,
    new_owner,
    open_lock,
)
from ._mail import ErrorMail, MailSettings, error_entries, send_mail

if TYPE_CHECKING:
    from ..app import HTTPServer

__all__ = [
    "CleanupClassJob",
    "ErrorMail",
    "Holder",
    "Housekeeping",
    "HousekeepingLock",
    "Job",
    "JobRun",
    "LockError",
    "LogCleanup",
    "MailSettings",
    "MemoryLock",
    "RedisLock",
    "SQLiteLock",
    "SessionCleanup",
    "default_housekeeping",
    "error_entries",
    "flush_statistics",
    "housekeeping_of",
    "load_cleanup_class",
    "lock_for",
    "new_owner",
    "open_lock",
    "send_mail",
]


def housekeeping_of(server: HTTPServer) -> Housekeeping:
    """``server``'s timer; RuntimeError when housekeeping is turned off.

    The timer is made from the configuration when the server starts; before
    that (to add jobs at start-up) it is made here.
    """
    housekeeping = server.housekeeping
    if housekeeping is None:
        housekeeping = server.housekeeping = default_housekeeping(server)
    if housekeeping is None:
        raise RuntimeError("housekeeping is turned off ([housekeeping] enabled = false)")
    return housekeeping
