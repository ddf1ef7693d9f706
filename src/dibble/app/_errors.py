"""Exceptions an application raises to answer with an HTTP error."""

from __future__ import annotations

from collections.abc import Iterable


class HTTPError(Exception):
    """Answer with ``status`` and an error page showing ``message``.

    ``headers`` are added to the error response (e.g. ``Retry-After`` or
    ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str = "",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, not {status}")
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = list(headers)

    def __str__(self) -> str:
        return f"{self.status} {self.message}" if self.message else str(self.status)


class ParameterError(HTTPError):
    """A request parameter is missing or does not convert: 400, naming it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(400, f"parameter {name!r}: {problem}")
        self.parameter = name
