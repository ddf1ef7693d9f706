"""Single sign-on: a signed, expiring token that every service sharing the key accepts.

After a login the token goes into a cookie on the configured parent domain
(``Domain=example.org``), so the browser sends it to every service below
it.  A service that finds no login in its own session but a valid token
logs the user in locally (a fresh session id); when the token goes away
(logout anywhere, or expiry) the local login goes with it.

A token is ``v1.<payload>.<mac>``: the payload is base64url JSON ``{"u":
user, "iat": issued, "exp": expires, "n": nonce}`` and the MAC an
HMAC-SHA256 over ``v1.<payload>`` with the shared key.  Keys rotate: tokens
are signed with the first key and accepted with any, so a new key goes
first and the old one stays until its tokens have expired.  A token is
bounded in size, and every check is constant-time.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..app import Request
from ..cookies import Cookie
from ._signing import Signer, b64decode, b64encode

__all__ = ["SSO", "SSOError", "SSOToken"]

#: A token longer than this is refused unread.
MAX_TOKEN: Final = 2048
#: How far a token's issue time may lie in the future (clocks drift).
CLOCK_SKEW: Final = 60

_SHAPE: Final = re.compile(r"v1\.([A-Za-z0-9_-]{1,1800})\.([A-Za-z0-9_-]{43})")


class SSOError(ValueError):
    """A token that is not accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class SSOToken:
    """What a valid token says."""

    user: str
    issued: float
    expires: float


class SSO:
    """Issues and checks SSO tokens for the services that share ``keys``.

    ``keys``: the shared key, or several (the first signs; all verify), each
    at least 32 bytes.  ``domain``: the parent domain the cookie is set on
    (None: only this host).  ``lifetime``: seconds a token is valid.
    """

    def __init__(
        self,
        keys: str | bytes | Sequence[str | bytes],
        *,
        domain: str | None = None,
        cookie_name: str = "dibble_sso",
        lifetime: float = 8 * 3600,
        secure: bool | None = None,
    ) -> None:
        self._signer = Signer(keys, min_length=32)
        self.domain = domain or None
        self.cookie_name = cookie_name
        self.lifetime = lifetime
        self.secure = secure
        Cookie(cookie_name, "x", domain=self.domain)  # checks name and domain now

    def issue(self, user: str, now: float | None = None) -> str:
        """A token saying ``user`` logged in ``now``."""
        now = time.time() if now is None else now
        payload = json.dumps(
            {
                "u": user,
                "iat": now,
                "exp": int(now + self.lifetime),
                "n": secrets.token_hex(4),
            },
            separators=(",", ":"),
            ensure_ascii=True,
        )
        body = b64encode(payload.encode("ascii"))
        mac = b64encode(self._signer.sign("sso", f"v1.{body}".encode("ascii")))
        token = f"v1.{body}.{mac}"
        if len(token) > MAX_TOKEN:
            raise ValueError("the user name is too long for an SSO token")
        return token

    def verify(self, token: str, now: float | None = None) -> SSOToken:
        """What ``token`` says; SSOError saying why it is not accepted."""
        now = time.time() if now is None else now
        if len(token) > MAX_TOKEN:
            raise SSOError("the single sign-on token is too long")
        match = _SHAPE.fullmatch(token)
        if match is None:
            raise SSOError("the single sign-on token is malformed")
        body, mac = match[1], match[2]
        try:
            signature = b64decode(mac)
        except ValueError:
            raise SSOError("the single sign-on token is malformed") from None
        if not self._signer.verify("sso", f"v1.{body}".encode("ascii"), signature):
            raise SSOError("the single sign-on token was not signed with our key")
        try:
            claims = json.loads(b64decode(body))
            user, issued, expires = claims["u"], claims["iat"], claims["exp"]
        except (ValueError, KeyError, TypeError):
            raise SSOError("the single sign-on token is malformed") from None
        if not (
            isinstance(user, str)
            and user
            and isinstance(issued, int | float)
            and isinstance(expires, int)
        ):
            raise SSOError("the single sign-on token is malformed")
        if expires <= now:
            raise SSOError("the single sign-on token has expired; please log in again")
        if issued > now + CLOCK_SKEW:
            raise SSOError("the single sign-on token is not valid yet")
        return SSOToken(user, float(issued), float(expires))

    def _secure(self, request: Request) -> bool:
        return request.tls if self.secure is None else self.secure

    def cookie(self, request: Request, token: str) -> Cookie:
        """The cookie that carries ``token`` to every service of the domain."""
        return Cookie(
            self.cookie_name,
            token,
            max_age=int(self.lifetime),
            domain=self.domain,
            secure=self._secure(request),
        )

    def expired_cookie(self, request: Request) -> Cookie:
        """The cookie that removes the token (logout)."""
        return self.cookie(request, "").deleted()

    def token_of(self, request: Request) -> str | None:
        """The token ``request`` carries, if any."""
        return request.cookies.get(self.cookie_name)
