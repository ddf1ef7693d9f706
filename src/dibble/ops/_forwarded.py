"""Finding the real client behind trusted reverse proxies.

A proxy that forwards a request appends the address it received the
request from to ``X-Forwarded-For`` (or adds a ``for=`` element to
``Forwarded``, RFC 7239).  Anything to the left of what a trusted proxy
appended was written by someone else and may be forged, so the chain is
read from the right: starting at the connection's peer, each hop is
believed only while it is a trusted proxy, and the first address that is
not one is the client.  If the peer itself is not a trusted proxy the
headers are ignored entirely.

Only one header is honoured, the one the proxies are configured to set: a
proxy that sets ``X-Forwarded-For`` usually passes a client's own
``Forwarded`` header through untouched, so honouring both would let any
client choose its address.

An element that does not parse as an address (``unknown``, an obfuscated
identifier, garbage) stops the walk: the last good hop is used, and if
there is none the peer address is.  Work is linear in the header size and
bounded by :data:`MAX_HOPS`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from ._net import IPAddress, NetworkSet

__all__ = ["MAX_HOPS", "forwarded_client", "parse_forwarded_for", "parse_x_forwarded_for"]

#: Hops looked at, from the right; a longer chain is cut (its left end is
#: client-supplied anyway).
MAX_HOPS: Final = 32


def _node(text: str) -> tuple[IPAddress, int] | None:
    """An address with an optional port: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip()
    port = 0
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        if rest:
            if not rest.startswith(":") or not _is_port(rest[1:]):
                return None
            port = int(rest[1:])
        text = host
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        if not _is_port(rest):
            return None
        text, port = host, int(rest)
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, port


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= 65535


def parse_x_forwarded_for(values: Iterable[str]) -> list[str]:
    """The hops of ``X-Forwarded-For`` fields, left to right, as written."""
    hops: list[str] = []
    for value in values:
        hops.extend(value.split(","))
    return hops[-MAX_HOPS:]


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def parse_forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` values of ``Forwarded`` fields (RFC 7239), left to right.

    An element without ``for=`` yields an empty string (a hop that cannot be
    used), so the positions of the hops are kept.
    """
    hops: list[str] = []
    for value in values:
        for element in _split_outside_quotes(value, ","):
            found = ""
            for pair in _split_outside_quotes(element, ";"):
                name, eq, item = pair.partition("=")
                if eq and name.strip().lower() == "for":
                    item = item.strip()
                    if len(item) >= 2 and item[0] == item[-1] == '"':
                        item = item[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                    found = item
                    break
            hops.append(found)
    return hops[-MAX_HOPS:]


def forwarded_client(
    peer: IPAddress,
    hops: list[str],
    trusted: NetworkSet,
) -> tuple[IPAddress, int] | None:
    """The client address a trusted proxy chain reports, or None to use the peer.

    ``hops`` are the forwarded addresses left to right (see the parse
    functions); ``peer`` is the connection's address.
    """
    if trusted.match(peer) is None:
        return None
    client: tuple[IPAddress, int] | None = None
    for hop in reversed(hops):
        node = _node(hop)
        if node is None:
            break
        client = node
        if trusted.match(node[0]) is None:
            break
    return client
