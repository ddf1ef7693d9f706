"""Size limits the parser enforces, with defaults safe for a public port."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a request the server is willing to hold.

    ``max_request_line`` bounds the request target (414 past it),
    ``max_header_bytes`` and ``max_header_count`` the header block (431), and
    ``max_body_size`` the body unless a methlet declares its own limit (413).
    """

    max_request_line: int = 8 * KIB
    max_header_bytes: int = 64 * KIB
    max_header_count: int = 100
    max_body_size: int = 16 * MIB

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_header_bytes", "max_header_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")
        if self.max_body_size < 0:
            raise ValueError("Limits.max_body_size must not be negative")
