"""``Response``: a status, header fields and a body, returned by a methlet."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final


class Response:
    """A complete response.

    ``body`` may be ``bytes`` or ``str`` (encoded as UTF-8).  A
    ``content_type`` of ``None`` lets dibble choose: ``text/html`` for text,
    or from the URL's extension.  ``headers`` are extra fields; dibble adds
    ``Content-Length``, ``Date`` and ``Server`` itself.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status code: {status}")
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if content_type is None and isinstance(body, str):
            content_type = "text/html; charset=utf-8"
        self.content_type = content_type
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        elif isinstance(headers, Mapping):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        """``value`` as compact JSON (``application/json``)."""
        return cls(encode_json(value), status, content_type="application/json")

    @classmethod
    def redirect(cls, url: str, status: int = 303) -> Response:
        """Send the client to ``url`` (303 See Other unless told otherwise)."""
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"not a redirect status: {status}")
        return cls(b"", status, headers=[("Location", url)])

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.content_type} {len(self.body)} bytes>"


# One encoder for every response: json.dumps() with any non-default option
# builds a new JSONEncoder per call, which costs more than encoding a small
# document.
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: Any) -> bytes:
    return _JSON.encode(value).encode("utf-8")
