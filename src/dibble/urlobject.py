"""Passing a Python value through a URL or a form, safely.

``url_encode_object(value)`` turns a JSON-able value into a short URL-safe
string; ``url_decode_object(text)`` gives the value back, or answers 400 if
the text was changed, cut short, or signed with another key.

The format is ``<payload>.<signature>``, both base64url without padding:
``payload`` is a version byte and the zlib-compressed JSON of the value, and
``signature`` the HMAC-SHA256 of the payload text under the server's secret
key, bound to an optional ``purpose`` so that a value made for one form
cannot be replayed into another.  The signature is checked (in constant
time) before anything is decompressed or parsed, so unsigned input never
reaches zlib or the JSON parser; and decompression stops at ``max_size``
bytes, so even a signed value cannot expand without bound.

The value is JSON, never pickle: decoding cannot run code even with a
leaked key.  Tuples come back as lists and dict keys as strings, as JSON
has it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import zlib
from typing import Any, Final

from .app import HTTPError, get_request, server_of

__all__ = ["DEFAULT_MAX_SIZE", "BadURLObject", "url_decode_object", "url_encode_object"]

#: The largest decompressed JSON accepted by default (bytes).
DEFAULT_MAX_SIZE: Final = 1024 * 1024

#: The longest text accepted by default; a URL cannot usefully be longer.
_MAX_TEXT: Final = 64 * 1024

_VERSION: Final = b"\x01"
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE_LENGTH: Final = 43  # 32 bytes of HMAC-SHA256, base64url without padding


class BadURLObject(HTTPError):
    """A url object that was tampered with, truncated or is otherwise invalid (400)."""

    def __init__(self, problem: str) -> None:
        super().__init__(400, f"invalid url object: {problem}")
        self.problem = problem


def _key_bytes(key: bytes | str | None) -> bytes:
    if key is None:
        try:
            request = get_request()
        except RuntimeError:
            raise RuntimeError(
                "url_encode_object/url_decode_object need key= outside a request"
            ) from None
        server = server_of(request)
        if server is None:
            raise RuntimeError("this request has no dibble.HTTPServer to take a secret from")
        return server.secret_key
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(data) < 16:
        raise ValueError("a url object key must be at least 16 bytes")
    return data


def _sign(key: bytes, purpose: str, payload: str) -> str:
    message = b"dibble.urlobject\x00" + purpose.encode("utf-8") + b"\x00" + payload.encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def url_encode_object(value: Any, key: bytes | str | None = None, *, purpose: str = "") -> str:
    """``value`` (anything ``json.dumps`` takes) as a signed, URL-safe string.

    ``key`` defaults to the secret key of the server answering the current
    request.  ``TypeError`` for values JSON cannot hold.
    """
    secret = _key_bytes(key)
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    packed = _VERSION + zlib.compress(data.encode("utf-8"), 9)
    payload = base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")
    return f"{payload}.{_sign(secret, purpose, payload)}"


def url_decode_object(
    text: str,
    key: bytes | str | None = None,
    *,
    purpose: str = "",
    max_size: int = DEFAULT_MAX_SIZE,
) -> Any:
    """The value :func:`url_encode_object` encoded.

    Raises :class:`BadURLObject` (an ``HTTPError`` 400, so a methlet can let
    it propagate) when the text is not a url object signed with ``key`` for
    ``purpose``, or expands beyond ``max_size`` bytes.
    """
    secret = _key_bytes(key)
    if not isinstance(text, str):
        raise BadURLObject("not text")
    if len(text) > _MAX_TEXT:
        raise BadURLObject("too long")
    payload, dot, signature = text.strip().partition(".")
    if not dot or not payload or not signature:
        raise BadURLObject("missing signature (truncated?)")
    if not _BASE64URL.fullmatch(payload) or not _BASE64URL.fullmatch(signature):
        raise BadURLObject("not base64url")
    if len(signature) != _SIGNATURE_LENGTH or not hmac.compare_digest(
        signature, _sign(secret, purpose, payload)
    ):
        raise BadURLObject("signature does not match (tampered, truncated or another key)")
    # From here on the payload is known to be ours: failures below mean a
    # bug or a value made with a key that also signed something else.
    try:
        packed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise BadURLObject("not base64url") from None
    if packed[:1] != _VERSION:
        raise BadURLObject("unknown format version")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed[1:], max_size + 1)
    except zlib.error:
        raise BadURLObject("corrupt data") from None
    if len(data) > max_size or inflater.unconsumed_tail:
        raise BadURLObject(f"expands to more than {max_size} bytes")
    if not inflater.eof:
        raise BadURLObject("truncated data")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadURLObject("corrupt data") from None
