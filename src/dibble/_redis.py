"""The redis-py client that dibble's Redis stores use (sessions, statistics, the lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = ["redis_client"]


def redis_client(url: str, *, timeout: float, user: str, quick_retry: bool = True) -> redis.Redis:
    """A client of the Redis server at ``url``, ``timeout`` seconds for connecting and
    for every command.

    ``user`` names what needs it, for the error when the ``redis`` package
    is missing.  ``quick_retry``: one retry at once, which covers a pooled
    connection that a Redis restart closed (more would multiply the wait when
    Redis is really down); otherwise redis-py's own retries.
    """
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(f"{user} needs the redis package: pip install 'dibble[redis]'") from None
    extra: dict[str, Any] = {"retry": Retry(NoBackoff(), 1)} if quick_retry else {}
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, **extra
    )
