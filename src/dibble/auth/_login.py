"""The login and logout pages: ``server.register(LoginPages())`` serves /login and /logout.

Both are templated forms (``templates/login.html`` and ``logout.html``; give
your own with the same variables) protected by CSRF tokens.  A login is a
POST with ``user``, ``password``, ``next`` and ``csrf_token``:

* no or a bad CSRF token: 403;
* too many failures from the client's address: 429 with ``Retry-After``;
* wrong name or password: the form again, 401, and the failure counted;
* right: the session id is rotated, the user stored in the session (and the
  SSO cookie set), and a 303 to ``next`` -- a path on this site only, never
  another site (no open redirects).

Logging out is a POST too (with a CSRF token), so another site cannot log a
user out with a link; GET shows the button.  Checking a password costs a
scrypt hash, so these methlets run in the thread pool.
"""

from __future__ import annotations

import os
import threading
from typing import Final

from ..app import HTTPError, Plugin, Response, blocking
from ..templates import Template
from ._auth import Auth, auth_of, current_user, login, logout, why_not_logged_in

__all__ = ["LoginPages", "safe_next"]

_TEMPLATES: Final = os.path.join(os.path.dirname(__file__), "templates")
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "main{max-width:24em;margin:4em auto;padding:0 1.5em}h1{font-size:1.5em}"
    "input{font:inherit;padding:.3em;width:100%;box-sizing:border-box}"
    "button{font:inherit;padding:.3em 1.2em}"
    ".error{color:#a00;background:#fee;padding:.5em}.notice{background:#eef;padding:.5em}"
)
_cache: dict[str, Template] = {}
_cache_lock: Final = threading.Lock()


def _template(path: str) -> Template:
    template = _cache.get(path)
    if template is None:
        with _cache_lock:
            template = _cache.get(path)
            if template is None:
                template = _cache[path] = Template.from_file(path)
    return template


def safe_next(target: str, default: str) -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirects)."""
    if (
        not target
        or len(target) > 2000
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ord(c) < 0x20 or c in "\\\x7f" for c in target)
    ):
        return default
    return target


class LoginPages(Plugin):
    """``/login`` and ``/logout`` (under the prefix the plugin is registered at).

    ``auth`` None uses the server's ``Auth``; ``login_template`` and
    ``logout_template`` replace the built-in pages (same variables).
    """

    #: Not a methlet-style cache: every response carries a fresh CSRF token.
    _NO_STORE: Final = [("Cache-Control", "no-store")]

    def __init__(
        self,
        auth: Auth | None = None,
        *,
        title: str = "Log in",
        login_template: str | os.PathLike[str] | None = None,
        logout_template: str | os.PathLike[str] | None = None,
    ) -> None:
        self.auth = auth
        self.title = title
        self.login_template = os.fspath(login_template or os.path.join(_TEMPLATES, "login.html"))
        self.logout_template = os.fspath(
            logout_template or os.path.join(_TEMPLATES, "logout.html")
        )

    def _auth(self) -> Auth:
        return self.auth if self.auth is not None else auth_of(self.request)

    def _form(
        self, status: int, *, user: str = "", next_url: str = "", error: str = ""
    ) -> Response:
        request = self.request
        auth = self._auth()
        current = current_user(request)
        notice = ""
        if not error and next_url and current is None:
            notice = why_not_logged_in(request)
        html = _template(self.login_template).render(
            TITLE=self.title,
            STYLE=_STYLE,
            NOTICE={"TEXT": notice} if notice else None,
            ERROR={"TEXT": error} if error else None,
            CURRENT={"NAME": current.name} if current is not None else None,
            LOGOUT_URL=auth.logout_url,
            ACTION=request.path,
            CSRF_TOKEN=auth.csrf.token(request),
            NEXT=next_url,
            USER=user,
        )
        headers = list(self._NO_STORE)
        if status == 401:
            headers.append(
                ("WWW-Authenticate", f'Cookie realm="{auth.realm}", form-action="{request.path}"')
            )
        return Response(html, status, headers)

    @blocking
    def onLogin(
        self, user: str = "", password: str = "", next: str = "", csrf_token: str = ""
    ) -> Response:
        request = self.request
        auth = self._auth()
        if request.method in ("GET", "HEAD"):
            return self._form(200, next_url=next)
        if request.method != "POST":
            raise HTTPError(405, "Log in with a POST of the login form.", [("Allow", "GET, POST")])
        auth.csrf.check(request, csrf_token)
        client = request.client_ip or "?"
        wait = auth.rate_limit.retry_after(client)
        if wait > 0:
            raise HTTPError(
                429,
                f"Too many failed logins from your address; try again in {int(wait) + 1} s.",
                [("Retry-After", str(int(wait) + 1))],
            )
        if not user or not password:
            return self._form(
                400, user=user, next_url=next, error="Give a user name and a password."
            )
        if auth.users is None:
            raise HTTPError(503, "This service has no user database to log in with.")
        found = auth.users.verify(user, password)
        if found is None:
            auth.rate_limit.failed(client)
            return self._form(
                401, user=user, next_url=next, error="The user name or password is wrong."
            )
        login(found, request)
        return Response.redirect(safe_next(next, auth.after_login))

    @blocking
    def onLogout(self, next: str = "", csrf_token: str = "") -> Response:
        request = self.request
        auth = self._auth()
        if request.method in ("GET", "HEAD"):
            current = current_user(request)
            html = _template(self.logout_template).render(
                TITLE="Log out",
                STYLE=_STYLE,
                CURRENT=(
                    {"NAME": current.name, "CSRF_TOKEN": auth.csrf.token(request)}
                    if current is not None
                    else None
                ),
                NOBODY=current is None,
                ACTION=request.path,
                NEXT=next,
                LOGIN_URL=auth.login_url,
            )
            return Response(html, headers=list(self._NO_STORE))
        if request.method != "POST":
            raise HTTPError(
                405, "Log out with a POST of the logout form.", [("Allow", "GET, POST")]
            )
        auth.csrf.check(request, csrf_token)
        logout(request)
        return Response.redirect(safe_next(next, auth.login_url))
