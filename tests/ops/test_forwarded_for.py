"""The client behind trusted proxies: X-Forwarded-For and Forwarded, read from the right."""

from __future__ import annotations

import ipaddress

import pytest

from dibble.ops import (
    MAX_HOPS,
    NetworkSet,
    forwarded_client,
    parse_forwarded_for,
    parse_x_forwarded_for,
)

TRUSTED = NetworkSet(["10.0.0.0/8", "2001:db8:ffff::/48"])
PROXY = ipaddress.ip_address("10.0.0.5")
STRANGER = ipaddress.ip_address("203.0.113.50")


def client(peer: ipaddress.IPv4Address | ipaddress.IPv6Address, header: str) -> str | None:
    found = forwarded_client(peer, parse_x_forwarded_for([header]), TRUSTED)
    return None if found is None else f"{found[0]}:{found[1]}"


def test_the_client_a_trusted_proxy_reports() -> None:
    assert client(PROXY, "198.51.100.7") == "198.51.100.7:0"


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    assert client(STRANGER, "198.51.100.7") is None


def test_forged_entries_left_of_the_real_client_are_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real one.
    assert client(PROXY, "1.2.3.4, 198.51.100.7") == "198.51.100.7:0"


def test_a_chain_of_trusted_proxies_is_followed() -> None:
    assert client(PROXY, "1.2.3.4, 198.51.100.7, 10.0.0.9, 10.3.0.1") == "198.51.100.7:0"


def test_all_trusted_gives_the_leftmost() -> None:
    assert client(PROXY, "10.0.0.9, 10.3.0.1") == "10.0.0.9:0"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("garbage", None),
        ("", None),
        ("unknown", None),
        ("198.51.100.7, garbage", None),
        ("garbage, 198.51.100.7", "198.51.100.7:0"),
        ("garbage, 10.0.0.9", "10.0.0.9:0"),  # the last good hop
        ("010.0.0.1", None),  # leading zeros are not an address
        ("198.51.100.7:4711", "198.51.100.7:4711"),
        ("198.51.100.7:99999", None),
        ("[2001:db8::7]:4711", "2001:db8::7:4711"),
        ("2001:db8::7", "2001:db8::7:0"),
        ("[2001:db8::7", None),
        ("fe80::1%eth0", None),
        ("::ffff:198.51.100.7", "198.51.100.7:0"),
    ],
)
def test_malformed_hops(header: str, expected: str | None) -> None:
    assert client(PROXY, header) == expected


def test_several_header_fields_form_one_list() -> None:
    hops = parse_x_forwarded_for(["1.2.3.4, 5.6.7.8", "198.51.100.7"])
    assert forwarded_client(PROXY, hops, TRUSTED) == (ipaddress.ip_address("198.51.100.7"), 0)


def test_only_the_last_hops_are_looked_at() -> None:
    hops = parse_x_forwarded_for([", ".join(["10.0.0.1"] * 1000)])
    assert len(hops) == MAX_HOPS


def test_forwarded_header() -> None:
    values = ['for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"']
    assert parse_forwarded_for(values) == ["192.0.2.60", "[2001:db8:cafe::17]:4711"]
    found = forwarded_client(PROXY, parse_forwarded_for(values), TRUSTED)
    assert found == (ipaddress.ip_address("2001:db8:cafe::17"), 4711)


def test_forwarded_header_quirks() -> None:
    assert parse_forwarded_for(['For="198.51.100.7"']) == ["198.51.100.7"]
    assert parse_forwarded_for(['proto=https;for=_hidden, by="a,b";for=1.2.3.4']) == [
        "_hidden",
        "1.2.3.4",
    ]
    assert parse_forwarded_for(["proto=https"]) == [""]
    found = forwarded_client(PROXY, parse_forwarded_for(["for=unknown"]), TRUSTED)
    assert found is None


def test_ipv6_proxies() -> None:
    peer = ipaddress.ip_address("2001:db8:ffff::1")
    assert client(peer, "198.51.100.7") == "198.51.100.7:0"
