"""From a URL path to a methlet: the Dibbler naming rules.

``/`` calls ``onHome``, ``/spam`` calls ``onSpam``, ``/eggs.gif`` calls
``onEggsGif`` (``.``, ``-`` and ``_`` separate words), and further path
segments become positional arguments when the methlet declares positional
parameters (``/user/42`` → ``onUser("42")``); otherwise the path is unknown.
Only attributes named ``on`` + an upper-case ASCII letter + ASCII letters and
digits are ever exposed, and none that dibble's own base classes define.

Plugins can be mounted under a prefix; the longest matching prefix wins, and
its plugins are searched in registration order.  Resolved routes are cached
by raw path, so the common request costs one dictionary lookup.
"""

from __future__ import annotations

import inspect
import mimetypes
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

from ._params import Binder
from ._plugin import Plugin
from ._render import HTML_FIELD, content_type_field

INLINE: Final = 0
ASYNC: Final = 1
THREAD: Final = 2

_METHLET_NAME: Final = re.compile(r"on[A-Z][A-Za-z0-9]*")
_WORD_BREAK: Final = re.compile(r"[.\-_]")
_OCTET_STREAM: Final = content_type_field("application/octet-stream")
_CACHE_SIZE: Final = 4096


class Route:
    """A resolved methlet call, minus the request's own parameters."""

    __slots__ = (
        "binder",
        "bytes_type",
        "func",
        "max_body",
        "mode",
        "name",
        "plugin",
        "segments",
        "str_type",
        "unknown",
    )

    def __init__(
        self,
        plugin: Plugin,
        func: Callable[..., Any],
        binder: Binder,
        segments: tuple[str, ...],
        mode: int,
        max_body: int,
        path: str,
        unknown: bool = False,
    ) -> None:
        self.plugin = plugin
        self.func = func
        self.binder = binder
        self.segments = segments
        self.mode = mode
        self.max_body = max_body
        self.unknown = unknown
        self.name = f"{type(plugin).__name__}.{getattr(func, '__name__', '?')}"
        self.str_type, self.bytes_type = _default_types(path)

    def __repr__(self) -> str:
        return f"<Route {self.name} {self.segments!r}>"


def methlet_name(segment: str) -> str | None:
    """The methlet name for a first path segment, or None if it cannot be one."""
    if not segment:
        return "onHome"
    name = "on" + "".join(w[:1].upper() + w[1:] for w in _WORD_BREAK.split(segment))
    return name if _METHLET_NAME.fullmatch(name) else None


def _default_types(path: str) -> tuple[bytes, bytes]:
    """Content-Type fields for str and bytes results, guessed from the extension."""
    last = path.rsplit("/", 1)[-1]
    if "." in last:
        guessed, _ = mimetypes.guess_type(last, strict=False)
        if guessed:
            if guessed.startswith("text/") or guessed in ("application/javascript",):
                guessed += "; charset=utf-8"
            field = content_type_field(guessed)
            return field, field
    return HTML_FIELD, _OCTET_STREAM


class _Mount:
    __slots__ = ("plugins", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.plugins: list[Plugin] = []


class Router:
    """Registered plugins by mount prefix, and the route cache."""

    def __init__(self, default_max_body: int) -> None:
        self.default_max_body = default_max_body
        self._mounts: list[_Mount] = []
        self._binders: dict[Any, Binder] = {}
        #: Resolved routes by raw path; the dispatcher reads it directly.
        self.cache: dict[bytes, Route] = {}

    @property
    def plugins(self) -> list[Plugin]:
        return [p for m in self._mounts for p in m.plugins]

    def register(self, plugin: Plugin, prefix: str = "") -> None:
        if not isinstance(plugin, Plugin):
            raise TypeError(f"{plugin!r} is not a dibble.Plugin instance")
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        for mount in self._mounts:
            if mount.prefix == prefix:
                break
        else:
            mount = _Mount(prefix)
            self._mounts.append(mount)
            self._mounts.sort(key=lambda m: len(m.prefix), reverse=True)
        mount.plugins.append(plugin)
        # Check every methlet's signature now, so a bad annotation fails at
        # start-up rather than on the first request that reaches it.
        for name in dir(type(plugin)):
            if _METHLET_NAME.fullmatch(name) and name not in plugin._not_methlets:
                attr = getattr(plugin, name, None)
                if callable(attr):
                    self._binder(attr)
        self.cache.clear()

    def _binder(self, func: Callable[..., Any]) -> Binder:
        key = getattr(func, "__func__", func)
        binder = self._binders.get(key)
        if binder is None:
            binder = self._binders[key] = Binder(func)
        return binder

    def resolve(self, raw_path: bytes) -> Route:
        """The route for a raw (still percent-encoded) path; never None."""
        route = self.cache.get(raw_path)
        if route is not None:
            return route
        route = self._resolve(raw_path.decode("latin-1"))
        if not route.unknown:
            if len(self.cache) >= _CACHE_SIZE:
                self.cache.clear()
            self.cache[raw_path] = route
        return route

    def _resolve(self, path: str) -> Route:
        # ``path`` is still percent-encoded: it is split into segments first and
        # each segment decoded after, so an encoded "/" stays inside its segment.
        mount = None
        rest = path
        for candidate in self._mounts:
            prefix = candidate.prefix
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                mount = candidate
                rest = path[len(prefix) :] or "/"
                break
        if mount is None:
            return self._unknown(self._mounts[-1] if self._mounts else None, _decode(path))
        stripped = rest.strip("/")
        parts = [_decode(p) for p in stripped.split("/")] if stripped else [""]
        name = methlet_name(parts[0])
        segments = tuple(parts[1:])
        if name is not None:
            for plugin in mount.plugins:
                if name in plugin._not_methlets:
                    continue
                func = getattr(plugin, name, None)
                if func is None or not callable(func):
                    continue
                binder = self._binder(func)
                if not binder.accepts_segments(len(segments)):
                    continue
                return Route(
                    plugin,
                    func,
                    binder,
                    segments,
                    _mode(plugin, func),
                    self._max_body(plugin, func),
                    path,
                )
        return self._unknown(mount, _decode(path))

    def _unknown(self, mount: _Mount | None, path: str) -> Route:
        plugin = mount.plugins[0] if mount and mount.plugins else _NOWHERE
        func = plugin.on_unknown
        return Route(
            plugin,
            func,
            _UNKNOWN_BINDER,
            (),
            _mode(plugin, func),
            self._max_body(plugin, func),
            path,
            unknown=True,
        )

    def _max_body(self, plugin: Plugin, func: Callable[..., Any]) -> int:
        size = getattr(func, "__dibble_max_body__", None)
        if size is None:
            size = plugin.max_body_size
        return self.default_max_body if size is None else int(size)


def _decode(segment: str) -> str:
    return unquote(segment, errors="replace")


def _mode(plugin: Plugin, func: Callable[..., Any]) -> int:
    if inspect.iscoroutinefunction(func):
        return ASYNC
    if getattr(func, "__dibble_blocking__", False) or plugin.blocking:
        return THREAD
    return INLINE


_NOWHERE: Final = Plugin()

# ``on_unknown(path, params)`` is called with the path and the raw parameters,
# not with converted fields; this binder only marks that it takes arguments.
_UNKNOWN_BINDER: Final = Binder(lambda path, params: None)
