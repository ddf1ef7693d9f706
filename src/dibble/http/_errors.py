"""The protocol layer's exceptions.

Every error the peer can cause carries ``status_hint``: the status code the
server should answer with before it closes the connection.  Nothing above the
protocol layer has to know how framing went wrong, only what to say about it.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; answer ``status_hint`` and close."""

    status_hint: int = 400

    def __init__(self, message: str, status_hint: int | None = None) -> None:
        super().__init__(message)
        if status_hint is not None:
            self.status_hint = status_hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class RequestLineTooLong(ProtocolError):
    status_hint = 414


class HeadersTooLarge(ProtocolError):
    status_hint = 431


class BodyTooLarge(ProtocolError):
    status_hint = 413


class UnsupportedTransferCoding(ProtocolError):
    status_hint = 501


class InvalidResponseHeader(ValueError):
    """An application tried to send a header that would split the response."""
