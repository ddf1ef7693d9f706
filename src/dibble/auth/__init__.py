"""Authentication: logins, single sign-on, HTTP Basic and Digest, CSRF.

::

    from dibble.auth import Auth, LoginPages, login_required, require
    from dibble.users import UserStore

    class Notes(dibble.Plugin):
        @login_required
        def onHome(self) -> str:
            return f"Hello, {current_user().name}"

    server = dibble.HTTPServer(8888, auth=Auth(UserStore("data/dibble.sqlite3")))
    server.register(Notes(), LoginPages())

HTTP authentication is a guard on a server, a plugin or a methlet::

    server = dibble.HTTPServer(8888, http_auth=HTTPAuth("digest", get_password_for_user=f))

See docs/auth.md.
"""

from ._auth import Auth, auth_of, current_user, login, logout, why_not_logged_in
from ._csrf import CSRF, CSRF_FIELD
from ._decorators import login_required, protected_by, require, unprotected
from ._http import HTTPAuth, parse_auth_params
from ._login import LoginPages, safe_next
from ._ratelimit import RateLimiter
from ._signing import Signer
from ._sso import SSO, SSOError, SSOToken

__all__ = [
    "CSRF",
    "CSRF_FIELD",
    "SSO",
    "Auth",
    "HTTPAuth",
    "LoginPages",
    "RateLimiter",
    "SSOError",
    "SSOToken",
    "Signer",
    "auth_of",
    "current_user",
    "login",
    "login_required",
    "logout",
    "parse_auth_params",
    "protected_by",
    "require",
    "safe_next",
    "unprotected",
    "why_not_logged_in",
]
