"""HMAC signing with rotatable keys: the primitive under SSO tokens, CSRF tokens and nonces.

``Signer(keys)`` signs with the first key and accepts a signature made by
any of them, so a key is rotated by putting the new one first and keeping
the old one until what it signed has expired.  Each use signs under its own
*purpose* (``"sso"``, ``"csrf"``, ...), so a value signed for one use is
never valid for another.  Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["Signer", "b64decode", "b64encode"]


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """The inverse of ``b64encode``; ValueError for anything else."""
    if not text.isascii():
        raise ValueError("not base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


class Signer:
    """Signs with ``keys[0]``, verifies against every key in ``keys``."""

    def __init__(self, keys: Sequence[str | bytes] | str | bytes, *, min_length: int = 16) -> None:
        if isinstance(keys, str | bytes):
            keys = [keys]
        self.keys = [_key_bytes(k) for k in keys]
        if not self.keys:
            raise ValueError("a signer needs at least one key")
        for key in self.keys:
            if len(key) < min_length:
                raise ValueError(f"a signing key must have at least {min_length} bytes")

    def _mac(self, key: bytes, purpose: str, data: bytes) -> bytes:
        return hmac.new(key, purpose.encode("ascii") + b"\x00" + data, hashlib.sha256).digest()

    def sign(self, purpose: str, data: bytes) -> bytes:
        """The signature of ``data`` for ``purpose`` (32 bytes)."""
        return self._mac(self.keys[0], purpose, data)

    def verify(self, purpose: str, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` was made by one of the keys for ``purpose``."""
        ok = False
        for key in self.keys:
            # Every key is tried, whatever matched: the time taken does not
            # say which key signed.
            ok |= hmac.compare_digest(self._mac(key, purpose, data), signature)
        return ok
