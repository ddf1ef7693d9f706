"""Protecting methlets and pages: ``@login_required``, ``@require(...)``, ``@protected_by(...)``.

``login_required`` and ``require`` check the request's user (see
``current_user``) before the methlet runs.  Without a user, a browser
asking for a page (GET or HEAD that accepts HTML) is sent to the login
page with ``next`` set to come back; anything else gets a 401 that says
why (no login, an expired or forged session, an SSO token that ended).  A
user without the privilege gets a 403 naming what is missing.

They wrap plain and ``async`` methlets alike, keep the methlet's signature
(so parameters still bind), and decorate a ``Page`` class by wrapping its
``get_html``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from ..app import Guard, HTTPError, Request, Response, get_request
from ._auth import auth_of, current_user, why_not_logged_in

__all__ = ["login_required", "protected_by", "require", "unprotected"]

F = TypeVar("F", bound=Callable[..., Any])

ProjectSpec = str | Callable[[Request], "str | None"] | None


def _anonymous(request: Request) -> Response:
    auth = auth_of(request)
    reason = why_not_logged_in(request)
    accept = request.headers.get("accept", "")
    if auth.login_url and request.method in ("GET", "HEAD") and "text/html" in accept:
        back = request.target.decode("latin-1")
        return Response.redirect(f"{auth.login_url}?{urlencode({'next': back})}")
    # RFC 9110 wants a challenge with every 401; this is the form login's,
    # in the style of draft-broyer-http-cookie-auth.
    challenge = f'Cookie realm="{auth.realm}", form-action="{auth.login_url}"'
    raise HTTPError(401, reason, [("WWW-Authenticate", challenge)])


def _check(request: Request, privilege: int, project: ProjectSpec, admin: bool) -> Response | None:
    user = current_user(request)
    if user is None:
        return _anonymous(request)
    if admin and not user.admin:
        raise HTTPError(403, f"This page is for administrators; {user.name} is not one.")
    name = project(request) if callable(project) else project
    if not user.allows(privilege, name):
        where = f"in project {name!r}" if name else "in any project"
        raise HTTPError(
            403, f"This page needs privilege {privilege} {where}; {user.name} lacks it."
        )
    return None


def require(
    privilege: int = 1, project: ProjectSpec = None, *, admin: bool = False
) -> Callable[[F], F]:
    """Let only users with ``privilege`` in ``project`` (any project when None) in.

    ``project`` may be a function of the request (to take it from a
    parameter, say); ``admin=True`` admits administrators only.
    """

    def decorate(target: F) -> F:
        if isinstance(target, type):
            # A Page class: guard the method that makes its response.
            target.get_html = decorate(target.get_html)  # type: ignore[attr-defined]
            return target
        func: Callable[..., Any] = target
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                refusal = _check(get_request(), privilege, project, admin)
                if refusal is not None:
                    return refusal
                return await func(*args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            refusal = _check(get_request(), privilege, project, admin)
            if refusal is not None:
                return refusal
            return func(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def login_required(target: F) -> F:
    """Let only logged-in users in (see the module docstring for the refusals)."""
    return require(privilege=0)(target)


def protected_by(guard: Guard) -> Callable[[F], F]:
    """Protect one methlet with ``guard`` (an ``HTTPAuth``), whatever its plugin
    and server use."""

    def mark(func: F) -> F:
        func.__dibble_http_auth__ = guard  # type: ignore[attr-defined]
        return func

    return mark


def unprotected(func: F) -> F:
    """Exempt one methlet from its plugin's and server's HTTP authentication."""
    func.__dibble_http_auth__ = None  # type: ignore[attr-defined]
    return func
