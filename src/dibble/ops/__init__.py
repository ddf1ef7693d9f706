"""Operations: who may connect, who the client really is, and maintenance mode.

Plain logic with no dependency on the rest of dibble (standard library
only), so every rule here is tested without a server: access lists of IPv4
and IPv6 networks, the client address behind trusted proxies, the ``Host``
name virtual hosts are chosen by, the maintenance file, the secret key, and
IP anonymisation for logs.  ``dibble.app`` wires them into request handling.
"""

from ._forwarded import MAX_HOPS, forwarded_client, parse_forwarded_for, parse_x_forwarded_for
from ._hosts import host_name, is_host_name, request_host
from ._maintenance import (
    DEFAULT_MESSAGE,
    MaintenanceState,
    MaintenanceWatcher,
    parse_maintenance,
)
from ._net import (
    AccessList,
    IPAddress,
    IPNetwork,
    NetworkSet,
    anonymize_ip,
    client_address,
    parse_address,
    parse_network,
)
from ._secret import load_or_create_secret

__all__ = [
    "DEFAULT_MESSAGE",
    "MAX_HOPS",
    "AccessList",
    "IPAddress",
    "IPNetwork",
    "MaintenanceState",
    "MaintenanceWatcher",
    "NetworkSet",
    "anonymize_ip",
    "client_address",
    "forwarded_client",
    "host_name",
    "is_host_name",
    "load_or_create_secret",
    "parse_address",
    "parse_forwarded_for",
    "parse_maintenance",
    "parse_network",
    "parse_x_forwarded_for",
    "request_host",
]
