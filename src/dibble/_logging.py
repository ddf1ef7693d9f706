"""Log set-up for ``dibble serve``: the screen in test mode, else files.

Three loggers carry what operators read:

* ``dibble`` (and ``dibble.error``, ``dibble.server`` below it): errors with
  tracebacks, warnings, start-up messages -- ``error.log``;
* ``dibble.access``: one combined-format line per response -- ``access.log``;
* ``dibble.performance``: time per request, when turned on --
  ``performance.log``.

With ``[logging] directory`` set (and not in test mode) each goes to its
file there, rotated by size, daily, or left to an external logrotate
(``WatchedFileHandler`` reopens a file that was moved away).  Otherwise
errors and performance lines go to stderr and access lines to stdout.

Every line is escaped: the access and performance logs escape what the
client sent; the error log formatter turns control characters other than
newline and tab into ``\\xHH``, so no message (which may quote a request)
can forge a line or send escape sequences to a terminal.  With
``anonymize_ips`` the client address of access and performance lines is cut
to its network part (``dibble.ops.anonymize_ip``).

Programs that embed dibble may configure these loggers as they like;
calling ``configure_logging`` again replaces only what it installed.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from typing import Final

from .config import LoggingSection
from .ops import anonymize_ip

__all__ = ["configure_logging"]

_MARK: Final = "_dibble"
_CONTROL: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c not in (0x0A, 0x09)}


class _SafeFormatter(logging.Formatter):
    """A formatter that escapes control characters (newline and tab excepted)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_CONTROL)


class _AnonymizeFilter(logging.Filter):
    """Cut the client address (the first argument of access and performance lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            record.args = (anonymize_ip(args[0]), *args[1:])
        return True


def _mark(obj: logging.Handler | logging.Filter) -> None:
    setattr(obj, _MARK, True)


def _reset(logger: logging.Logger) -> None:
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    for flt in [f for f in logger.filters if getattr(f, _MARK, False)]:
        logger.removeFilter(flt)


def _file_handler(settings: LoggingSection, name: str) -> logging.Handler:
    path = os.path.join(settings.directory, name)
    if settings.rotation == "daily":
        return logging.handlers.TimedRotatingFileHandler(
            path, when="midnight", backupCount=settings.backup_count, encoding="utf-8"
        )
    if settings.rotation == "external":
        return logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    return logging.handlers.RotatingFileHandler(
        path,
        maxBytes=settings.max_bytes,
        backupCount=settings.backup_count,
        encoding="utf-8",
    )


def _attach(logger: logging.Logger, handler: logging.Handler, fmt: str) -> None:
    handler.setFormatter(_SafeFormatter(fmt))
    _mark(handler)
    logger.addHandler(handler)


def configure_logging(
    settings: LoggingSection | None = None,
    *,
    test_mode: bool = False,
    access_log: bool | None = None,
) -> None:
    """Install dibble's log handlers as ``settings`` (``[logging]``) asks.

    ``access_log`` overrides ``settings.access_log``.  Raises ``OSError``
    when the log folder or a log file cannot be made.
    """
    settings = settings or LoggingSection()
    if access_log is None:
        access_log = settings.access_log
    to_files = bool(settings.directory) and not test_mode
    if to_files:
        os.makedirs(settings.directory, exist_ok=True)

    error = logging.getLogger("dibble")
    access = logging.getLogger("dibble.access")
    performance = logging.getLogger("dibble.performance")
    for logger in (error, access, performance):
        _reset(logger)

    error_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if to_files:
        _attach(error, _file_handler(settings, "error.log"), error_format)
    else:
        _attach(error, logging.StreamHandler(sys.stderr), error_format)
    error.setLevel(logging.DEBUG if test_mode else settings.level)

    # The access and performance lines are complete (and escaped) messages
    # of their own; they do not also go to the error log.
    access.propagate = False
    performance.propagate = False
    if access_log:
        handler = _file_handler(settings, "access.log") if to_files else None
        _attach(access, handler or logging.StreamHandler(sys.stdout), "%(message)s")
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    if settings.performance_log:
        handler = _file_handler(settings, "performance.log") if to_files else None
        _attach(performance, handler or logging.StreamHandler(sys.stderr), "%(message)s")
    performance.setLevel(logging.INFO if settings.performance_log else logging.WARNING)

    if settings.anonymize_ips:
        for logger in (access, performance):
            anonymizer = _AnonymizeFilter()
            _mark(anonymizer)
            logger.addFilter(anonymizer)
