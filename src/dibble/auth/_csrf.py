"""CSRF tokens for dibble's forms: a signed double-submit token.

The browser holds a random value in an ``HttpOnly; SameSite=Lax`` cookie;
a form carries ``csrf_token`` = a time stamp and an HMAC (with the server's
secret key) of that time stamp and the cookie's value.  A POST is accepted
only with a token that matches the cookie it came with, made by this
server, and not older than ``max_age``.  Another site can make a browser
send the cookie, but can neither read it nor compute the token.

It needs no session, so the login form works before there is one.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from typing import Final

from ..app import HTTPError, Request, ResponseWriter, server_of
from ..cookies import Cookie
from ._signing import Signer, b64decode, b64encode

__all__ = ["CSRF", "CSRF_FIELD"]

#: The name of the form field that carries the token.
CSRF_FIELD: Final = "csrf_token"

_COOKIE_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{22}")
_TOKEN: Final = re.compile(r"(\d{1,12})\.([A-Za-z0-9_-]{22})")


class CSRF:
    """Makes and checks CSRF tokens; ``key`` None uses the server's secret key."""

    def __init__(
        self,
        *,
        cookie_name: str = "dibble_csrf",
        max_age: float = 12 * 3600,
        key: str | bytes | None = None,
        secure: bool | None = None,
    ) -> None:
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.secure = secure
        self._signer = Signer(key) if key is not None else None

    def _signer_for(self, request: Request) -> Signer:
        if self._signer is not None:
            return self._signer
        server = server_of(request)
        if server is None:
            raise RuntimeError("CSRF tokens need a key or a dibble.HTTPServer's secret key")
        return Signer(server.secret_key)

    def _cookie(self, request: Request) -> tuple[str, bool]:
        secure = request.tls if self.secure is None else self.secure
        return ("__Host-" if secure else "") + self.cookie_name, secure

    def _mac(self, request: Request, stamp: str, value: str) -> str:
        return b64encode(self._signer_for(request).sign("csrf", f"{stamp}.{value}".encode())[:16])

    def token(self, request: Request) -> str:
        """A token for a form in the response to ``request`` (sets the cookie if needed)."""
        name, secure = self._cookie(request)
        cookies = request.cookies
        value = cookies.get(name, "")
        if not _COOKIE_VALUE.fullmatch(value):
            value = secrets.token_urlsafe(16)
            # Later calls in this request see the value the browser is about
            # to get, so every form on the page carries a matching token.
            cookies[name] = value
            cookie = Cookie(name, value, secure=secure)
            ResponseWriter.of(request).add_head_hook(lambda fields: fields.append(cookie.header()))
        stamp = str(int(time.time()))
        return f"{stamp}.{self._mac(request, stamp, value)}"

    def check(self, request: Request, token: str | None) -> None:
        """Refuse (403, saying why) a request whose token is missing, forged or old."""
        if not token:
            raise HTTPError(
                403,
                "The form was sent without its CSRF token; reload the page and try again.",
            )
        name, _ = self._cookie(request)
        value = request.cookies.get(name, "")
        match = _TOKEN.fullmatch(token)
        if match is None or not _COOKIE_VALUE.fullmatch(value):
            raise HTTPError(
                403, "The form's CSRF token is not valid; reload the page and try again."
            )
        stamp, mac = match[1], match[2]
        try:
            given = b64decode(mac)
            expected = b64decode(self._mac(request, stamp, value))
        except ValueError:
            raise HTTPError(403, "The form's CSRF token is not valid.") from None
        if not hmac.compare_digest(given, expected):
            raise HTTPError(
                403,
                "The form's CSRF token does not match this browser; reload the page "
                "and try again.",
            )
        age = time.time() - int(stamp)
        if age > self.max_age or age < -300:
            raise HTTPError(403, "The form has expired; reload the page and try again.")
