"""The site's gate: access list, trusted proxies, virtual hosts, maintenance.

Every ``HTTPServer`` is served by a ``SiteDispatcher``, which is the plain
``Dispatcher`` plus a reference to its server (for pages, cookies and the
secret key); it overrides nothing, so it costs nothing per request.  Only
when one of the features below is configured is a ``GatedDispatcher`` used
instead: the plain hot path never tests a flag for a feature that is off.

The gated dispatcher works in the two places the server calls, and only
in those a configured feature needs:

* ``body_limit(head)``, where the route is chosen as soon as the head is
  complete: virtual hosts replace the route for ``/`` (the host's default
  service) or refuse services the host does not offer (404); maintenance
  mode replaces every route that is not exempt with the maintenance answer.
  The body is still read under the original route's limit, so a client
  that sends one gets the 503 rather than a 413.
* ``dispatch(head, body, conn)``, where the connection is known: a request
  that came through a trusted proxy gets the forwarded client address
  (logs, statistics and the access list see that one), and is refused 403
  if the access list does not allow that client.

Connections from other peers are checked against the access list when they
are accepted, before a byte is read (``allows_connection``).  Trusted
proxies are always let in: whom they forward for is checked per request.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from ..http import RequestHead
from ..ops import (
    AccessList,
    MaintenanceState,
    MaintenanceWatcher,
    NetworkSet,
    client_address,
    forwarded_client,
    host_name,
    parse_forwarded_for,
    parse_x_forwarded_for,
)
from ..server import HTTPProtocol, ServerConfig
from ._dispatch import Dispatcher
from ._errors import HTTPError
from ._params import Binder
from ._plugin import Plugin
from ._request import Request
from ._response import Response
from ._routing import INLINE, Route, Router

if TYPE_CHECKING:
    from ..config import VirtualHostSection
    from ._server import HTTPServer
    from ._site import Site

__all__ = ["Gate", "GatedDispatcher", "SiteDispatcher"]

_GATE_PLUGIN: Final = Plugin()
_MISSING: Final[Any] = object()
_HOST_CACHE_SIZE: Final = 1024


class SiteDispatcher(Dispatcher):
    """The dispatcher of an ``HTTPServer``: the plain one, knowing its server."""

    def __init__(
        self,
        router: Router,
        config: ServerConfig,
        on_exit: Callable[[], None],
        server: HTTPServer,
    ) -> None:
        self.server = server
        super().__init__(router, config, on_exit)


@dataclass(frozen=True, slots=True)
class Gate:
    """Which gate features are on, prepared for the request path."""

    access: AccessList | None = None
    trusted: NetworkSet | None = None
    forward_header: bytes = b"x-forwarded-for"
    maintenance: MaintenanceWatcher | None = None
    exempt: tuple[str, ...] = ()
    retry_after: int = 300
    hosts: dict[str, VirtualHostSection] | None = None
    unknown_host_404: bool = False
    performance: bool = False

    @classmethod
    def from_site(cls, site: Site) -> Gate | None:
        """The gate ``site``'s settings ask for; None when every feature is off."""
        settings = site.settings
        access = AccessList(settings.access.allow, settings.access.deny)
        trusted = NetworkSet(settings.proxies.trusted)
        file = site.maintenance_file()
        hosts: dict[str, VirtualHostSection] = {}
        for name, vhost in settings.vhosts.hosts.items():
            for alias in (name, *vhost.aliases):
                hosts[alias] = vhost
        gate = cls(
            access=access if access else None,
            trusted=trusted if trusted else None,
            forward_header=settings.proxies.header.lower().encode("ascii"),
            maintenance=(
                MaintenanceWatcher(file, interval=settings.maintenance.check_interval)
                if file
                else None
            ),
            exempt=settings.maintenance.exempt,
            retry_after=settings.maintenance.retry_after,
            hosts=hosts or None,
            unknown_host_404=settings.vhosts.unknown_host == "404",
            performance=settings.logging.performance_log,
        )
        if (
            gate.access is None
            and gate.trusted is None
            and gate.maintenance is None
            and gate.hosts is None
            and not gate.performance
        ):
            return None
        return gate


def _fixed_route(name: str, func: Callable[[], Any], max_body: int) -> Route:
    """A route that answers the same way whatever the request."""
    return Route(_GATE_PLUGIN, func, Binder(func), (), INLINE, max_body, "/", name=name)


def _refuse(status: int, message: str) -> Callable[[], Any]:
    def refuse() -> Any:
        raise HTTPError(status, message)

    return refuse


def maintenance_response(state: MaintenanceState, retry_after: int) -> Response:
    """The answer for a request during maintenance: a 503 page or a 301."""
    headers = [("Cache-Control", "no-store")]
    if state.redirect is not None:
        url = escape(state.redirect)
        body = (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Moved</title></head>"
            f"<body><p>This service has moved to <a href='{url}'>{url}</a>.</p></body></html>\n"
        )
        return Response(body, 301, [("Location", state.redirect), *headers])
    if retry_after:
        headers.append(("Retry-After", str(retry_after)))
    body = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        "<title>503 Down for maintenance</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:3em;color:#222}"
        "h1{font-size:1.4em}.m{white-space:pre-wrap}</style></head><body>"
        "<h1>Down for maintenance</h1>"
        f"<p class='m'>{escape(state.message)}</p>"
        "<hr><p><small>dibble</small></p></body></html>\n"
    )
    return Response(body, 503, headers)


class GatedDispatcher(SiteDispatcher):
    """A ``SiteDispatcher`` that applies the gate's features to every request."""

    def __init__(
        self,
        router: Router,
        config: ServerConfig,
        on_exit: Callable[[], None],
        server: HTTPServer,
        gate: Gate,
    ) -> None:
        self.gate = gate
        self._host_cache: dict[bytes, VirtualHostSection | None] = {}
        self._maintenance_routes: dict[MaintenanceState, Route] = {}
        limit = config.limits.max_body_size
        self._not_found = _fixed_route(
            "gate.not_found", _refuse(404, "this host does not serve that page"), limit
        )
        self._unknown_host = _fixed_route(
            "gate.unknown_host", _refuse(404, "no site is served under this host name"), limit
        )
        self._forbidden = _fixed_route(
            "gate.forbidden", _refuse(403, "your address may not use this service"), limit
        )
        super().__init__(router, config, on_exit, server)
        # Only the hooks a configured feature needs replace the plain ones, so
        # e.g. maintenance mode alone adds nothing to dispatch().  (Instance
        # attributes win over the class's methods where the server looks them up.)
        if gate.hosts is not None or gate.maintenance is not None:
            self.body_limit = self._gated_body_limit  # type: ignore[method-assign]
        if gate.trusted is not None or gate.performance:
            self.dispatch = self._gated_dispatch  # type: ignore[method-assign]

    def refresh(self) -> None:
        super().refresh()
        if self.gate.access is not None:
            self._filters.append(self._allows_peer)

    # --- at accept ----------------------------------------------------------------

    def _allows_peer(self, sock: socket.socket | None) -> bool:
        access = self.gate.access
        assert access is not None
        if sock is None:
            return False  # nothing to check it by: refuse rather than guess
        try:
            peer = sock.getpeername()
        except OSError:
            return False
        address = client_address(str(peer[0]) if isinstance(peer, tuple) else str(peer))
        if address is None:
            return False
        trusted = self.gate.trusted
        if trusted is not None and trusted.match(address) is not None:
            return True
        return access.allows(address)

    # --- when the head is complete ------------------------------------------------

    def _gated_body_limit(self, head: RequestHead) -> int:
        limit = Dispatcher.body_limit(self, head)
        request: Request = head  # type: ignore[assignment]
        gate = self.gate
        if gate.hosts is not None:
            route = self._host_route(request, gate.hosts)
            if route is not None:
                request.route = route
                limit = route.max_body
        watcher = gate.maintenance
        if watcher is not None:
            # watcher.current(), inlined: this runs for every request.
            if watcher.clock() >= watcher.next_check:
                watcher.refresh()
            state = watcher.state
            if state is not None and not request.path.startswith(gate.exempt):
                request.route = self._maintenance_route(state)
        return limit

    def _host_route(self, request: Request, hosts: dict[str, VirtualHostSection]) -> Route | None:
        raw = b""
        for name, value in request.raw_headers:
            if name == b"host":
                raw = value
                break
        cache = self._host_cache
        vhost = cache.get(raw, _MISSING)
        if vhost is _MISSING:
            host = host_name(raw.decode("latin-1")) if raw else None
            vhost = hosts.get(host) if host is not None else None
            if len(cache) >= _HOST_CACHE_SIZE:
                cache.clear()  # a client sending many names must not grow it
            cache[raw] = vhost
        if vhost is None:
            return self._unknown_host if self.gate.unknown_host_404 else None
        path = request.path
        first = path.lstrip("/").split("/", 1)[0]
        if not first:
            if vhost.default_service:
                return self.router.resolve(b"/" + vhost.default_service.encode("ascii"))
            default = self.router.default_service
            if vhost.services and default not in vhost.services:
                return self._not_found
            return None
        if vhost.services and first not in vhost.services:
            return self._not_found
        return None

    def _maintenance_route(self, state: MaintenanceState) -> Route:
        route = self._maintenance_routes.get(state)
        if route is None:
            response = maintenance_response(state, self.gate.retry_after)
            route = _fixed_route(
                "gate.maintenance", lambda: response, self.config.limits.max_body_size
            )
            if len(self._maintenance_routes) > 16:
                self._maintenance_routes.clear()
            self._maintenance_routes[state] = route
        return route

    # --- with the connection --------------------------------------------------------

    def _gated_dispatch(self, head: RequestHead, body: bytes, conn: HTTPProtocol) -> None:
        request: Request = head  # type: ignore[assignment]
        gate = self.gate
        if gate.trusted is not None and conn.client is not None:
            self._forward(request, conn.client, gate.trusted)
        if gate.performance:
            request.started = perf_counter()
        Dispatcher.dispatch(self, head, body, conn)

    def _forward(self, request: Request, peer: tuple[str, int], trusted: NetworkSet) -> None:
        wanted = self.gate.forward_header
        values: list[str] | None = None
        for name, value in request.raw_headers:
            if name == wanted:
                if values is None:
                    values = []
                values.append(value.decode("latin-1"))
        if values is None:
            return
        address = client_address(peer[0])
        if address is None:
            return
        if wanted == b"forwarded":
            hops = parse_forwarded_for(values)
        else:
            hops = parse_x_forwarded_for(values)
        found = forwarded_client(address, hops, trusted)
        if found is None:
            return
        client, port = found
        request.client = (str(client), port)
        access = self.gate.access
        if access is not None and not access.allows(client):
            request.route = self._forbidden
