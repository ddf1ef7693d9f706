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

Services (``/info`` served by a ``dibble.Page`` class, say) use the same
core: a service is a mount whose prefix is its URL name, holding either
plugins or one ``Endpoint``, a callable that answers the whole URL name
itself.  The router knows nothing of pages; ``Page.as_endpoint`` makes the
endpoint.  ``default_service`` makes ``/`` answer what ``/<name>`` answers.
"""

from __future__ import annotations

import asyncio
import dis
import functools
import inspect
import mimetypes
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, cast
from urllib.parse import unquote

from ._params import Binder
from ._plugin import Plugin, get_request
from ._render import HTML_FIELD, content_type_field
from ._writer import THREAD_MODE

if TYPE_CHECKING:
    from ._request import Request

#: Checks a request before its methlet runs; raises ``HTTPError`` to refuse it
#: (HTTP authentication: ``dibble.auth.HTTPAuth``).
Guard: TypeAlias = Callable[["Request"], None]

INLINE: Final = 0
ASYNC: Final = 1
THREAD: Final = THREAD_MODE
#: An inline or async route that a feature prepares and finishes with async
#: steps around the methlet (sessions loaded and saved in batches).
PREPARED: Final = 3


class Pending:
    """A step that finishes later, such as a batch of store I/O.

    ``then(callback)`` has ``callback(error)`` called once it is finished,
    with None or the exception it failed with (at once when it already is).
    No task and no future: a sync methlet of a prepared route runs from such
    a callback, so waiting for a batch costs no more than a function call.
    A coroutine may also ``await`` it.
    """

    __slots__ = ("_callback", "_done", "_error", "_more")

    def __init__(self) -> None:
        # One callback (the common case) needs no list.
        self._callback: Callable[[BaseException | None], None] | None = None
        self._more: list[Callable[[BaseException | None], None]] | None = None
        self._done = False
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done

    def then(self, callback: Callable[[BaseException | None], None]) -> None:
        if self._done:
            callback(self._error)
        elif self._callback is None:
            self._callback = callback
        elif self._more is None:
            self._more = [callback]
        else:
            self._more.append(callback)

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the step finished (or failed with ``error``) and run the callbacks."""
        if self._done:
            return
        self._done = True
        self._error = error
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(error)
        more, self._more = self._more, None
        if more is not None:
            for callback in more:
                callback(error)

    def __await__(self) -> Generator[Any, None, None]:
        if not self._done:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def wake(error: BaseException | None) -> None:
                if not future.done():
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)

            self.then(wake)
            yield from future.__await__()
        if self._error is not None:
            raise self._error


class Preparation(Protocol):
    """Steps around a methlet: ``before`` it runs and ``after`` it returns.

    Either returns None when it is done at once, or a ``Pending`` to wait
    for.  A feature that batches I/O over concurrent requests (the session
    pool) attaches one to a route with ``Route.prepare``.
    """

    def before(self, request: Request) -> Pending | None: ...

    def after(self, request: Request) -> Pending | None: ...


_METHLET_NAME: Final = re.compile(r"on[A-Z][A-Za-z0-9]*")
_WORD_BREAK: Final = re.compile(r"[.\-_]")
_OCTET_STREAM: Final = content_type_field("application/octet-stream")
_CACHE_SIZE: Final = 4096


class Route:
    """A resolved methlet call, minus the request's own parameters."""

    __slots__ = (
        "binder",
        "bytes_type",
        "drive",
        "func",
        "max_body",
        "mode",
        "name",
        "plugin",
        "preparation",
        "prepared_mode",
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
        name: str | None = None,
    ) -> None:
        self.plugin = plugin
        self.func = func
        self.binder = binder
        self.segments = segments
        self.mode = mode
        self.max_body = max_body
        self.unknown = unknown
        self.name = name or f"{type(plugin).__name__}.{getattr(func, '__name__', '?')}"
        self.str_type, self.bytes_type = _default_types(path)
        #: An inline route whose methlet is a coroutine that never suspends.
        self.drive = mode == INLINE and inspect.iscoroutinefunction(func)
        #: See ``prepare``; the mode the route had before.
        self.preparation: Preparation | None = None
        self.prepared_mode = mode

    def prepare(self, preparation: Preparation) -> bool:
        """Run this route's methlet between ``preparation``'s steps from now on.

        Only inline and async routes can be prepared (a thread-pool methlet
        does its I/O in its thread); returns whether this one was.
        """
        if self.mode not in (INLINE, ASYNC) or self.unknown:
            return self.preparation is preparation
        self.preparation = preparation
        self.prepared_mode = self.mode
        self.mode = PREPARED
        return True

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


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A callable that answers every request for one URL name (a service).

    ``func`` is called with no arguments (the request is ``get_request()``),
    or with the further path segments when ``subpaths`` is true.  ``mode``
    is ``INLINE``, ``ASYNC`` (``func`` is a coroutine function) or
    ``THREAD``; ``max_body`` None means the server's limit.
    """

    func: Callable[..., Any]
    name: str
    mode: int = INLINE
    max_body: int | None = None
    subpaths: bool = False


class _Mount:
    __slots__ = ("endpoint", "plugins", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.plugins: list[Plugin] = []
        self.endpoint: Endpoint | None = None


class Router:
    """Registered plugins by mount prefix, and the route cache."""

    def __init__(self, default_max_body: int) -> None:
        self.default_max_body = default_max_body
        self._mounts: list[_Mount] = []
        self._binders: dict[Any, Binder] = {}
        #: The service ``/`` answers, when not empty.
        self.default_service = ""
        #: Resolved routes by raw path; the dispatcher reads it directly.
        self.cache: dict[bytes, Route] = {}
        #: Routes of paths no methlet claims (a mount's ``on_unknown``: static
        #: files, 404s), apart, so that clients asking for ever new paths churn
        #: only this one.  Resolving such a path costs about as much as a whole
        #: plaintext request.
        self.unknown_cache: dict[bytes, Route] = {}
        #: The server's guard (HTTP authentication), for every route whose
        #: plugin or methlet does not name its own.
        self.guard: Guard | None = None

    @property
    def plugins(self) -> list[Plugin]:
        return [p for m in self._mounts for p in m.plugins]

    def _mount(self, prefix: str) -> _Mount:
        for mount in self._mounts:
            if mount.prefix == prefix:
                return mount
        mount = _Mount(prefix)
        self._mounts.append(mount)
        self._mounts.sort(key=lambda m: len(m.prefix), reverse=True)
        return mount

    @property
    def services(self) -> list[str]:
        """The URL names something is mounted at (prefixes of one segment)."""
        return [m.prefix[1:] for m in self._mounts if m.prefix.count("/") == 1]

    def register_endpoint(self, name: str, endpoint: Endpoint) -> None:
        """Let ``endpoint`` answer ``/name`` (and below it, if it takes subpaths)."""
        prefix = "/" + name.strip("/")
        if prefix == "/":
            raise ValueError("an endpoint needs a URL name; use default_service for /")
        mount = self._mount(prefix)
        if mount.plugins or mount.endpoint is not None:
            raise ValueError(f"something is already served at {prefix}")
        self._binder(endpoint.func)
        mount.endpoint = endpoint
        self.cache.clear()
        self.unknown_cache.clear()

    def set_default_service(self, name: str) -> None:
        """Make ``/`` answer what ``/name`` answers ("" to undo)."""
        self.default_service = name.strip("/")
        self.cache.clear()
        self.unknown_cache.clear()

    def register(self, plugin: Plugin, prefix: str = "") -> None:
        if not isinstance(plugin, Plugin):
            raise TypeError(f"{plugin!r} is not a dibble.Plugin instance")
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        mount = self._mount(prefix)
        if mount.endpoint is not None:
            raise ValueError(f"a service is already served at {prefix}")
        mount.plugins.append(plugin)
        # Check every methlet's signature now, so a bad annotation fails at
        # start-up rather than on the first request that reaches it.
        for name in dir(type(plugin)):
            if _METHLET_NAME.fullmatch(name) and name not in plugin._not_methlets:
                attr = getattr(plugin, name, None)
                if callable(attr):
                    self._binder(attr)
        self.cache.clear()
        self.unknown_cache.clear()

    def _binder(self, func: Callable[..., Any]) -> Binder:
        key = getattr(func, "__func__", func)
        binder = self._binders.get(key)
        if binder is None:
            binder = self._binders[key] = Binder(func)
        return binder

    def resolve(self, raw_path: bytes) -> Route:
        """The route for a raw (still percent-encoded) path; never None."""
        route = self.cache.get(raw_path) or self.unknown_cache.get(raw_path)
        if route is not None:
            return route
        route = self._resolve(raw_path.decode("latin-1"))
        cache = self.unknown_cache if route.unknown else self.cache
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[raw_path] = route
        return route

    def _resolve(self, path: str) -> Route:
        # ``path`` is still percent-encoded: it is split into segments first and
        # each segment decoded after, so an encoded "/" stays inside its segment.
        if self.default_service and path == "/":
            path = "/" + self.default_service
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
        endpoint = mount.endpoint
        if endpoint is not None:
            segments = tuple(parts) if stripped else ()
            if segments and not endpoint.subpaths:
                return self._unknown(mount, _decode(path))
            handler = endpoint.func
            max_body = self.default_max_body if endpoint.max_body is None else endpoint.max_body
            return Route(
                _NOWHERE,
                self._guarded(None, handler),
                self._binder(handler),
                segments,
                endpoint.mode,
                max_body,
                path,
                name=endpoint.name,
            )
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
                    self._guarded(plugin, func),
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
            self._guarded(None, func),
            _UNKNOWN_BINDER,
            (),
            _mode(plugin, func),
            self._max_body(plugin, func),
            path,
            unknown=True,
        )

    def _guarded(self, plugin: Plugin | None, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func``, behind the guard its methlet, its plugin or the server names.

        The most specific wins: a methlet's ``__dibble_http_auth__`` (None: no
        guard), then the plugin's ``http_auth`` (None: the server's; False:
        none), then the server's.  Resolved once per route, so an unguarded
        methlet is called as it is.
        """
        guard = getattr(func, "__dibble_http_auth__", _INHERIT)
        if guard is _INHERIT and plugin is not None:
            guard = getattr(plugin, "http_auth", None)
            if guard is None:
                guard = _INHERIT
        if guard is _INHERIT:
            guard = self.guard
        if not guard:
            return func
        return _with_guard(func, cast(Guard, guard))

    def _max_body(self, plugin: Plugin, func: Callable[..., Any]) -> int:
        size = getattr(func, "__dibble_max_body__", None)
        if size is None:
            size = plugin.max_body_size
        return self.default_max_body if size is None else int(size)


def _decode(segment: str) -> str:
    return unquote(segment, errors="replace")


def _mode(plugin: Plugin, func: Callable[..., Any]) -> int:
    if inspect.iscoroutinefunction(func):
        # An async methlet that cannot suspend runs inline like a sync one:
        # the Route drives its coroutine to the end at once (see ``drive``).
        return INLINE if never_suspends(func) else ASYNC
    if getattr(func, "__dibble_blocking__", False) or plugin.blocking:
        return THREAD
    return INLINE


# Opcodes with which a coroutine can give control back to the event loop.
_SUSPENDING: Final = frozenset(
    dis.opmap[name]
    for name in ("GET_AWAITABLE", "SEND", "YIELD_VALUE", "BEFORE_ASYNC_WITH", "GET_AITER")
    if name in dis.opmap
)
_never_suspends_cache: dict[Any, bool] = {}


def never_suspends(func: Callable[..., Any]) -> bool:
    """Whether coroutine function ``func`` has no ``await``, ``async for`` or ``async with``.

    Such a coroutine finishes on its first step, so it needs no task: running
    it inline saves a task and a loop iteration per request.  The one visible
    difference is that ``asyncio.current_task()`` is None inside it.
    """
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if code is None:
        return False
    known = _never_suspends_cache.get(code)
    if known is None:
        known = not any(i.opcode in _SUSPENDING for i in dis.get_instructions(code))
        _never_suspends_cache[code] = known
    return known


def _with_guard(func: Callable[..., Any], guard: Guard) -> Callable[..., Any]:
    # functools.wraps keeps the name, the signature (for binding) and the
    # markers (blocking, max_body_size) of the methlet.
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            guard(get_request())
            return await func(*args, **kwargs)

        return guarded_async

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        guard(get_request())
        return func(*args, **kwargs)

    return guarded


_INHERIT: Final = object()

_NOWHERE: Final = Plugin()

# ``on_unknown(path, params)`` is called with the path and the raw parameters,
# not with converted fields; this binder only marks that it takes arguments.
_UNKNOWN_BINDER: Final = Binder(lambda path, params: None)
