"""Access lists and network sets: strict parsing, most specific match, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from dibble.ops import (
    AccessList,
    NetworkSet,
    anonymize_ip,
    client_address,
    parse_address,
    parse_network,
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("010.0.0.1", "not a valid IPv4 or IPv6 address"),  # leading zero: octal or not?
        ("10.0.0.01", "not a valid IPv4 or IPv6 address"),
        ("10.0.0", "not a valid IPv4 or IPv6 address"),
        ("10.0.0.256", "not a valid IPv4 or IPv6 address"),
        ("1e.0.0.1", "not a valid IPv4 or IPv6 address"),
        (" 10.0.0.1", "not a valid IPv4 or IPv6 address"),
        ("fe80::1%eth0", "zone ids are not allowed"),
        ("2001:db8:::1", "not a valid IPv4 or IPv6 address"),
        ("localhost", "not a valid IPv4 or IPv6 address"),
    ],
)
def test_addresses_are_parsed_strictly(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_address(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "not a valid network"),
        ("10.0.0.0/08", "prefix length must be a plain number"),
        ("10.0.0.0/255.0.0.0", "prefix length must be a plain number"),
        ("10.0.0.0/+8", "prefix length must be a plain number"),
        ("010.0.0.0/8", "not a valid IPv4 or IPv6 address"),
        ("2001:db8::1/32", "has host bits set"),
        ("2001:db8::/129", "not a valid network"),
        ("10.0.0.0/", "prefix length must be a plain number"),
    ],
)
def test_networks_are_parsed_strictly(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_network(text)


def test_single_addresses_are_networks() -> None:
    assert parse_network("10.1.2.3") == ipaddress.ip_network("10.1.2.3/32")
    assert parse_network("::1") == ipaddress.ip_network("::1/128")


def test_client_addresses_are_normalised() -> None:
    assert client_address("::ffff:10.1.2.3") == ipaddress.ip_address("10.1.2.3")
    assert client_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert client_address("not an address") is None


def test_network_set_finds_the_most_specific_network() -> None:
    networks = NetworkSet(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "2001:db8::/32"])
    assert str(networks.match(ipaddress.ip_address("10.1.2.3"))) == "10.1.2.0/24"
    assert str(networks.match(ipaddress.ip_address("10.1.9.9"))) == "10.1.0.0/16"
    assert str(networks.match(ipaddress.ip_address("10.200.0.1"))) == "10.0.0.0/8"
    assert networks.match(ipaddress.ip_address("11.0.0.1")) is None
    assert str(networks.match(ipaddress.ip_address("2001:db8:1::5"))) == "2001:db8::/32"
    assert networks.match(ipaddress.ip_address("2001:db9::1")) is None
    assert "10.9.9.9" in networks
    assert "::ffff:10.9.9.9" in networks
    assert "nonsense" not in networks


def test_network_set_lookup_does_not_depend_on_its_size() -> None:
    big = NetworkSet(f"10.{i // 256}.{i % 256}.0/24" for i in range(20_000))
    assert len(big) == 20_000
    assert big.match(ipaddress.ip_address("10.70.3.9")) is not None
    assert big.match(ipaddress.ip_address("11.0.0.1")) is None


def test_an_empty_access_list_allows_everyone() -> None:
    access = AccessList()
    assert not access
    assert access.allows("203.0.113.9")
    assert access.allows("2001:db8::1")


def test_an_allow_list_refuses_everyone_else() -> None:
    access = AccessList(allow=["127.0.0.0/8", "::1"])
    assert access.allows("127.0.0.1")
    assert access.allows("::1")
    assert access.allows("::ffff:127.0.0.1")  # IPv4 on a dual-stack socket
    assert not access.allows("192.0.2.1")
    assert not access.allows("2001:db8::1")


def test_a_deny_list_refuses_only_those() -> None:
    access = AccessList(deny=["192.0.2.0/24", "2001:db8::/32"])
    assert not access.allows("192.0.2.77")
    assert not access.allows("2001:db8::77")
    assert access.allows("198.51.100.1")


def test_the_most_specific_entry_wins() -> None:
    access = AccessList(allow=["10.0.0.0/8", "10.1.2.3"], deny=["10.1.0.0/16"])
    assert access.allows("10.2.0.1")
    assert not access.allows("10.1.9.9")  # the deny inside the allow
    assert access.allows("10.1.2.3")  # the allow inside the deny
    assert not access.allows("11.0.0.1")


def test_deny_wins_a_tie() -> None:
    access = AccessList(allow=["10.0.0.0/8"], deny=["10.0.0.0/8"])
    assert not access.allows("10.0.0.1")


def test_unknown_addresses_are_refused() -> None:
    access = AccessList(deny=["192.0.2.0/24"])
    assert not access.allows(None)
    assert not access.allows("not an address")


@pytest.mark.parametrize(
    ("address", "anonymous"),
    [
        ("192.0.2.77", "192.0.2.0"),
        ("2001:db8:abcd:1234:5678:9abc:def0:1234", "2001:db8:abcd::"),
        ("::ffff:192.0.2.77", "192.0.2.0"),
        ("-", "-"),
        ("unknown", "unknown"),
    ],
)
def test_anonymize_ip(address: str, anonymous: str) -> None:
    assert anonymize_ip(address) == anonymous
