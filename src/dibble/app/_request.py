"""``Request``: what a methlet can know about the request it answers.

It is the parser's ``RequestHead`` with the connection's facts and the body
added.  Parameters and cookies are parsed on first use only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..cookies import parse_cookies
from ..http import Headers, RequestHead
from ._errors import HTTPError

if TYPE_CHECKING:
    from ..server import HTTPProtocol
    from ..uploads import FormSink, Upload
    from ._routing import Route
    from ._writer import ResponseWriter

_NO_FIELDS: list[tuple[bytes, bytes]] = []  # replaced by the parser, never appended to

#: More fields than this in one query string or form is refused (400).
MAX_FIELDS = 1000


class Request(RequestHead):
    """One HTTP request, as seen by the application."""

    #: ``perf_counter()`` when the request reached the application; set only
    #: while the performance log is on (read with a default otherwise).
    started: float
    __slots__ = (
        "_cookies",
        "_params",
        "_remote_user",
        "body",
        "client",
        "conn",
        "form",
        "head_hooks",
        "route",
        "session_state",
        "started",
        "task",
        "tls",
        "writer",
    )

    def __init__(self) -> None:
        # Every field is set here rather than through RequestHead.__init__:
        # one request object is made per request, and the call is measurable.
        self.method = "GET"
        self.target = b""
        self.version = "1.1"
        self.raw_headers = _NO_FIELDS
        self.keep_alive = True
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.upgrade = False
        self._path: str | None = None
        self._headers: Headers | None = None
        #: The raw request body (empty for most GETs).
        self.body = b""
        #: The client's ``(address, port)``; None when unknown.
        self.client: tuple[str, int] | None = None
        self.tls = False
        self.conn: HTTPProtocol | None = None
        self.route: Route | None = None
        self.writer: ResponseWriter | None = None
        #: Called with the response's extra header fields just before its head is
        #: rendered (see ``ResponseWriter.add_head_hook``); None when there are none.
        self.head_hooks: list[Callable[[list[tuple[str, str]]], None]] | None = None
        #: The request's sessions (``dibble.sessions.RequestSessions``), made when
        #: a methlet first reads a session.
        self.session_state: Any = None
        #: The task running an async methlet for this request.
        self.task: asyncio.Task[None] | None = None
        self._params: dict[str, list[str]] | None = None
        self._cookies: dict[str, str] | None = None
        #: The streamed body's fields and files (multipart or raw uploads).
        self.form: FormSink | None = None

    @property
    def remote_user(self) -> str | None:
        """The user HTTP authentication (Basic or Digest) verified, if any."""
        user: str | None = getattr(self, "_remote_user", None)
        return user

    @remote_user.setter
    def remote_user(self, name: str | None) -> None:
        self._remote_user = name

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_ip(self) -> str | None:
        return self.client[0] if self.client else None

    @property
    def params(self) -> dict[str, list[str]]:
        """Query-string and urlencoded-form fields: name → values in order."""
        if self._params is None:
            self._params = self._parse_params()
        return self._params

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value of parameter ``name``, or ``default``."""
        values = self.params.get(name)
        return values[-1] if values else default

    def _parse_params(self) -> dict[str, list[str]]:
        params: dict[str, list[str]] = {}
        query = self.query_string
        if query:
            _add_fields(params, query)
        if self.body and self._content_type() == "application/x-www-form-urlencoded":
            try:
                form = self.body.decode("utf-8")
            except UnicodeDecodeError:
                raise HTTPError(400, "form body is not valid UTF-8") from None
            _add_fields(params, form)
        if self.form is not None:
            for key, value in self.form.fields:
                params.setdefault(key, []).append(value)
        return params

    @property
    def files(self) -> dict[str, list[Upload]]:
        """Uploaded files by form field name (a raw body streamed to a file is ``"body"``)."""
        return self.form.files if self.form is not None else {}

    def _content_type(self) -> str:
        for name, value in self.raw_headers:
            if name == b"content-type":
                return value.split(b";", 1)[0].strip().lower().decode("latin-1")
        return ""

    @property
    def cookies(self) -> dict[str, str]:
        """Request cookies by name (the first of duplicates wins, as browsers send)."""
        if self._cookies is None:
            # Malformed, nameless and oversized pairs are skipped, never an error.
            self._cookies = parse_cookies(v for n, v in self.raw_headers if n == b"cookie")
        return self._cookies


def _add_fields(params: dict[str, list[str]], text: str) -> None:
    try:
        fields = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise HTTPError(400, f"more than {MAX_FIELDS} parameters") from None
    for key, value in fields:
        values = params.get(key)
        if values is None:
            params[key] = [value]
        else:
            values.append(value)
