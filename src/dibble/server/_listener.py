"""One listening socket and the connections it accepted.

The listener owns what all of its connections share: the Date header, the
coarse once-a-tick sweep that enforces every connection's deadline, the
connection cap, and the orderly shutdown (stop accepting, close idle
connections, let busy ones finish within the grace period, then drop them).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Final

from ..http import DateHeader, RequestHead, RequestParser
from ._access import log_access
from ._config import ServerConfig
from ._protocol import _NONE, Application, HTTPProtocol, ResponseObserver

error_log: Final = logging.getLogger("dibble.error")


Client = tuple[str, int] | None


def _log_invalid(client: Client, head: RequestHead | None, status: int) -> None:
    log_access(client, head, status, 0)


class Listener:
    """Accept connections for ``app`` on the address in ``config``."""

    def __init__(
        self,
        app: Application,
        config: ServerConfig,
        loop: asyncio.AbstractEventLoop,
        *,
        sock: socket.socket | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.loop = loop
        self.sock = sock
        self.connections: set[HTTPProtocol] = set()
        self.date = DateHeader(time.time())
        self.access_log = config.access_log
        #: While ``observed``, every finished response is passed to ``observe`` and
        #: every refused request to ``observe_invalid``: the access log, the
        #: application's ``observer`` (statistics), or both.
        self.observed = False
        self.observe: Callable[[Client, RequestHead | None, int, int], None] = log_access
        self.observe_invalid: Callable[[Client, RequestHead | None, int], None] = _log_invalid
        self.observer: ResponseObserver | None = None
        self.set_observer(getattr(app, "observer", None))
        # Copied out of the config for the connections' hot path.
        self.keep_alive_timeout = config.keep_alive_timeout
        self.header_timeout = config.header_timeout
        self.body_timeout = config.body_timeout
        self.shutting_down = False
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._tick = min(
            1.0, config.keep_alive_timeout / 4, config.header_timeout / 4, config.body_timeout / 4
        )
        self._all_closed: asyncio.Event | None = None
        #: Idle parsers, lent to connections while they read or answer a
        #: request.  A connection holds at most one, so the pool never grows
        #: past the number of connections busy at the same time.
        self.parsers: list[RequestParser] = []

    def set_observer(self, observer: ResponseObserver | None) -> None:
        """Pass responses to ``observer`` (None: to the access log only, if it is on)."""
        self.observer = observer
        if observer is None:
            self.observe, self.observe_invalid = log_access, _log_invalid
        elif not self.access_log:
            self.observe, self.observe_invalid = observer.response, observer.invalid
        else:
            response, invalid = observer.response, observer.invalid

            def observe(client: Client, head: RequestHead | None, status: int, size: int) -> None:
                log_access(client, head, status, size)
                response(client, head, status, size)

            def observe_invalid(client: Client, head: RequestHead | None, status: int) -> None:
                log_access(client, head, status, 0)
                invalid(client, head, status)

            self.observe, self.observe_invalid = observe, observe_invalid
        self.observed = self.access_log or observer is not None

    def new_parser(self) -> RequestParser:
        """A parser for a connection with bytes to parse when the pool is empty."""
        return RequestParser(
            self.config.limits, head_factory=self.app.new_head, body_limit=self.app.body_limit
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound addresses (useful with port 0)."""
        if self._server is None:
            return []
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    async def start(self) -> None:
        def factory() -> HTTPProtocol:
            return HTTPProtocol(self)

        if self.sock is not None:
            self._server = await self.loop.create_server(
                factory, sock=self.sock, backlog=self.config.backlog
            )
        else:
            self._server = await self.loop.create_server(
                factory,
                self.config.host or None,
                self.config.port,
                backlog=self.config.backlog,
                reuse_address=True,
            )
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        self._ticker = self.loop.call_later(self._tick, self._sweep)

    def _sweep(self) -> None:
        self.date.update(time.time())
        now = self.loop.time()
        expired = [c for c in self.connections if c.deadline_kind != _NONE and c.deadline <= now]
        for conn in expired:
            try:
                conn.on_deadline()
            except Exception:
                error_log.exception("error while timing out a connection")
        self._schedule_tick()

    def connection_closed(self, conn: HTTPProtocol) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, finish in-flight requests within ``grace``, close all."""
        if self.shutting_down:
            return
        self.shutting_down = True
        grace = self.config.graceful_timeout if grace is None else grace
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._all_closed = asyncio.Event()
            try:
                await asyncio.wait_for(self._all_closed.wait(), grace)
            except TimeoutError:
                error_log.warning(
                    "%d connection(s) still busy after %.1f s; closing them",
                    len(self.connections),
                    grace,
                )
                for conn in list(self.connections):
                    conn.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            await self._server.wait_closed()
