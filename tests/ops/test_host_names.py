"""Host header values reduced to the names virtual hosts are found by."""

from __future__ import annotations

import pytest

from dibble.ops import host_name, is_host_name, request_host


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("docs.example.org", "docs.example.org"),
        ("Docs.Example.ORG", "docs.example.org"),
        ("docs.example.org:8080", "docs.example.org"),
        ("docs.example.org.", "docs.example.org"),
        ("localhost", "localhost"),
        ("127.0.0.1:8888", "127.0.0.1"),
        ("[::1]:8888", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("", None),
        ("bad host", None),
        ("a..b", None),
        ("host:port", None),
        ("[::1", None),
        ("[::1]x", None),
        ("exa\u00e9mple.org", None),
    ],
)
def test_host_name(value: str, name: str | None) -> None:
    assert host_name(value) == name


def test_is_host_name() -> None:
    assert is_host_name("docs.example.org")
    assert not is_host_name("Docs.example.org")
    assert not is_host_name("docs.example.org:80")


def test_request_host() -> None:
    assert request_host([(b"accept", b"*/*"), (b"host", b"A.example:1")]) == "a.example"
    assert request_host([]) is None
