"""``HTTPServer``: an address, a configuration and the plugins served there."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..server import Context, Listener, ServerConfig, default_context
from ._dispatch import Dispatcher
from ._plugin import Plugin
from ._routing import Router


class HTTPServer:
    """Serve registered plugins on ``address``: a port, or ``(host, port)``.

    Nothing is bound until the context runs (``dibble.run()``), so creating a
    server at import time is harmless.  Keyword arguments are
    ``ServerConfig`` settings, e.g. ``HTTPServer(8080, test_mode=True)``.
    """

    def __init__(
        self,
        address: int | tuple[str, int] = 8888,
        context: Context | None = None,
        *,
        config: ServerConfig | None = None,
        **settings: Any,
    ) -> None:
        base = config or ServerConfig()
        if isinstance(address, tuple):
            host, port = address
            settings.setdefault("host", host)
            settings.setdefault("port", port)
        elif isinstance(address, int):
            settings.setdefault("port", address)
        else:
            raise TypeError(f"address must be a port or (host, port), not {address!r}")
        self._config = dataclasses.replace(base, **settings)
        self.router = Router(self._config.limits.max_body_size)
        self.context = context or default_context
        self.context.add(self)
        self.listeners: list[Listener] = []
        self._dispatcher: Dispatcher | None = None

    @property
    def config(self) -> ServerConfig:
        return self._config

    def configure(self, **settings: Any) -> None:
        """Change settings before the server runs (the command line uses this)."""
        if self.listeners:
            raise RuntimeError("cannot reconfigure a running server")
        self._config = dataclasses.replace(self._config, **settings)
        self.router.default_max_body = self._config.limits.max_body_size

    def register(self, *plugins: Plugin, prefix: str = "") -> None:
        """Serve ``plugins`` (searched in order) under ``prefix``."""
        for plugin in plugins:
            self.router.register(plugin, prefix)
        if self._dispatcher is not None:
            self._dispatcher.refresh()

    @property
    def plugins(self) -> list[Plugin]:
        return self.router.plugins

    # --- the Site interface used by Context ----------------------------------------

    def application(self, stop: Callable[[], None]) -> Dispatcher:
        self._dispatcher = Dispatcher(self.router, self._config, stop)
        return self._dispatcher

    def listening(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def closed(self) -> None:
        self.listeners = []
        if self._dispatcher is not None:
            self._dispatcher.close()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Bound ``(host, port)`` pairs while running (port 0 resolved)."""
        return [a for listener in self.listeners for a in listener.addresses]

    @property
    def url(self) -> str:
        """``http://host:port/`` of the first bound address."""
        if self.addresses:
            host, port = self.addresses[0]
        else:
            host, port = self._config.host, self._config.port
        if host in ("", "0.0.0.0"):  # noqa: S104 - a comparison, not a bind
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def __repr__(self) -> str:
        return (
            f"<HTTPServer {self._config.host}:{self._config.port} {len(self.plugins)} plugin(s)>"
        )
