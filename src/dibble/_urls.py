"""URLs in messages, logs and printed settings: never with their password."""

from __future__ import annotations

__all__ = ["without_password"]


def without_password(url: str) -> str:
    """``url`` with any password masked (``redis://user:***@host``), for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"
