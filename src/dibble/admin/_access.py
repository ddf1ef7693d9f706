"""Who may use the admin area.

A request is let in when its client address is in ``[admin] networks``, or
its user (``dibble.auth.current_user``) is an administrator: a user with
the admin flag, or with privilege ``ADMIN`` (3) or more in ``[admin]
project`` when one is named.  With ``network_required`` both are needed:
an administrator from an address outside the networks is refused too.

Refusals follow the auth layer's rules for pages:

* not logged in: a browser asking for a page is sent to the admin area's
  login page (and comes back after it); anything else gets a 401 saying why;
* logged in but not an administrator: 403 naming the user;
* an address outside the networks when they are required: 403.

The client address is the one the server believes (``request.client``:
behind a trusted proxy, the forwarded client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..app import HTTPError, Request, Response
from ..auth import auth_of, current_user, why_not_logged_in
from ..ops import NetworkSet, client_address
from ..users import ADMIN, User

if TYPE_CHECKING:
    from ..config import AdminSection

__all__ = ["AdminAccess"]


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """The rules: ``networks`` (CIDR strings), ``network_required``, ``project``."""

    networks: tuple[str, ...] = ()
    network_required: bool = False
    project: str = ""
    _set: NetworkSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_set", NetworkSet(self.networks))

    @classmethod
    def from_section(cls, section: AdminSection) -> AdminAccess:
        return cls(section.networks, section.network_required, section.project)

    def is_admin(self, user: User) -> bool:
        """Whether ``user`` may administer the server."""
        if user.admin:
            return True
        return bool(self.project) and user.privilege(self.project) >= ADMIN

    def in_networks(self, request: Request) -> bool:
        """Whether the request's client address is in ``networks``."""
        ip = request.client_ip
        if not self._set or ip is None:
            return False
        address = client_address(ip)
        return address is not None and self._set.match(address) is not None

    def check(self, request: Request, login_url: str) -> Response | None:
        """None when ``request`` may go on; a redirect to ``login_url`` for a browser
        that is not logged in; raises ``HTTPError`` (401 or 403) otherwise."""
        inside = self.in_networks(request)
        if inside and not self.network_required:
            return None
        if self.network_required and not inside:
            raise HTTPError(
                403,
                f"The admin area cannot be used from your address ({request.client_ip}).",
            )
        user = current_user(request)
        if user is None:
            return self._anonymous(request, login_url)
        if not self.is_admin(user):
            raise HTTPError(403, f"The admin area is for administrators; {user.name} is not one.")
        return None

    def _anonymous(self, request: Request, login_url: str) -> Response:
        accept = request.headers.get("accept", "")
        if request.method in ("GET", "HEAD") and "text/html" in accept:
            back = request.target.decode("latin-1")
            return Response.redirect(f"{login_url}?{urlencode({'next': back})}")
        realm = auth_of(request).realm
        challenge = f'Cookie realm="{realm}", form-action="{login_url}"'
        raise HTTPError(401, why_not_logged_in(request), [("WWW-Authenticate", challenge)])
