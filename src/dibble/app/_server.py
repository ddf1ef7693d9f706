"""``HTTPServer``: an address, a configuration and the plugins served there."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..server import Context, Listener, ServerConfig, default_context
from ..uploads import ProgressStore, ProgressTable, UploadOptions, Uploads
from ._dispatch import Dispatcher
from ._plugin import Plugin
from ._routing import Guard, Router
from ._site import Site, apply_config, register_service

if TYPE_CHECKING:
    from ..auth import Auth
    from ..config import Config
    from ..files import StaticFiles, UploadProgress
    from ..housekeeping import Housekeeping
    from ..sessions import SessionPool
    from ..stats import Statistics


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
        sessions: SessionPool | None = None,
        auth: Auth | None = None,
        http_auth: Guard | None = None,
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
        #: Streamed uploads: default ``UploadOptions`` and the progress store.
        self.uploads = Uploads()
        #: The site's settings (``dibble.Config``) and what is made from them.
        self.site = Site()
        #: The session pool (``dibble.sessions.SessionPool``); None until one
        #: is given or the first request uses a session (then the default).
        self.sessions = sessions
        #: Logins, users and single sign-on (``dibble.auth.Auth``); None: the default.
        self.auth = auth
        #: The housekeeping timer (``dibble.housekeeping.Housekeeping``); made
        #: from ``[housekeeping]`` when the server starts, None when turned off.
        self.housekeeping: Housekeeping | None = None
        #: Statistics and the request log (``dibble.stats.Statistics``); made
        #: from ``[statistics]`` when the server starts, None when both are off.
        self.statistics: Statistics | None = None
        if http_auth is not None:
            self.http_auth = http_auth

    @classmethod
    def from_config(
        cls, config: Config, context: Context | None = None, *, prepare: bool = True
    ) -> HTTPServer:
        """A server as ``config`` describes it: address, settings, services, site.

        Raises ``dibble.config.ConfigError`` naming the setting when a
        service cannot be served or a name it refers to does not exist.
        ``prepare=False`` only checks: no secret key is made in the data folder.
        """
        server = cls((config.server.host, config.server.port), context)
        try:
            server.apply_config(config, prepare=prepare)
        except BaseException:
            server.context.remove(server)
            raise
        return server

    def apply_config(
        self, config: Config, *, explicit_only: bool = False, prepare: bool = True
    ) -> None:
        """Take ``config``'s settings and services (see ``dibble.config``).

        With ``explicit_only``, listening settings the configuration does not
        set explicitly keep the values given in code.
        """
        if self.listeners:
            raise RuntimeError("cannot reconfigure a running server")
        apply_config(self, config, explicit_only=explicit_only, prepare=prepare)

    def register_service(self, name: str, target: Any) -> None:
        """Serve ``target`` at ``/name``: a ``dibble.Page`` class, a plugin (or
        Plugin class, made with no arguments), or a ``"module:attr"`` path to one."""
        register_service(self, name, target)
        if self._dispatcher is not None:
            self._dispatcher.refresh()

    @property
    def secret_key(self) -> bytes:
        """The site's secret key (signs url objects); see ``Site.secret_key``."""
        return self.site.secret_key

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

    def static(
        self, prefix: str, directory: str | os.PathLike[str], **options: Any
    ) -> StaticFiles:
        """Serve the files below ``directory`` at ``prefix``; see ``dibble.files``.

        ``options`` are ``dibble.files.StaticOptions`` fields (``listing=True``,
        ``cache_control=...``, ``writable=True`` with ``authorize=...``).
        """
        # Imported here: static files are a feature built on this layer.
        from ..files import StaticFiles

        plugin = StaticFiles(directory, prefix=prefix, **options)
        self.register(plugin, prefix=prefix)
        return plugin

    def configure_uploads(self, options: UploadOptions | None = None, **settings: Any) -> None:
        """Set the default ``UploadOptions`` (or some of its fields) for every methlet."""
        base = options or self.uploads.options
        self.uploads.options = dataclasses.replace(base, **settings) if settings else base

    def upload_progress(
        self, prefix: str = "/_upload_progress", store: ProgressStore | None = None
    ) -> UploadProgress:
        """Record progress of uploads with ``_upload_id`` and serve it as JSON at ``prefix``."""
        from ..files import UploadProgress

        if store is not None or self.uploads.progress is None:
            self.uploads.progress = store or ProgressTable()
        plugin = UploadProgress(self.uploads.progress)
        self.register(plugin, prefix=prefix)
        return plugin

    # --- the Site interface used by Context ----------------------------------------

    @property
    def http_auth(self) -> Guard | None:
        """HTTP authentication every methlet requires unless its plugin or itself says
        otherwise (``dibble.auth.HTTPAuth``)."""
        return self.router.guard

    @http_auth.setter
    def http_auth(self, guard: Guard | None) -> None:
        self.router.guard = guard
        self.router.cache.clear()

    def application(self, stop: Callable[[], None]) -> Dispatcher:
        self._dispatcher = self.site.dispatcher(self, stop)
        self._dispatcher.uploads = self.uploads
        if self.sessions is not None:
            self.sessions.bind(self.plugins)  # their session cleanup hooks
        if self.housekeeping is None:
            from ..housekeeping import default_housekeeping  # a feature on this layer

            self.housekeeping = default_housekeeping(self)
        from ..stats._wiring import install  # statistics: a feature on this layer

        install(self, self._dispatcher)
        return self._dispatcher

    def listening(self, listener: Listener) -> None:
        self.listeners.append(listener)
        if self.housekeeping is not None:
            self.housekeeping.start(listener.loop)

    def closed(self) -> None:
        self.listeners = []
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self.housekeeping is not None:
            self.housekeeping.stop()
            if self.housekeeping.made_by_default:
                self.housekeeping = None
        if self.statistics is not None:
            from ..stats._wiring import uninstall

            uninstall(self)  # a last flush
        if self.sessions is not None:
            self.sessions.release_loops()  # the store's connections on this loop
            if self.sessions.made_by_default:
                self.sessions.close()
                self.sessions = None
        if self.auth is not None and self.auth.made_by_default:
            self.auth.close()
            self.auth = None

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
