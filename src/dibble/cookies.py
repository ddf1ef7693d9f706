"""Cookies: reading the ``Cookie`` header and writing ``Set-Cookie`` (RFC 6265).

Parsing is strict about what it keeps and quiet about what it drops.  Each
``Cookie`` field is split at ``;`` once and every pair is looked at once, so
the work is linear in the size of the header whatever a client sends (the
header itself is bounded by the server's header limits).  A pair is skipped,
never an error, when it has no ``=``, an empty name or a name that is not an
RFC 9110 token, a value with control characters or invalid UTF-8, or when it
is longer than :data:`MAX_COOKIE_SIZE`.  When a name repeats, the first one
wins: browsers send the cookie with the most specific path first.

:class:`Cookie` renders one ``Set-Cookie`` value and refuses, when it is made,
anything that could not be sent as it is: a name that is not a token, a value
outside RFC 6265's cookie-octets (encode such values first, e.g. with
:func:`quote_value`), attributes containing ``;`` or control characters, and
``SameSite=None`` without ``Secure`` (browsers drop those).  The defaults are
the safe ones: ``Path=/``, ``HttpOnly``, ``SameSite=Lax``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from urllib.parse import quote, unquote

from .http import http_date

__all__ = [
    "MAX_COOKIES",
    "MAX_COOKIE_SIZE",
    "Cookie",
    "parse_cookie_header",
    "parse_cookies",
    "quote_value",
    "unquote_value",
]

#: A ``name=value`` pair longer than this (in bytes) is ignored; RFC 6265 asks
#: user agents to store at least 4096 bytes per cookie, and no more is kept.
MAX_COOKIE_SIZE: Final = 4096

#: Cookies beyond this many in one request are ignored.
MAX_COOKIES: Final = 200

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_TEXT: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters (and DEL) never belong in a cookie value.
_CONTROL: Final = re.compile(rb"[\x00-\x1f\x7f]")
# RFC 6265 §4.1.1 cookie-octet: what a server may put in a value unquoted.
_COOKIE_OCTETS: Final = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
# Attribute values (Path, Domain) may hold anything but ';' and controls.
_ATTRIBUTE: Final = re.compile(r"[^\x00-\x1f\x7f;]*")
# What quote_value leaves alone: cookie-octets other than '%'.
_SAFE: Final = "!#$&'()*+-./:<=>?@[]^_`{|}~"


def parse_cookies(fields: Iterable[bytes]) -> dict[str, str]:
    """Cookies from the raw values of a request's ``Cookie`` fields, by name.

    Malformed, nameless and oversized pairs are ignored (see the module
    docstring); the first of duplicate names wins.
    """
    cookies: dict[str, str] = {}
    for field in fields:
        for pair in field.split(b";"):
            if len(pair) > MAX_COOKIE_SIZE:
                continue
            name, sep, value = pair.partition(b"=")
            if not sep:
                continue
            name = name.strip(b" \t")
            if not _TOKEN.fullmatch(name):
                continue
            value = value.strip(b" \t")
            if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
                value = value[1:-1]
            if _CONTROL.search(value):
                continue
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
            key = name.decode("ascii")
            if key not in cookies:
                if len(cookies) >= MAX_COOKIES:
                    return cookies
                cookies[key] = text
    return cookies


def parse_cookie_header(header: str | bytes) -> dict[str, str]:
    """Cookies from one ``Cookie`` header value (text is taken as UTF-8)."""
    raw = header.encode("utf-8", errors="surrogateescape") if isinstance(header, str) else header
    return parse_cookies([raw])


def quote_value(text: str) -> str:
    """Percent-encode ``text`` so any string can be a cookie value."""
    return quote(text, safe=_SAFE)


def unquote_value(value: str) -> str:
    """The text :func:`quote_value` encoded."""
    return unquote(value, errors="replace")


SameSite = Literal["Strict", "Lax", "None"]


@dataclass(frozen=True, slots=True)
class Cookie:
    """One cookie to set: ``response headers += [cookie.header()]``.

    ``max_age`` is in seconds (0 deletes the cookie); ``expires`` is a
    ``datetime`` or a POSIX time.  Without either the cookie lasts as long as
    the browser session.  ``domain`` None means the host that answered.
    """

    name: str
    value: str
    max_age: int | None = None
    expires: datetime | float | None = None
    path: str | None = "/"
    domain: str | None = None
    secure: bool = False
    http_only: bool = True
    same_site: SameSite | None = "Lax"

    def __post_init__(self) -> None:
        if not _TOKEN_TEXT.fullmatch(self.name):
            raise ValueError(f"cookie name {self.name!r} is not an HTTP token")
        if _COOKIE_OCTETS.fullmatch(self.value) is None:
            raise ValueError(
                f"cookie {self.name}: the value {self.value[:40]!r} has characters a cookie "
                "cannot carry; encode it (dibble.cookies.quote_value)"
            )
        for what in ("path", "domain"):
            value = getattr(self, what)
            if value is not None and (not value or not _ATTRIBUTE.fullmatch(value)):
                raise ValueError(f"cookie {self.name}: invalid {what} {value!r}")
        if self.max_age is not None and not isinstance(self.max_age, int):
            raise TypeError(f"cookie {self.name}: max_age must be an int of seconds")
        if self.same_site not in (None, "Strict", "Lax", "None"):
            raise ValueError(f"cookie {self.name}: SameSite must be Strict, Lax or None")
        if self.same_site == "None" and not self.secure:
            raise ValueError(f"cookie {self.name}: SameSite=None needs secure=True")

    def header_value(self) -> str:
        """The ``Set-Cookie`` field value."""
        parts = [f"{self.name}={self.value}"]
        if self.expires is not None:
            seconds = (
                self.expires.timestamp() if isinstance(self.expires, datetime) else self.expires
            )
            parts.append(f"Expires={http_date(seconds)}")
        if self.max_age is not None:
            parts.append(f"Max-Age={max(self.max_age, 0)}")
        if self.domain:
            parts.append(f"Domain={self.domain.lstrip('.')}")
        if self.path:
            parts.append(f"Path={self.path}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts)

    def header(self) -> tuple[str, str]:
        """``("Set-Cookie", value)``, ready for a response's header list."""
        return ("Set-Cookie", self.header_value())

    def deleted(self) -> Cookie:
        """A cookie that makes the browser forget this one (same name, path, domain)."""
        return Cookie(
            self.name,
            "",
            max_age=0,
            expires=0.0,
            path=self.path,
            domain=self.domain,
            secure=self.secure,
            http_only=self.http_only,
            same_site=self.same_site,
        )
