"""HTTP authentication: Basic (RFC 7617) and Digest (RFC 7616), as a route guard.

``HTTPAuth`` is called with each request before its methlet runs (see
``Guard`` in the routing module); it returns when the request carries valid
credentials, setting ``request.remote_user``, and otherwise raises an
``HTTPError``: 401 with challenges for missing or wrong credentials, 400
for credentials that are malformed (bad base64, missing Digest fields, a
``uri`` that is not the request's), 429 after too many failures from one
address.

Digest, as RFC 7616 has it: SHA-256 and MD5 challenges offered together
(SHA-256 first), ``qop=auth`` only, UTF-8 names (``username*`` accepted).
Nonces are stateless: a time stamp, random bytes and an HMAC with the
server's secret key, so every worker accepts every other's; one older than
``nonce_lifetime`` is answered ``stale=true`` (the client retries without
asking the user).  The nonce count ``nc`` is remembered per nonce, so a
replayed request is refused.  Every comparison of secrets is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import unquote

from ..app import HTTPError, Request, server_of
from ._ratelimit import RateLimiter
from ._signing import Signer, b64decode, b64encode

if TYPE_CHECKING:
    from ..users import UserStore

__all__ = ["MAX_AUTHORIZATION", "HTTPAuth", "parse_auth_params"]

Scheme = Literal["basic", "digest"]

#: An ``Authorization`` field longer than this is refused (400).
MAX_AUTHORIZATION: Final = 4096

_TOKEN: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 - an RFC 9110 token, not a secret
_PARAM: Final = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:\"((?:[^\"\\]|\\.)*)\"|({_TOKEN}))[ \t]*(?:,|$)"
)
_ESCAPE: Final = re.compile(r"\\(.)")
_NC: Final = re.compile(r"[0-9a-fA-F]{8}")
_HASHES: Final = {"SHA-256": "sha256", "MD5": "md5"}
_REQUIRED: Final = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


def parse_auth_params(text: str) -> dict[str, str]:
    """``name=value`` pairs of an RFC 9110 auth-param list; ValueError if malformed.

    Names are lower-cased; quoted values are unescaped; a name given twice
    is an error (RFC 7616 says each may occur once).
    """
    params: dict[str, str] = {}
    pos = 0
    end = len(text.rstrip(" \t"))
    while pos < end:
        if text[pos] in " \t,":
            pos += 1
            continue
        match = _PARAM.match(text, pos)
        if match is None:
            raise ValueError(f"cannot parse the parameters at {text[pos : pos + 20]!r}")
        name = match[1].lower()
        if name in params:
            raise ValueError(f"the parameter {name!r} is given twice")
        params[name] = _ESCAPE.sub(r"\1", match[2]) if match[2] is not None else match[3]
        pos = match.end()
    return params


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _digest_hash(algorithm: str, text: str) -> str:
    # MD5 is what RFC 7616 keeps for old clients; it is offered after SHA-256.
    return hashlib.new(_HASHES[algorithm], text.encode("utf-8")).hexdigest()


class _Nonces:
    """Minting and checking stateless nonces; the nonce counts seen, per nonce."""

    WINDOW: Final = 64

    def __init__(self, lifetime: float, max_tracked: int) -> None:
        self.lifetime = lifetime
        self.max_tracked = max_tracked
        # nonce -> (highest nc seen, the ncs seen within WINDOW below it)
        self._seen: OrderedDict[str, tuple[int, set[int]]] = OrderedDict()
        # Nonces minted before this time that are no longer tracked count as
        # stale: forgetting one must never make its counts reusable.
        self._floor = 0.0
        self._lock = threading.Lock()

    def mint(self, signer: Signer, realm: str, now: float) -> str:
        body = int(now).to_bytes(8, "big") + secrets.token_bytes(8)
        return b64encode(body + signer.sign("digest-nonce", realm.encode() + body)[:16])

    def check(self, signer: Signer, realm: str, nonce: str, now: float) -> str:
        """``"ok"``, ``"stale"`` (ours but too old) or ``"invalid"`` (not ours)."""
        try:
            raw = b64decode(nonce)
        except ValueError:
            return "invalid"
        if len(raw) != 32:
            return "invalid"
        body, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(signer.sign("digest-nonce", realm.encode() + body)[:16], mac):
            return "invalid"
        stamp = int.from_bytes(body[:8], "big")
        if stamp > now + 60:
            return "invalid"
        if now - stamp > self.lifetime or (stamp <= self._floor and nonce not in self._seen):
            return "stale"
        return "ok"

    def use(self, nonce: str, nc: int, now: float) -> bool:
        """Record ``nc`` for ``nonce``; False if it was used before (a replay)."""
        with self._lock:
            entry = self._seen.get(nonce)
            seen: set[int]
            if entry is None:
                highest, seen = 0, set()
            else:
                highest, seen = entry
            if nc in seen or nc <= highest - self.WINDOW:
                return False
            seen.add(nc)
            highest = max(highest, nc)
            seen = {n for n in seen if n > highest - self.WINDOW}
            self._seen[nonce] = (highest, seen)
            self._seen.move_to_end(nonce)
            while len(self._seen) > self.max_tracked:
                old, _ = self._seen.popitem(last=False)
                self._floor = max(self._floor, _stamp(old))
            return True


def _stamp(nonce: str) -> float:
    return float(int.from_bytes(b64decode(nonce)[:8], "big"))


class HTTPAuth:
    """HTTP Basic and/or Digest authentication, used as a route guard.

    ``schemes``: ``"digest"``, ``"basic"`` or both (offered in that order).
    Credentials are checked by the hooks, which a subclass may override or
    which may be given as functions:

    * ``is_valid_user(name, password)`` decides Basic logins; by default it
      asks ``users`` (a ``dibble.users.UserStore``), else compares with
      ``get_password_for_user``;
    * ``get_password_for_user(name)`` returns the clear-text password (or
      None for no such user); Digest needs it, since a Digest client proves
      it knows the password without sending it.

    ``realm`` names the protection space; ``cancel_message`` is the body of
    the 401 page a user sees after cancelling the browser's login dialog.
    ``key`` signs nonces (default: the server's secret key).
    """

    #: Keys the cache of verified Basic credentials (new in every process).
    _cache_key: Final = secrets.token_bytes(32)

    def __init__(
        self,
        schemes: Scheme | Sequence[Scheme] = "digest",
        *,
        realm: str = "dibble",
        is_valid_user: Callable[[str, str], bool] | None = None,
        get_password_for_user: Callable[[str], str | None] | None = None,
        users: UserStore | None = None,
        cancel_message: str = "You must log in.",
        key: str | bytes | None = None,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        rate_limit: RateLimiter | None = None,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        chosen = (schemes,) if isinstance(schemes, str) else tuple(schemes)
        for scheme in chosen:
            if scheme not in ("basic", "digest"):
                raise ValueError(f"unknown HTTP authentication scheme {scheme!r}")
        for algorithm in algorithms:
            if algorithm not in _HASHES:
                raise ValueError(f"unsupported Digest algorithm {algorithm!r}")
        if '"' in realm or "\\" in realm:
            raise ValueError("a realm may not contain quotes or backslashes")
        self.schemes: tuple[Scheme, ...] = chosen
        self.realm = realm
        self.cancel_message = cancel_message
        self.users = users
        self.algorithms = tuple(algorithms)
        self.rate_limit = rate_limit if rate_limit is not None else RateLimiter(10, 300.0)
        self._is_valid_user = is_valid_user
        self._get_password = get_password_for_user
        self._signer = Signer(key) if key is not None else None
        self._signers: dict[bytes, Signer] = {}
        self._nonces = _Nonces(nonce_lifetime, max_tracked_nonces)
        self._verified: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._verified_lock = threading.Lock()
        if "digest" in chosen and not self._has_passwords():
            raise ValueError(
                "Digest authentication needs get_password_for_user (the clear-text password); "
                "stored scrypt hashes can only check Basic credentials"
            )

    def _has_passwords(self) -> bool:
        overridden = type(self).get_password_for_user is not HTTPAuth.get_password_for_user
        return overridden or self._get_password is not None

    # --- the hooks -----------------------------------------------------------------------

    def is_valid_user(self, name: str, password: str) -> bool:
        """Whether ``name`` may log in with ``password`` (Basic)."""
        if self._is_valid_user is not None:
            return bool(self._is_valid_user(name, password))
        if self.users is not None:
            return self._verify_with_store(self.users, name, password)
        expected = self.get_password_for_user(name)
        return expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        )

    def get_password_for_user(self, name: str) -> str | None:
        """The clear-text password of ``name`` (Digest), or None for no such user."""
        if self._get_password is not None:
            return self._get_password(name)
        return None

    def get_realm(self, request: Request) -> str:
        """The realm for ``request`` (``realm`` unless overridden)."""
        return self.realm

    def get_cancel_message(self, request: Request) -> str:
        """The 401 page's text (``cancel_message`` unless overridden)."""
        return self.cancel_message

    def schemes_for(self, request: Request) -> tuple[Scheme, ...]:
        """The schemes ``request`` must use (``schemes`` unless overridden); () for none."""
        return self.schemes

    def _verify_with_store(self, users: UserStore, name: str, password: str) -> bool:
        # A scrypt check per request would cost ~50 ms each; a successful
        # check is remembered for a minute, keyed by an HMAC of the
        # credentials, and only while the stored hash stays the same.
        digest = hmac.new(
            self._cache_key, f"{name}\x00{password}".encode(), hashlib.sha256
        ).digest()
        stored = users.password_hash(name)
        now = time.monotonic()
        with self._verified_lock:
            hit = self._verified.get(digest)
        if hit is not None and stored is not None and hit[1] > now:
            return hmac.compare_digest(hit[0].encode(), stored.encode())
        if users.verify(name, password) is None:
            return False
        stored = users.password_hash(name)
        if stored is not None:
            with self._verified_lock:
                self._verified[digest] = (stored, now + 60.0)
                while len(self._verified) > 1000:
                    self._verified.popitem(last=False)
        return True

    # --- the guard -----------------------------------------------------------------------

    def __call__(self, request: Request) -> None:
        schemes = self.schemes_for(request)
        if not schemes:
            return
        client = request.client_ip or "?"
        wait = self.rate_limit.retry_after(client)
        if wait > 0:
            raise HTTPError(
                429,
                "Too many failed logins from your address; try again later.",
                [("Retry-After", str(int(wait) + 1))],
            )
        headers = request.headers.get_all("authorization")
        if not headers:
            raise self._challenge(request, schemes)
        if len(headers) > 1:
            raise HTTPError(400, "The request has more than one Authorization header.")
        header = headers[0]
        if len(header) > MAX_AUTHORIZATION:
            raise HTTPError(400, "The Authorization header is too long.")
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme not in schemes:
            names = " or ".join(s.title() for s in schemes)
            raise self._challenge(
                request, schemes, f"This page needs {names} authentication, not {scheme[:20]!r}."
            )
        if scheme == "basic":
            name = self._basic(request, credentials.strip(), schemes)
        else:
            name = self._digest(request, credentials, schemes)
        request.remote_user = name

    def _challenge(
        self,
        request: Request,
        schemes: tuple[Scheme, ...],
        message: str | None = None,
        *,
        stale: bool = False,
        failed: bool = False,
    ) -> HTTPError:
        if failed:
            self.rate_limit.failed(request.client_ip or "?")
        realm = _quote(self.get_realm(request))
        fields: list[tuple[str, str]] = []
        for scheme in schemes:
            if scheme == "digest":
                signer = self._signer_for(request)
                now = time.time()
                opaque = b64encode(signer.sign("digest-opaque", realm.encode())[:12])
                for algorithm in self.algorithms:
                    nonce = self._nonces.mint(signer, self.get_realm(request), now)
                    fields.append(
                        (
                            "WWW-Authenticate",
                            f'Digest realm={realm}, qop="auth", algorithm={algorithm}, '
                            f'nonce="{nonce}", opaque="{opaque}", charset=UTF-8'
                            + (", stale=true" if stale else ""),
                        )
                    )
            else:
                fields.append(("WWW-Authenticate", f'Basic realm={realm}, charset="UTF-8"'))
        text = self.get_cancel_message(request)
        return HTTPError(401, f"{message} {text}" if message else text, fields)

    def _signer_for(self, request: Request) -> Signer:
        if self._signer is not None:
            return self._signer
        server = server_of(request)
        if server is None:
            raise RuntimeError("Digest nonces need a key or a dibble.HTTPServer's secret key")
        secret = server.secret_key
        signer = self._signers.get(secret)
        if signer is None:
            signer = self._signers[secret] = Signer(secret)
        return signer

    # --- Basic ---------------------------------------------------------------------------

    def _basic(self, request: Request, credentials: str, schemes: tuple[Scheme, ...]) -> str:
        if not credentials:
            raise HTTPError(400, "The Basic credentials are empty.")
        try:
            text = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise HTTPError(400, "The Basic credentials are not base64 of UTF-8 text.") from None
        name, sep, password = text.partition(":")
        if not sep:
            raise HTTPError(400, "The Basic credentials lack the ':' after the user name.")
        if not self.is_valid_user(name, password):
            raise self._challenge(
                request, schemes, "The user name or password is wrong.", failed=True
            )
        return name

    # --- Digest --------------------------------------------------------------------------

    def _digest(self, request: Request, credentials: str, schemes: tuple[Scheme, ...]) -> str:
        try:
            # Header fields arrive as latin-1; Digest fields are UTF-8 (charset=UTF-8).
            text = credentials.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise HTTPError(400, "The Digest credentials are not UTF-8 text.") from None
        try:
            params = parse_auth_params(text)
        except ValueError as exc:
            raise HTTPError(400, f"The Digest credentials are malformed: {exc}.") from None
        if "username*" in params and "username" not in params:
            params["username"] = _ext_value(params["username*"])
        missing = [name for name in _REQUIRED if not params.get(name)]
        if missing:
            raise HTTPError(400, f"The Digest credentials lack {', '.join(missing)}.")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in self.algorithms:
            raise HTTPError(400, f"The Digest algorithm {algorithm[:20]!r} is not offered here.")
        if params["qop"] != "auth":
            raise HTTPError(400, "Only qop=auth is offered here.")
        if params.get("userhash", "false").lower() == "true":
            raise HTTPError(400, "userhash is not offered here.")
        if not _NC.fullmatch(params["nc"]):
            raise HTTPError(400, "The Digest nonce count is not 8 hexadecimal digits.")
        if params["uri"] != request.target.decode("latin-1"):
            raise HTTPError(400, "The Digest uri is not this request's target.")
        realm = self.get_realm(request)
        if params["realm"] != realm:
            raise self._challenge(request, schemes, "The credentials are for another realm.")
        signer = self._signer_for(request)
        opaque = b64encode(signer.sign("digest-opaque", _quote(realm).encode())[:12])
        if "opaque" in params and not hmac.compare_digest(
            params["opaque"].encode(), opaque.encode()
        ):
            raise self._challenge(request, schemes, "The credentials are not from this server.")
        now = time.time()
        nonce = params["nonce"]
        state = self._nonces.check(signer, realm, nonce, now)
        if state == "invalid":
            raise self._challenge(request, schemes, "The nonce was not issued here.")
        name = params["username"]
        password = self.get_password_for_user(name)
        # Compute the expected answer even for an unknown user, so the time
        # taken does not tell which names exist.
        ha1 = _digest_hash(algorithm, f"{name}:{realm}:{password or secrets.token_hex(8)}")
        ha2 = _digest_hash(algorithm, f"{request.method}:{params['uri']}")
        expected = _digest_hash(
            algorithm,
            f"{ha1}:{nonce}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}",
        )
        given = params["response"].lower()
        if password is None or not hmac.compare_digest(expected.encode(), given.encode()):
            raise self._challenge(
                request, schemes, "The user name or password is wrong.", failed=True
            )
        if state == "stale":
            raise self._challenge(request, schemes, "The nonce has expired.", stale=True)
        if not self._nonces.use(nonce, int(params["nc"], 16), now):
            raise self._challenge(request, schemes, "This request was already made (a replay).")
        return name


def _ext_value(value: str) -> str:
    """An RFC 8187 ext-value (``UTF-8''na%C3%AFve``) as text."""
    charset, sep, rest = value.partition("'")
    _, sep2, encoded = rest.partition("'")
    if not (sep and sep2) or charset.upper() != "UTF-8":
        raise HTTPError(400, "The Digest username* is not a UTF-8 ext-value.")
    try:
        return unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(400, "The Digest username* is not a UTF-8 ext-value.") from None
