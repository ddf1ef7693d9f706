"""Response bytes: status lines, header blocks, chunked framing, the Date field.

Everything that can be computed once is: status lines for every registered
code live in a table, and the Date field is re-rendered at most once a second
by whoever owns the clock (the server's ticker), not per response.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import Final

from ._errors import InvalidResponseHeader

SERVER_NAME: Final = "dibble"


def _status_line(code: int, reason: str) -> bytes:
    return f"HTTP/1.1 {code} {reason}\r\n".encode("latin-1")


STATUS_LINES: Final[dict[int, bytes]] = {
    s.value: _status_line(s.value, s.phrase) for s in HTTPStatus
}

REASONS: Final[dict[int, str]] = {s.value: s.phrase for s in HTTPStatus}


def status_line(code: int) -> bytes:
    """``HTTP/1.1 <code> <reason>\\r\\n`` for any code from 100 to 999."""
    line = STATUS_LINES.get(code)
    if line is None:
        if not 100 <= code <= 999:
            raise ValueError(f"invalid HTTP status code: {code}")
        line = _status_line(code, "Unknown")
    return line


def reason_phrase(code: int) -> str:
    return REASONS.get(code, "Unknown")


_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def http_date(seconds: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class DateHeader:
    """The ``Date`` header field, rendered once per second.

    ``field`` is ready to paste into a header block, CRLF included.
    """

    __slots__ = ("_second", "field")

    def __init__(self, now: float) -> None:
        self._second = -1
        self.field = b""
        self.update(now)

    def update(self, now: float) -> None:
        second = int(now)
        if second != self._second:
            self._second = second
            self.field = b"Date: " + http_date(second).encode("ascii") + b"\r\n"


def _check(text: str, what: str) -> None:
    if "\r" in text or "\n" in text or "\0" in text:
        raise InvalidResponseHeader(f"response header {what} contains CR, LF or NUL: {text!r}")


def encode_header_fields(headers: Iterable[tuple[str, str]]) -> bytes:
    """Render ``name: value`` lines, refusing anything that could split the response."""
    out = []
    for name, value in headers:
        _check(name, "name")
        _check(value, "value")
        if not name or ":" in name or " " in name:
            raise InvalidResponseHeader(f"invalid response header name: {name!r}")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1", errors="strict")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; empty data gives nothing, not the last chunk."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK: Final = b"0\r\n\r\n"

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
