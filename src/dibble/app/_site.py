"""What an ``HTTPServer`` knows beyond its address: the site's settings.

``Site`` holds the configuration (``dibble.config.Config``) and what is
derived from it once: the secret key, the template loader, and the
dispatcher that applies access lists, trusted proxies, virtual hosts and
maintenance mode (``_gate.py``).  ``apply_config`` turns a configuration
into a server: listening settings, services, default service, and checks
that what the configuration names exists, raising ``ConfigError`` naming
the setting when it does not.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import secrets
import threading
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from ..config import Config, ConfigError, import_object
from ..config import describe_value as _q
from ..http import Limits
from ..ops import load_or_create_secret
from ._plugin import Plugin
from ._request import Request
from ._routing import Endpoint

if TYPE_CHECKING:
    from ..templates import TemplateLoader
    from ._dispatch import Dispatcher
    from ._gate import SiteDispatcher
    from ._server import HTTPServer

__all__ = ["ServiceClass", "Site", "apply_config", "register_service", "server_of"]

error_log: Final = logging.getLogger("dibble.error")


class ServiceClass(Protocol):
    """A class that can be a service by itself (``dibble.Page`` subclasses)."""

    @classmethod
    def as_endpoint(cls, url_name: str, server: HTTPServer) -> Endpoint: ...


class Site:
    """The settings of one server and what is made from them, lazily and once."""

    def __init__(self, settings: Config | None = None) -> None:
        self._settings = settings or Config()
        self._secret: bytes | None = None
        self._templates: TemplateLoader | None = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> Config:
        """The configuration; a new one takes effect when the server next starts."""
        return self._settings

    @settings.setter
    def settings(self, settings: Config) -> None:
        # What was derived from the old settings is derived again on use.
        with self._lock:
            self._settings = settings
            self._secret = None
            self._templates = None

    @property
    def secret_key(self) -> bytes:
        """The key that signs url objects (and later sessions and tokens).

        ``[server] secret_key`` when set; else the key kept in ``[paths]
        data_dir`` (made on first use); else a random key that lives as long
        as the process, with a warning that signed values will not survive a
        restart.
        """
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    self._secret = self._load_secret()
        return self._secret

    def _load_secret(self) -> bytes:
        settings = self.settings
        if settings.server.secret_key:
            return settings.server.secret_key.encode("utf-8")
        if settings.paths.data_dir:
            return load_or_create_secret(settings.paths.data_dir)
        error_log.warning(
            "no [server] secret_key or [paths] data_dir: using a temporary secret key; "
            "signed values will not survive a restart"
        )
        return secrets.token_urlsafe(48).encode("ascii")

    @property
    def template_loader(self) -> TemplateLoader | None:
        """A loader for ``[paths] templates``; None when no folder is configured."""
        folder = self.settings.paths.templates
        if not folder:
            return None
        if self._templates is None:
            from ..templates import TemplateLoader  # a feature built on this layer

            with self._lock:
                if self._templates is None:
                    self._templates = TemplateLoader(
                        folder, warn_on_not_used_vars=self.settings.server.test_mode
                    )
        return self._templates

    def maintenance_file(self) -> str | None:
        """The maintenance file watched, or None when maintenance mode is off."""
        section = self.settings.maintenance
        if not section.enabled:
            return None
        if os.path.isabs(section.file):
            return section.file
        root = self.settings.paths.root
        return os.path.join(root, section.file) if root else None

    def dispatcher(self, server: HTTPServer, stop: Callable[[], None]) -> Dispatcher:
        """The application object for ``server``: gated only when something is on."""
        from ._gate import Gate, GatedDispatcher, SiteDispatcher

        gate = Gate.from_site(self)
        if gate is None:
            return SiteDispatcher(server.router, server.config, stop, server)
        return GatedDispatcher(server.router, server.config, stop, server, gate)


def server_of(request: Request) -> HTTPServer | None:
    """The ``HTTPServer`` answering ``request``, when it is answered by one."""
    conn = request.conn
    if conn is None:
        return None
    app = conn.app
    return app.server if isinstance(app, _site_dispatcher()) else None


_SITE_DISPATCHER: list[type[SiteDispatcher]] = []


def _site_dispatcher() -> type[SiteDispatcher]:
    # Imported on first use (the gate module imports this one), and kept:
    # an import statement costs a little every time.
    if not _SITE_DISPATCHER:
        from ._gate import SiteDispatcher

        _SITE_DISPATCHER.append(SiteDispatcher)
    return _SITE_DISPATCHER[0]


def register_service(server: HTTPServer, name: str, target: Any) -> None:
    """Serve ``target`` at ``/name``: a Page class, a plugin, a Plugin class or an import path."""
    if isinstance(target, str):
        target = import_object(target)
    prefix = "/" + name
    if isinstance(target, Plugin):
        server.register(target, prefix=prefix)
    elif inspect.isclass(target) and issubclass(target, Plugin):
        try:
            plugin = target()
        except TypeError as exc:
            raise TypeError(
                f"cannot create {target.__name__}() without arguments: {exc}"
            ) from None
        server.register(plugin, prefix=prefix)
    elif inspect.isclass(target) and callable(getattr(target, "as_endpoint", None)):
        service = typing.cast(type[ServiceClass], target)
        server.router.register_endpoint(name, service.as_endpoint(name, server))
    else:
        raise TypeError(
            f"{target!r} is not a dibble.Page class, a dibble.Plugin or a Plugin class"
        )


def server_settings(config: Config, only: frozenset[str] | None = None) -> dict[str, Any]:
    """``ServerConfig`` keyword arguments from ``[server]``, ``[limits]`` and ``[logging]``.

    With ``only``, just the settings named there (dotted, as in
    ``Config.given``): what a file or the command line set explicitly.
    """
    server = config.server
    names = (
        "host",
        "port",
        "test_mode",
        "keep_alive_timeout",
        "header_timeout",
        "body_timeout",
        "graceful_timeout",
        "max_connections",
        "max_pipeline",
        "backlog",
        "blocking_threads",
        "slow_callback_threshold",
    )
    settings = {n: getattr(server, n) for n in names if only is None or f"server.{n}" in only}
    limit_names = [f.name for f in dataclasses.fields(config.limits)]
    if only is None or any(f"limits.{n}" in only for n in limit_names):
        settings["limits"] = Limits(**{n: getattr(config.limits, n) for n in limit_names})
    log = config.logging
    if only is None or {"logging.access_log", "logging.performance_log"} & only:
        # The performance log is written with the access log's line.
        settings["access_log"] = log.access_log or log.performance_log
    return settings


def apply_config(
    server: HTTPServer, config: Config, *, explicit_only: bool = False, prepare: bool = True
) -> None:
    """Configure ``server`` from ``config``: settings, services, default service.

    With ``explicit_only`` the server's own listening settings are kept
    except where the configuration set them explicitly (a server defined in
    code, served with a config file).  Raises ``ConfigError`` naming the
    setting for a service that cannot be served or a name that does not
    exist.  ``prepare`` also makes what the start needs (the secret key in
    the data folder), so that a folder that cannot be written fails now.
    """
    try:
        _apply(server, config, explicit_only, prepare)
    except ConfigError as exc:
        exc.source = exc.source or config.source or None
        raise


def _apply(server: HTTPServer, config: Config, explicit_only: bool, prepare: bool) -> None:
    only = config.given if explicit_only else None
    server.configure(**server_settings(config, only))
    server.site.settings = config
    for name, target in config.services.items():
        try:
            register_service(server, name, target)
        except (ImportError, TypeError, ValueError) as exc:
            raise ConfigError(f"[services] {name}", str(exc)) from None
    services = set(server.router.services)
    default = config.server.default_service
    if default:
        if default not in services:
            raise ConfigError("[server] default_service", f"no service named {_q(default)}")
        server.router.set_default_service(default)
    for host, vhost in config.vhosts.hosts.items():
        where = f'[vhosts.hosts."{host}"]'
        for name in (*vhost.services, *([vhost.default_service] if vhost.default_service else [])):
            if name not in services:
                raise ConfigError(where, f"no service named {_q(name)}")
    templates = config.paths.templates
    if templates and not os.path.isdir(templates):
        raise ConfigError("[paths] templates", f"no such folder: {templates}")
    cleanup_class = config.housekeeping.cleanup_class
    if cleanup_class:
        from ..housekeeping import load_cleanup_class  # features built on this layer

        try:
            load_cleanup_class(cleanup_class)
        except (ImportError, TypeError) as exc:
            raise ConfigError("[housekeeping] cleanup_class", str(exc)) from None
    if config.admin.enabled:
        from ..admin import mount_admin

        try:
            mount_admin(server, config.admin.prefix)
        except ValueError as exc:
            raise ConfigError("[admin] prefix", str(exc)) from None
    if prepare and not config.server.secret_key and config.paths.data_dir:
        # Made now, so a data folder that cannot be written fails the start.
        try:
            server.site.secret_key  # noqa: B018 - loads or creates the key
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(
                "[paths] data_dir", f"cannot keep the secret key: {reason}"
            ) from None
