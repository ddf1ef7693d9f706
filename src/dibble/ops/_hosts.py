"""The ``Host`` header, reduced to the name virtual hosts are looked up by.

``Host: Docs.Example.org:8080`` and ``docs.example.org.`` both name
``docs.example.org``: the port is ignored, letters are folded to lower case
and a trailing dot (an absolute DNS name) is dropped.  IPv6 literals keep
their brackets (``[::1]``).  A value that is not a plausible host name is
treated like a missing header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["host_name", "is_host_name", "request_host"]

_NAME: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,252})")
_LITERAL_V6: Final = re.compile(r"\[[0-9a-f:.]+\]")


def host_name(value: str) -> str | None:
    """The normalised host name of a ``Host`` value; None if it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        literal, bracket, rest = value.partition("]")
        literal += bracket
        if not _LITERAL_V6.fullmatch(literal) or (rest and not _is_port_part(rest)):
            return None
        return literal
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    name = name.removesuffix(".")
    if not _NAME.fullmatch(name) or ".." in name:
        return None
    return name


def _is_port_part(text: str) -> bool:
    return text.startswith(":") and (text == ":" or text[1:].isdigit())


def is_host_name(value: str) -> bool:
    """Whether ``value`` is already a normalised host name (for configuration)."""
    return host_name(value) == value


def request_host(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The normalised ``Host`` of a request's raw header list, or None."""
    for name, value in raw_headers:
        if name == b"host":
            return host_name(value.decode("latin-1"))
    return None
