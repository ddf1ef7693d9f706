"""Password hashing with ``hashlib.scrypt``, parameters recorded in every hash.

A stored hash is a PHC string::

    $scrypt$ln=15,r=8,p=1$<salt>$<hash>

(``ln`` is log2 of scrypt's N; salt and hash are unpadded standard base64),
so each hash says how it was made: the defaults can be raised later and old
hashes still verify, and ``needs_rehash`` tells when a successful login
should store a stronger one.  Parameters read from a stored hash are bounded
(a tampered database must not make a login take minutes or gigabytes).

Passwords are NFC-normalised (as RFC 8265's OpaqueString profile asks) and
limited to ``MAX_PASSWORD_LENGTH`` characters; comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_PARAMS",
    "MAX_PASSWORD_LENGTH",
    "ScryptParams",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

#: Longer passwords are refused (hashing) or never match (verifying).
MAX_PASSWORD_LENGTH: Final = 1024

_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
_PHC: Final = re.compile(
    r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]{16,128})\$([A-Za-z0-9+/]{16,128})"
)


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt's cost: N = 2**ln, block size r, parallelism p."""

    ln: int = 15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.ln <= 20 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise ValueError(f"scrypt parameters out of range: {self}")

    @property
    def maxmem(self) -> int:
        """Memory scrypt needs for these parameters, with room to spare."""
        return 128 * self.r * ((1 << self.ln) + self.p + 2) + 1024 * 1024

    def __str__(self) -> str:
        return f"ln={self.ln},r={self.r},p={self.p}"


#: N = 32768, r = 8, p = 1: about 32 MiB and 50-100 ms per hash.
DEFAULT_PARAMS: Final = ScryptParams()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=1 << params.ln,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=_HASH_BYTES,
    )


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """A new salted scrypt hash of ``password``, as a PHC string."""
    if not isinstance(password, str) or not password:
        raise ValueError("a password must be a non-empty string")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"$scrypt${params}${_b64(salt)}${_b64(_derive(password, salt, params))}"


def parse_hash(stored: str) -> tuple[ScryptParams, bytes, bytes] | None:
    """The parameters, salt and hash of a stored hash; None if it is not one of ours."""
    match = _PHC.fullmatch(stored)
    if match is None:
        return None
    try:
        params = ScryptParams(int(match[1]), int(match[2]), int(match[3]))
        return params, _unb64(match[4]), _unb64(match[5])
    except (ValueError, binascii.Error):
        return None


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    parsed = parse_hash(stored)
    if parsed is None or not isinstance(password, str):
        return False
    params, salt, expected = parsed
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        # Still spend the time a real check would, so that the answer's
        # timing does not tell a long password from a wrong one.
        _derive("x", salt, params)
        return False
    return hmac.compare_digest(_derive(password, salt, params), expected)


def needs_rehash(stored: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """Whether ``stored`` was made with weaker parameters than ``params``."""
    parsed = parse_hash(stored)
    if parsed is None:
        return True
    old = parsed[0]
    return old.ln < params.ln or old.r < params.r or old.p < params.p
