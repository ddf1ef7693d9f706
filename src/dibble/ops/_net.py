"""IP addresses and networks: strict parsing, fast lookup, anonymisation.

Addresses in configuration are parsed strictly: ``ipaddress`` refuses IPv4
octets with leading zeros (``010.0.0.1`` is octal to some tools and decimal
to others), a network given with host bits set (``10.0.0.1/8``) is an error
rather than silently widened, and IPv6 zone ids (``fe80::1%eth0``) are
refused because they name an interface of one machine.

Addresses from sockets are normalised: an IPv4 client reaching a dual-stack
(``::``) socket appears as ``::ffff:a.b.c.d`` and is checked as the IPv4
address it is, and a zone id on a link-local peer is dropped.

:class:`NetworkSet` answers "which listed network is the most specific match
for this address" with one dict lookup per distinct prefix length, so a list
of thousands of networks costs no more per check than a list of a few.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = [
    "AccessList",
    "IPAddress",
    "IPNetwork",
    "NetworkSet",
    "anonymize_ip",
    "client_address",
    "parse_address",
    "parse_network",
]


def _q(text: object) -> str:
    """``text`` in double quotes, as configuration messages quote values."""
    return json.dumps(str(text), ensure_ascii=False)


def parse_address(text: str) -> IPAddress:
    """A literal IPv4 or IPv6 address; ``ValueError`` naming the problem otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected an IP address, got {_q(text)}")
    if "%" in text:
        raise ValueError(f"{_q(text)}: IPv6 zone ids are not allowed")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{_q(text)} is not a valid IPv4 or IPv6 address") from None


def parse_network(text: str) -> IPNetwork:
    """A network in CIDR form (``10.0.0.0/8``, ``2001:db8::/32``) or a single address."""
    if not isinstance(text, str):
        raise ValueError(f"expected a network, got {_q(text)}")
    if "%" in text:
        raise ValueError(f"{_q(text)}: IPv6 zone ids are not allowed")
    address, slash, prefix = text.partition("/")
    parse_address(address)  # the clearer message for a bad address part
    if slash and (not prefix.isascii() or not prefix.isdigit() or prefix != str(int(prefix))):
        raise ValueError(f"{_q(text)}: the prefix length must be a plain number")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{_q(text)} is not a valid network: {exc}") from None


def client_address(text: str) -> IPAddress | None:
    """A peer address from a socket, normalised; None if it is not an IP address."""
    text = text.partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkSet:
    """A set of IPv4 and IPv6 networks with longest-prefix lookup."""

    __slots__ = ("_lengths", "_tables", "networks")

    def __init__(self, networks: Iterable[IPNetwork | str]) -> None:
        parsed = [n if not isinstance(n, str) else parse_network(n) for n in networks]
        self.networks: tuple[IPNetwork, ...] = tuple(parsed)
        # Per address family: {prefix length: {network number: network}},
        # and the prefix lengths present, longest first.
        self._tables: dict[int, dict[int, dict[int, IPNetwork]]] = {4: {}, 6: {}}
        for network in parsed:
            table = self._tables[network.version].setdefault(network.prefixlen, {})
            table[int(network.network_address) >> (network.max_prefixlen - network.prefixlen)] = (
                network
            )
        self._lengths = {
            version: tuple(sorted(tables, reverse=True))
            for version, tables in self._tables.items()
        }

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    def match(self, address: IPAddress) -> IPNetwork | None:
        """The most specific network containing ``address``, or None."""
        version = address.version
        tables = self._tables[version]
        number = int(address)
        bits = address.max_prefixlen
        for length in self._lengths[version]:
            network = tables[length].get(number >> (bits - length))
            if network is not None:
                return network
        return None

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            address = client_address(address)
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return self.match(address) is not None

    def __repr__(self) -> str:
        return f"NetworkSet({[str(n) for n in self.networks]!r})"


class AccessList:
    """Which client addresses may connect: ``allow`` and ``deny`` networks.

    The most specific matching network decides (a ``deny`` of
    ``10.1.0.0/16`` inside an ``allow`` of ``10.0.0.0/8`` refuses that
    subnet, and the other way round); when an allow and a deny entry are
    equally specific, deny wins.  An address no entry matches is allowed
    only if the allow list is empty: listing what is allowed means nothing
    else is.
    """

    __slots__ = ("_allow", "_deny", "default_allow")

    def __init__(
        self, allow: Iterable[IPNetwork | str] = (), deny: Iterable[IPNetwork | str] = ()
    ) -> None:
        self._allow = NetworkSet(allow)
        self._deny = NetworkSet(deny)
        self.default_allow = not self._allow

    @property
    def allow(self) -> tuple[IPNetwork, ...]:
        return self._allow.networks

    @property
    def deny(self) -> tuple[IPNetwork, ...]:
        return self._deny.networks

    def __bool__(self) -> bool:
        """Whether the list restricts anything at all."""
        return bool(self._allow or self._deny)

    def allows(self, address: IPAddress | str | None) -> bool:
        """Whether a client at ``address`` may be served; unknown addresses may not."""
        if isinstance(address, str):
            address = client_address(address)
        if address is None:
            return False
        denied = self._deny.match(address)
        allowed = self._allow.match(address)
        if denied is None:
            return allowed is not None or self.default_allow
        if allowed is None:
            return False
        return allowed.prefixlen > denied.prefixlen

    def __repr__(self) -> str:
        allow = [str(n) for n in self.allow]
        deny = [str(n) for n in self.deny]
        return f"AccessList(allow={allow!r}, deny={deny!r})"


_V4_KEEP: Final = 0xFFFFFF00
_V6_KEEP: Final = ((1 << 128) - 1) ^ ((1 << 80) - 1)


def anonymize_ip(text: str) -> str:
    """``text`` with the host part of an address zeroed, for logs.

    IPv4 keeps its first three octets (``192.0.2.77`` → ``192.0.2.0``), IPv6
    its first 48 bits (the last 80 are zeroed).  Text that is not an
    address is returned unchanged.
    """
    address = client_address(text)
    if address is None:
        return text
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(address) & _V4_KEEP))
    return str(ipaddress.IPv6Address(int(address) & _V6_KEEP))
