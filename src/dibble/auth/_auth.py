"""``Auth``: who the user is, for one server: logins, users, single sign-on.

A request's user comes from, in order:

1. HTTP authentication (``request.remote_user``, set by ``HTTPAuth``);
2. a login kept in the session (service ``dibble.auth``), made by the
   login page or by ``login()``;
3. a single sign-on token from another service sharing the key, which is
   turned into a local login on the spot.

A login stores the user's name, the time and a fingerprint of their
privileges.  The user is read from the user store on every request that
asks, so a removed user is logged out at once, and a user whose
privileges changed gets a new session id (the id is rotated on login and
on every privilege change).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from ..app import Request, ResponseWriter, get_request, server_of
from ..sessions import AUTH_SERVICE, sessions_of
from ..users import User, UserStore, database_path
from ._csrf import CSRF
from ._ratelimit import RateLimiter
from ._sso import SSO, SSOError

if TYPE_CHECKING:
    from ..app import HTTPServer

__all__ = ["Auth", "auth_of", "current_user", "login", "logout", "why_not_logged_in"]

error_log: Final = logging.getLogger("dibble.error")


class Auth:
    """Login settings of one server.

    ``users``: the ``UserStore`` (None: users only come from HTTP
    authentication, and the login page refuses everyone).  ``sso``: single
    sign-on (``SSO``), or None.  ``login_url``/``logout_url``: where the
    login pages are; ``after_login``: where a login without ``next`` goes.
    ``rate_limit``: failed logins allowed per client address.
    """

    def __init__(
        self,
        users: UserStore | None = None,
        *,
        sso: SSO | None = None,
        login_url: str = "/login",
        logout_url: str = "/logout",
        after_login: str = "/",
        rate_limit: RateLimiter | None = None,
        csrf: CSRF | None = None,
        realm: str = "dibble",
    ) -> None:
        self.users = users
        self.sso = sso
        self.login_url = login_url
        self.logout_url = logout_url
        self.after_login = after_login
        self.rate_limit = rate_limit if rate_limit is not None else RateLimiter(5, 300.0)
        self.csrf = csrf if csrf is not None else CSRF()
        self.realm = realm
        #: True for the Auth a server made for itself (it closes the store).
        self.made_by_default = False

    def __repr__(self) -> str:
        return f"<Auth users={self.users!r} sso={'on' if self.sso else 'off'}>"

    def lookup(self, name: str) -> User | None:
        """The user called ``name``: from the store, or a bare ``User`` without one."""
        if self.users is None:
            return User(name)
        return self.users.get(name)

    def close(self) -> None:
        if self.users is not None:
            self.users.close()


_default_lock: Final = threading.Lock()


def default_auth(server: HTTPServer) -> Auth:
    """The ``Auth`` a server gets when none was given: ``[auth]`` of its configuration.

    Users are in the configured database (``[database] url``, else
    ``dibble.sqlite3`` in ``[paths] data_dir``); without one there is no
    user store.  Single sign-on is on when ``[auth] sso_keys`` are set.
    """
    settings = server.site.settings
    section = settings.auth
    path = database_path(settings)
    users = UserStore(path) if path else None
    sso = None
    if section.sso_keys:
        sso = SSO(
            section.sso_keys,
            domain=section.sso_domain or None,
            cookie_name=section.sso_cookie,
            lifetime=section.sso_lifetime,
            secure=True if settings.cookies.secure else None,
        )
    auth = Auth(
        users,
        sso=sso,
        login_url=section.login_url,
        logout_url=section.logout_url,
        after_login=section.after_login,
        rate_limit=RateLimiter(section.max_failures, section.failure_window),
        csrf=CSRF(
            cookie_name=f"{settings.server.name}_csrf",
            secure=True if settings.cookies.secure else None,
        ),
        realm=settings.server.name,
    )
    auth.made_by_default = True
    return auth


def auth_of(request: Request) -> Auth:
    """The ``Auth`` of the server answering ``request`` (its default one if none was set)."""
    server = server_of(request)
    if server is None:
        raise RuntimeError("logins need a request answered by a dibble.HTTPServer")
    auth: Auth | None = server.auth
    if auth is None:
        with _default_lock:
            auth = server.auth
            if auth is None:
                auth = server.auth = default_auth(server)
    return auth


class _Known:
    """What one request found out about its user (cached on the request's sessions)."""

    __slots__ = ("reason", "user")

    def __init__(self, user: User | None, reason: str | None) -> None:
        self.user = user
        self.reason = reason


def current_user(request: Request | None = None) -> User | None:
    """The user of ``request`` (default: the one being answered), or None."""
    request = request or get_request()
    remote = request.remote_user
    auth = auth_of(request)
    if remote is not None:
        return auth.lookup(remote) or User(remote)
    state = sessions_of(request)
    known = getattr(state, "auth_cache", None)
    if not isinstance(known, _Known):
        known = _find_user(auth, request)
        state.auth_cache = known
    return known.user


def why_not_logged_in(request: Request | None = None) -> str:
    """Why ``request`` has no user, for the message that refuses it."""
    request = request or get_request()
    current_user(request)
    known = getattr(sessions_of(request), "auth_cache", None)
    reason = known.reason if isinstance(known, _Known) else None
    return reason or "Please log in."


def _find_user(auth: Auth, request: Request) -> _Known:
    state = sessions_of(request)
    session = state.get(AUTH_SERVICE)
    name = session.get("user")
    sso = auth.sso
    if isinstance(name, str):
        if session.get("via") == "sso" and sso is not None:
            problem = _sso_problem(sso, request, name)
            if problem is not None:
                # The login came from single sign-on, which has ended.
                _forget(session)
                return _Known(None, problem)
        user = auth.lookup(name)
        if user is None:
            _forget(session)
            return _Known(None, "Your user account no longer exists.")
        if session.get("via") == "sso" and _sso_ended(auth, user, request):
            _forget(session)
            return _Known(None, "You logged out (single sign-on); please log in again.")
        if session.get("fp") != user.fingerprint:
            # Privileges changed since the login: a new id for the new rights.
            state.rotate()
            session["fp"] = user.fingerprint
        return _Known(user, None)
    reason = None
    if state.rejected is not None:
        reason = "Your session has expired or is not valid; please log in again."
    if sso is not None:
        token = sso.token_of(request)
        if token:
            try:
                claims = sso.verify(token)
            except SSOError as exc:
                _drop_sso_cookie(sso, request)
                return _Known(None, f"{str(exc).capitalize()}.")
            user = auth.lookup(claims.user)
            if user is not None and claims.issued <= user.logins_ended:
                # A token from before a logout: a copy being replayed.
                _drop_sso_cookie(sso, request)
                return _Known(None, "That single sign-on ended with a logout; please log in.")
            if user is not None:
                login(user, request, via="sso")
                return _Known(user, None)
            reason = "Your user account is not known to this service."
    return _Known(None, reason)


def _sso_problem(sso: SSO, request: Request, name: str) -> str | None:
    token = sso.token_of(request)
    if not token:
        return "You logged out (single sign-on); please log in again."
    try:
        claims = sso.verify(token)
    except SSOError as exc:
        return f"{str(exc).capitalize()}."
    if claims.user != name:
        return "You logged in as somebody else elsewhere; please log in again."
    return None


def _sso_ended(auth: Auth, user: User, request: Request) -> bool:
    """Whether the SSO login behind this session ended with a logout elsewhere."""
    sso = auth.sso
    token = sso.token_of(request) if sso is not None else None
    if sso is None or not token:
        return False
    try:
        return sso.verify(token).issued <= user.logins_ended
    except SSOError:
        return True


def _forget(session: Any) -> None:
    for key in ("user", "via", "at", "fp"):
        session.pop(key, None)


def _drop_sso_cookie(sso: SSO, request: Request) -> None:
    header = sso.expired_cookie(request).header()
    ResponseWriter.of(request).add_head_hook(lambda fields: fields.append(header))


def login(user: User | str, request: Request | None = None, *, via: str = "form") -> User:
    """Log ``user`` in for the rest of this session: a new session id, and the
    single sign-on cookie when SSO is on.  Returns the ``User``."""
    request = request or get_request()
    auth = auth_of(request)
    if isinstance(user, str):
        found = auth.lookup(user)
        if found is None:
            raise ValueError(f"no user named {user!r}")
        user = found
    state = sessions_of(request)
    session = state.get(AUTH_SERVICE)
    # A login gets a new id, so an id planted before it (session fixation)
    # is worth nothing after it.
    state.rotate()
    session["user"] = user.name
    session["via"] = via
    session["at"] = time.time()
    session["fp"] = user.fingerprint
    if auth.sso is not None and via != "sso":
        header = auth.sso.cookie(request, auth.sso.issue(user.name)).header()
        ResponseWriter.of(request).add_head_hook(lambda fields: fields.append(header))
    state.auth_cache = _Known(user, None)
    return user


def logout(request: Request | None = None) -> None:
    """End the login: the whole session goes, and the SSO cookie with it."""
    request = request or get_request()
    auth = auth_of(request)
    state = sessions_of(request)
    name = state.get(AUTH_SERVICE).get("user")
    state.invalidate()
    if auth.sso is not None:
        _drop_sso_cookie(auth.sso, request)
        if isinstance(name, str) and auth.users is not None:
            # Every service sharing the user database stops honouring the
            # tokens issued so far, copies included.
            auth.users.end_logins(name)
    state.auth_cache = _Known(None, "You have logged out.")
