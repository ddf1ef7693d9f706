"""``Plugin``: the base class of everything that serves methlets.

A plugin is a plain object whose ``on<Name>`` methods answer ``/<name>``.  One
plugin instance serves every request, concurrently, so per-request state
never lives on the plugin: ``self.request`` and the writer methods reach the
request in progress through a context variable that dibble sets around each
call (on the event loop, in a task, or in a worker thread alike).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar

from ._errors import HTTPError
from ._request import Request
from ._writer import ResponseWriter

if TYPE_CHECKING:
    from ..sessions import Session
    from ._routing import Guard

F = TypeVar("F", bound=Callable[..., Any])

current_request: Final[ContextVar[Request]] = ContextVar("dibble.current_request")


def get_request() -> Request:
    """The request being answered in this context; RuntimeError outside one."""
    try:
        return current_request.get()
    except LookupError:
        raise RuntimeError("no request is being answered in this context") from None


_SESSION_FOR: Callable[[Request, Any], Session] | None = None


def _session_for() -> Callable[[Request, Any], Session]:
    # Sessions are a feature built on this layer: imported on first use, and
    # the function kept, since an import statement costs a little every time.
    global _SESSION_FOR
    if _SESSION_FOR is None:
        from ..sessions import session_for

        _SESSION_FOR = session_for
    return _SESSION_FOR


def blocking(func: F) -> F:
    """Mark a sync methlet as blocking: it runs in the server's thread pool."""
    func.__dibble_blocking__ = True  # type: ignore[attr-defined]
    return func


def max_body_size(size: int) -> Callable[[F], F]:
    """Let a methlet accept request bodies of up to ``size`` bytes (413 beyond)."""
    if size < 0:
        raise ValueError("max_body_size must not be negative")

    def mark(func: F) -> F:
        func.__dibble_max_body__ = size  # type: ignore[attr-defined]
        return func

    return mark


class Plugin:
    """Subclass this and add ``on<Name>`` methlets.

    Class attributes: ``blocking = True`` runs every sync methlet of the
    plugin in the thread pool; ``max_body_size`` overrides the server's
    request body limit for the plugin's methlets.
    """

    blocking: ClassVar[bool] = False
    max_body_size: ClassVar[int | None] = None
    #: The name this plugin's session data is kept under (default: module.Class).
    session_service: ClassVar[str | None] = None
    #: How long this plugin's session data lives unused, in seconds (None: the pool's).
    session_lifetime: ClassVar[float | None] = None
    #: HTTP authentication for every methlet (``dibble.auth.HTTPAuth``); None
    #: uses the server's, False none.
    http_auth: Guard | Literal[False] | None = None

    #: Attribute names that look like methlets but are dibble's own API.
    _not_methlets: ClassVar[frozenset[str]] = frozenset()

    @property
    def request(self) -> Request:
        """The request this plugin is answering in the current context."""
        return get_request()

    def _writer(self) -> ResponseWriter:
        return ResponseWriter.of(get_request())

    @property
    def session(self) -> Session:
        """This plugin's data in the client's session: a dict of JSON values.

        Loaded the first time a request reads it, saved (if changed) when the
        response head goes out; see docs/sessions.md.
        """
        # (The request without get_request's call: a session route reads this every time.)
        request = current_request.get(None)
        return (_SESSION_FOR or _session_for())(
            request if request is not None else get_request(), self
        )

    def get_user_session(self) -> Session:
        """``self.session`` (the Astro-WISE name)."""
        return self.session

    def set_user_session(self, data: Mapping[str, Any]) -> None:
        """Make this plugin's session data exactly ``data``."""
        self.session.replace(data)

    def session_expired(self, data: dict[str, Any]) -> None:
        """Override to clean up after a session: called with this plugin's data of a
        session that expired (by the periodic cleanup, in a worker thread)."""

    session_expired.__dibble_default__ = True  # type: ignore[attr-defined]

    def write_ok_headers(
        self,
        content_type: str = "text/html; charset=utf-8",
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Start a 200 response of ``content_type``; sent with the first flush."""
        self._writer().set_head(200, content_type, extra_headers)

    def write_headers(
        self,
        status: int,
        content_type: str = "text/html; charset=utf-8",
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Like ``write_ok_headers`` with any status."""
        self._writer().set_head(status, content_type, extra_headers)

    def write(self, content: str | bytes) -> None:
        """Append to the response body (text is sent as UTF-8)."""
        self._writer().write(content)

    def write_error(self, code: int, message: str = "") -> None:
        """Answer with the error page for ``code``, replacing anything unsent."""
        self._writer().write_error(code, message)

    def flush(self) -> Awaitable[None]:
        """Send what was written so far (chunked); await it to wait for a slow client."""
        return self._writer().flush()

    def close(self) -> None:
        """End the response now and close the connection after it."""
        self._writer().close()

    def on_unknown(self, path: str, params: Mapping[str, list[str]]) -> Any:
        """Answer a URL no methlet serves; the default is a 404."""
        raise HTTPError(404, f"no page at {path}")

    def on_incoming_connection(self, sock: socket.socket) -> bool:
        """Return False to refuse a connection before anything is read from it."""
        return True

    def _vetoes_connections(self) -> bool:
        # Only plugins that override the hook cost anything per connection.
        return type(self).on_incoming_connection is not Plugin.on_incoming_connection
