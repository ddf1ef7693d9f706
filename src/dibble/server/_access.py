"""The access log: one line per response in the combined log format.

Whatever the client sent (request line, referer, user agent) is escaped, so a
log line can never be forged or broken by a crafted request: quotes and
backslashes are backslash-escaped, control and non-ASCII characters become
``\\xHH``.

The client is the application's idea of it when it has one (a request that
came through a trusted proxy carries the forwarded address as ``client``),
and the same call writes the performance log line (``dibble.performance``:
time per request) for requests the application timed (``started``).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from ..http import RequestHead

access_log: Final = logging.getLogger("dibble.access")
performance_log: Final = logging.getLogger("dibble.performance")

_ESCAPES: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape_log_text(text: str) -> str:
    """Make client-supplied text safe to put between quotes in a log line."""
    return text.translate(_ESCAPES)


class _Clock:
    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.text = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self.text


_clock: Final = _Clock()


def log_access(
    client: tuple[str, int] | None,
    head: RequestHead | None,
    status: int,
    body_bytes: int,
    user: str | None = None,
) -> None:
    """Write one combined-format line to the ``dibble.access`` logger."""
    if head is not None:
        forwarded = getattr(head, "client", None)
        if forwarded is not None:
            client = forwarded
        started = getattr(head, "started", None)
        if started is not None:
            _log_performance(client, head, status, started)
    if not access_log.isEnabledFor(logging.INFO):
        return
    host = client[0] if client else "-"
    if head is not None:
        request = escape_log_text(
            f"{head.method} {head.target.decode('latin-1')} HTTP/{head.version}"
        )
        referer = agent = "-"
        for name, value in head.raw_headers:
            if name == b"referer":
                referer = escape_log_text(value.decode("latin-1"))
            elif name == b"user-agent":
                agent = escape_log_text(value.decode("latin-1"))
    else:
        request, referer, agent = "-", "-", "-"
    size = str(body_bytes) if body_bytes else "-"
    who = escape_log_text(user) if user else "-"
    access_log.info(
        '%s - %s [%s] "%s" %d %s "%s" "%s"',
        host,
        who,
        _clock.now(),
        request,
        status,
        size,
        referer,
        agent,
    )


def _log_performance(
    client: tuple[str, int] | None, head: RequestHead, status: int, started: float
) -> None:
    if not performance_log.isEnabledFor(logging.INFO):
        return
    elapsed = time.perf_counter() - started
    route = getattr(head, "route", None)
    performance_log.info(
        '%s [%s] "%s" %d %.2f ms %s',
        client[0] if client else "-",
        _clock.now(),
        escape_log_text(f"{head.method} {head.target.decode('latin-1')} HTTP/{head.version}"),
        status,
        elapsed * 1000.0,
        escape_log_text(str(getattr(route, "name", "-"))),
    )
