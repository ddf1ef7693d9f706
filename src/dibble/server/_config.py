"""How a listening server behaves: address, timeouts, caps and modes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..http import Limits


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of one listening server, validated on construction.

    Timeouts are in seconds.  ``header_timeout`` bounds the time from the
    first byte of a request to the end of its header block (slow-loris
    protection: 408 and close); ``body_timeout`` is the longest pause allowed
    while a body is arriving; ``keep_alive_timeout`` how long an idle
    connection is kept open between requests.
    """

    host: str = "127.0.0.1"
    port: int = 8888
    limits: Limits = field(default_factory=Limits)
    keep_alive_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    #: Connections beyond this many are answered 503 and closed.
    max_connections: int = 10_000
    #: Complete requests queued behind the one being answered before the
    #: server stops reading from that client.
    max_pipeline: int = 32
    #: How long in-flight requests may run on after a shutdown is asked for.
    graceful_timeout: float = 10.0
    backlog: int = 1024
    #: Test mode: tracebacks in 500 pages, logs to the screen.
    test_mode: bool = False
    access_log: bool = True
    #: Threads for methlets marked blocking.
    blocking_threads: int = 32
    #: A sync methlet run on the event loop for longer than this is logged.
    slow_callback_threshold: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {self.port}")
        for name in ("keep_alive_timeout", "header_timeout", "body_timeout", "graceful_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_connections", "max_pipeline", "backlog", "blocking_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
