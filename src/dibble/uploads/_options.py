"""``UploadOptions``: how much of a streamed request body dibble accepts, and where it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..http import KIB

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """Limits and storage for bodies streamed to temporary files.

    The total size of a body is the request body limit (``ServerConfig.limits``
    or ``@dibble.max_body_size``), enforced before any byte reaches these
    rules.  Within it:

    ``max_parts``
        multipart parts in one form (413 beyond).
    ``max_field_size``
        bytes of one non-file form field, kept in memory (413 beyond).
    ``max_part_header_size``
        bytes of one header line of a part (413 beyond; a part may have at
        most 8 header lines).
    ``max_file_size``
        bytes of one uploaded file; None leaves only the body limit.
    ``temp_dir``
        where temporary files are made; None is the system's temporary
        directory.  Files there have no name (``O_TMPFILE`` where the file
        system allows, else unlinked at once), so nothing is left behind even
        if the process dies.
    ``raw``
        stream every body as one file (no form parsing), as PUT does.
    ``max_rate``
        bytes per second to read at most, per request; None is unlimited.
        Meant for demonstrations and tests of upload progress, and to keep
        one client from taking all of the disk's bandwidth.
    """

    max_parts: int = 128
    max_field_size: int = 64 * KIB
    max_part_header_size: int = 4 * KIB
    max_file_size: int | None = None
    temp_dir: str | None = None
    raw: bool = False
    max_rate: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_parts", "max_field_size", "max_part_header_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"UploadOptions.{name} must be at least 1")
        if self.max_file_size is not None and self.max_file_size < 0:
            raise ValueError("UploadOptions.max_file_size must not be negative")
        if self.max_rate is not None and self.max_rate < 1:
            raise ValueError("UploadOptions.max_rate must be at least 1 byte per second")


def upload_options(**options: Any) -> Callable[[F], F]:
    """Give one methlet its own ``UploadOptions``, e.g. ``@upload_options(max_parts=4)``."""
    chosen = UploadOptions(**options)

    def mark(func: F) -> F:
        func.__dibble_uploads__ = chosen  # type: ignore[attr-defined]
        return func

    return mark
