"""The request head, as the parser hands it over.

One ``RequestHead`` per request.  The parser fills the slots it needs for
framing; everything else (decoded path, query string, header mapping) is
derived on first use, because most handlers never look at most of it.
"""

from __future__ import annotations

from urllib.parse import unquote

from ._headers import Headers

_EMPTY: list[tuple[bytes, bytes]] = []  # replaced by the parser, never appended to


class RequestHead:
    """Method, target, version and header fields of one request."""

    __slots__ = (
        "_headers",
        "_path",
        "chunked",
        "content_length",
        "expect_continue",
        "keep_alive",
        "method",
        "raw_headers",
        "target",
        "upgrade",
        "version",
    )

    def __init__(self) -> None:
        self.method = "GET"
        #: The request target exactly as sent, e.g. ``b"/spam?x=1"``.
        self.target = b""
        self.version = "1.1"
        #: ``(lower-cased name, value)`` pairs in arrival order.
        self.raw_headers: list[tuple[bytes, bytes]] = _EMPTY
        self.keep_alive = True
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.upgrade = False
        self._path: str | None = None
        self._headers: Headers | None = None

    @property
    def raw_path(self) -> str:
        """The path part of the target, still percent-encoded."""
        target = self.target
        if target[:1] != b"/":
            target = _origin_form(target)
        end = target.find(b"?")
        if end >= 0:
            target = target[:end]
        return target.decode("latin-1")

    @property
    def path(self) -> str:
        """The percent-decoded path (UTF-8), without the query string."""
        if self._path is None:
            self._path = unquote(self.raw_path, errors="replace")
        return self._path

    @property
    def query_string(self) -> str:
        """Everything after the first ``?``, undecoded; empty when absent."""
        target = self.target
        start = target.find(b"?")
        if start < 0:
            return ""
        return target[start + 1 :].decode("latin-1")

    @property
    def headers(self) -> Headers:
        """The header fields, by case-insensitive name."""
        if self._headers is None:
            self._headers = Headers(self.raw_headers)
        return self._headers

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.target!r} HTTP/{self.version}>"


def _origin_form(target: bytes) -> bytes:
    """Reduce an absolute-form target (``http://host/p?q``) to ``/p?q``."""
    scheme_end = target.find(b"://")
    if scheme_end < 0:
        return b"/" if target == b"*" else b"/" + target
    path_start = target.find(b"/", scheme_end + 3)
    if path_start < 0:
        query = target.find(b"?", scheme_end + 3)
        return b"/" + (target[query:] if query >= 0 else b"")
    return target[path_start:]
