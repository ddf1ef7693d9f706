"""Maintenance mode: a file whose presence takes the service down politely.

An operator creates a non-empty file (``maintenance`` in the service root)
and, within a second, every request is answered 503 with the file's text
and a ``Retry-After``; removing the file ends it.  A file whose only line is
``301 URL`` sends every request to URL with a permanent redirect instead
(the service moved).  No restart either way.

The request path must not pay for this with a file-system call, so
:class:`MaintenanceWatcher` keeps the parsed state in memory and looks at
the file at most once per ``interval`` (one ``os.stat``, plus a read only
when the file's stamp changed).  :meth:`MaintenanceWatcher.current` is what
a request calls: a clock read and a comparison while nothing changes.

A file that exists but cannot be read, or whose ``301`` line is malformed,
still means maintenance: it is served as a plain 503 with the default text,
and a warning is logged once per change of the file, not once per request.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_MESSAGE",
    "MAX_FILE_SIZE",
    "MaintenanceState",
    "MaintenanceWatcher",
    "parse_maintenance",
]

error_log: Final = logging.getLogger("dibble.error")

#: Shown when the file gives no usable text.
DEFAULT_MESSAGE: Final = "The service is down for maintenance. Please try again later."

#: Only this much of the file is read; the rest is ignored.
MAX_FILE_SIZE: Final = 64 * 1024

_REDIRECT: Final = re.compile(r"301(?:[ \t]+(?P<url>.*))?")
_URL: Final = re.compile(r"(?:https?://[^\s/?#]+)?/[^\s]*|https?://[^\s/?#]+", re.IGNORECASE)

_Stamp = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class MaintenanceState:
    """What maintenance answers: a 503 with ``message``, or a 301 to ``redirect``."""

    message: str = DEFAULT_MESSAGE
    redirect: str | None = None
    #: Why the file was not used as written (logged once), or None.
    problem: str | None = None


def parse_maintenance(text: str) -> MaintenanceState | None:
    """The state a maintenance file's text asks for; None for an empty file."""
    if not text:
        return None
    stripped = text.strip()
    lines = stripped.splitlines()
    if len(lines) == 1:
        match = _REDIRECT.fullmatch(lines[0].strip())
        if match:
            url = (match["url"] or "").strip()
            if _URL.fullmatch(url) and not any(c in url for c in "\x00\x7f<>\"'"):
                return MaintenanceState(redirect=url)
            return MaintenanceState(
                problem=f"malformed redirect line {lines[0].strip()[:80]!r} "
                "(expected '301 URL' with an http(s) URL or an absolute path)"
            )
    return MaintenanceState(message=stripped or DEFAULT_MESSAGE)


class MaintenanceWatcher:
    """The maintenance state of ``path``, refreshed at most once per ``interval``.

    ``clock`` is a monotonic clock in seconds (replaceable in tests).  Safe
    to call from several threads: a refresh in progress is not repeated.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self.interval = interval
        self.clock = clock
        #: When the file is next looked at (on ``clock``), and what it said
        #: last; read directly by the request path, which inlines current().
        self.next_check = float("-inf")
        self._stamp: _Stamp | None = None
        self.state: MaintenanceState | None = None
        self._lock = threading.Lock()

    def current(self) -> MaintenanceState | None:
        """The state now; None when the service is not in maintenance."""
        if self.clock() >= self.next_check:
            self.refresh()
        return self.state

    def refresh(self) -> None:
        """Look at the file now."""
        if not self._lock.acquire(blocking=False):
            return  # another thread is looking; its answer will do
        try:
            self.next_check = self.clock() + self.interval
            self._check()
        finally:
            self._lock.release()

    def _check(self) -> None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self._set(None, None)
            return
        except OSError as exc:
            # We cannot tell whether the file is there; keep what we had.
            if self._stamp != (-1, -1, -1):
                self._stamp = (-1, -1, -1)
                error_log.warning(
                    "cannot check the maintenance file %s: %s", self.path, exc.strerror or exc
                )
            return
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp == self._stamp:
            return
        state = self._read()
        if state is not None and state.problem is not None:
            error_log.warning(
                "maintenance file %s: %s; answering a plain 503", self.path, state.problem
            )
        elif (state is None) != (self.state is None):
            error_log.warning(
                "maintenance mode %s (%s)", "on" if state is not None else "off", self.path
            )
        self._set(stamp, state)

    def _read(self) -> MaintenanceState | None:
        try:
            with open(self.path, "rb") as file:
                data = file.read(MAX_FILE_SIZE)
        except OSError as exc:
            # It exists, so the operator meant maintenance.
            reason = exc.strerror or type(exc).__name__
            return MaintenanceState(problem=f"cannot read it ({reason})")
        return parse_maintenance(data.decode("utf-8", errors="replace"))

    def _set(self, stamp: _Stamp | None, state: MaintenanceState | None) -> None:
        if state is None and self.state is not None and stamp is None:
            error_log.warning("maintenance mode off (%s removed)", self.path)
        self._stamp = stamp
        self.state = state
