"""Response heads as bytes, with the common cases precomputed.

``render_head`` is the one place that decides the framing headers
(``Content-Length`` or chunked, ``Connection``) of every application
response, so the methlet styles cannot disagree about them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ..http import SERVER_NAME, encode_header_fields, status_line

SERVER_FIELD: Final = b"Server: " + SERVER_NAME.encode("ascii") + b"\r\n"
CLOSE_FIELD: Final = b"Connection: close\r\n"
KEEP_ALIVE_FIELD: Final = b"Connection: keep-alive\r\n"
CHUNKED_FIELD: Final = b"Transfer-Encoding: chunked\r\n"

HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"


def content_type_field(content_type: str) -> bytes:
    return encode_header_fields([("Content-Type", content_type)])


HTML_FIELD: Final = content_type_field(HTML)
JSON_FIELD: Final = content_type_field(JSON)


def connection_field(keep_alive: bool, version: str) -> bytes:
    """What to say about the connection: nothing for HTTP/1.1 keep-alive."""
    if not keep_alive:
        return CLOSE_FIELD
    return b"" if version == "1.1" else KEEP_ALIVE_FIELD


def has_field(headers: Iterable[tuple[str, str]], name: str) -> bool:
    return any(key.lower() == name for key, _ in headers)


_FRAMING: Final = ("content-length", "transfer-encoding")
# Encoded fields by (name, value): most responses repeat the same few
# ("Vary: Cookie", "Cache-Control: private"), and checking and encoding a
# field costs more than finding it.  Cleared when full.
_FIELDS: Final[dict[tuple[str, str], bytes]] = {}
_FIELDS_MAX: Final = 1024
# The same, for whole lists of fields: most responses with fields repeat one list.
_LISTS: Final[dict[tuple[tuple[str, str], ...], bytes]] = {}


def encode_extra_fields(headers: list[tuple[str, str]]) -> bytes:
    """``headers`` rendered (framing fields dropped: dibble sets its own)."""
    key = tuple(headers)
    try:
        whole = _LISTS.get(key)
    except TypeError:  # pairs given as lists: rendered, not kept
        return _encode_fields(headers)
    if whole is None:
        whole = _encode_fields(headers)
        if len(_LISTS) >= _FIELDS_MAX:
            _LISTS.clear()
        _LISTS[key] = whole
    return whole


def _encode_fields(headers: list[tuple[str, str]]) -> bytes:
    out = []
    for given in headers:
        # Pairs given as lists still render (they are only not cached).
        pair = given if type(given) is tuple else (given[0], given[1])
        field = _FIELDS.get(pair)
        if field is None:
            framing = pair[0].lower() in _FRAMING
            field = b"" if framing else encode_header_fields((pair,))
            if len(_FIELDS) >= _FIELDS_MAX:
                _FIELDS.clear()
            _FIELDS[pair] = field
        out.append(field)
    return b"".join(out)


def render_head(
    status: int,
    type_field: bytes,
    headers: list[tuple[str, str]],
    length: int | None,
    connection: bytes,
    date_field: bytes,
) -> bytes:
    """A complete response head.

    ``length`` None means the body is chunked (or, with a ``Connection:
    close`` field, delimited by closing the connection).  1xx, 204 and 304
    responses get no length field, as RFC 9110 demands.
    """
    extra = encode_extra_fields(headers) if headers else b""
    if status < 200 or status in (204, 304):
        framing = b""
    elif length is not None:
        framing = b"Content-Length: %d\r\n" % length
    elif connection is CLOSE_FIELD:
        framing = b""
    else:
        framing = CHUNKED_FIELD
    return b"".join(
        (
            status_line(status),
            type_field,
            framing,
            extra,
            connection,
            date_field,
            SERVER_FIELD,
            b"\r\n",
        )
    )
