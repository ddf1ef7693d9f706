"""Cookies: lenient, linear-time parsing of ``Cookie``; strict ``Set-Cookie`` output."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

import dibble
from dibble.cookies import (
    MAX_COOKIE_SIZE,
    MAX_COOKIES,
    Cookie,
    parse_cookie_header,
    parse_cookies,
    quote_value,
    unquote_value,
)
from dibble.testing import TestClient


def test_simple_pairs() -> None:
    assert parse_cookie_header("a=1; b=two;c=3") == {"a": "1", "b": "two", "c": "3"}


def test_first_of_duplicates_wins() -> None:
    assert parse_cookie_header("id=specific; id=general") == {"id": "specific"}


def test_quoted_values_are_unquoted() -> None:
    assert parse_cookie_header('a="quoted value"') == {"a": "quoted value"}


def test_empty_value_is_kept() -> None:
    assert parse_cookie_header("a=; b=2") == {"a": "", "b": "2"}


@pytest.mark.parametrize(
    "header",
    [
        "novalue",  # no "="
        "=nameless",  # empty name
        " =nameless",
        "bad name=1",  # a space in the name
        "bad,name=1",  # not a token
        'quo"te=1',
        "ctl=a\x01b",  # control character in the value
        "del=a\x7fb",
        ";;;",
        "",
    ],
)
def test_malformed_pairs_are_ignored(header: str) -> None:
    assert parse_cookie_header(header + "; ok=yes") == {"ok": "yes"}


def test_invalid_utf8_value_is_ignored() -> None:
    assert parse_cookies([b"bad=\xff\xfe; good=\xc3\xa9"]) == {"good": "\u00e9"}


def test_oversized_pair_is_ignored() -> None:
    big = "x" * MAX_COOKIE_SIZE
    assert parse_cookie_header(f"big={big}; small=1") == {"small": "1"}
    just = "y" * (MAX_COOKIE_SIZE - len("fit="))
    assert parse_cookie_header(f"fit={just}") == {"fit": just}


def test_number_of_cookies_is_capped() -> None:
    header = "; ".join(f"c{i}={i}" for i in range(MAX_COOKIES + 50))
    cookies = parse_cookie_header(header)
    assert len(cookies) == MAX_COOKIES
    assert cookies["c0"] == "0"


def test_several_cookie_fields_are_combined() -> None:
    assert parse_cookies([b"a=1", b"b=2; a=3"]) == {"a": "1", "b": "2"}


def test_parsing_is_linear_in_the_header_size() -> None:
    # Pathological shapes a quadratic parser would choke on: many separators,
    # many "=" and one huge unterminated quote.
    for header in ("; " * 40_000, "=" * 80_000, 'a="' + "x" * 80_000, "a=b;" * 20_000):
        start = time.perf_counter()
        parse_cookie_header(header)
        assert time.perf_counter() - start < 0.5


def test_set_cookie_defaults_are_safe() -> None:
    assert Cookie("sid", "abc").header_value() == "sid=abc; Path=/; HttpOnly; SameSite=Lax"


def test_set_cookie_with_every_attribute() -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    cookie = Cookie(
        "p",
        "v",
        max_age=3600,
        expires=expires,
        path="/app",
        domain=".example.org",
        secure=True,
        http_only=False,
        same_site="Strict",
    )
    assert cookie.header() == (
        "Set-Cookie",
        "p=v; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Max-Age=3600; Domain=example.org; "
        "Path=/app; Secure; SameSite=Strict",
    )


def test_deleted_cookie_expires_at_once() -> None:
    value = Cookie("p", "v", path="/x").deleted().header_value()
    assert value.startswith("p=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name", "value": "v"}, "not an HTTP token"),
        ({"name": "", "value": "v"}, "not an HTTP token"),
        ({"name": "n", "value": "a;b"}, "encode it"),
        ({"name": "n", "value": "a b"}, "encode it"),
        ({"name": "n", "value": 'a"b'}, "encode it"),
        ({"name": "n", "value": "a\r\nSet-Cookie: x=y"}, "encode it"),
        ({"name": "n", "value": "v", "path": "/a;b"}, "invalid path"),
        ({"name": "n", "value": "v", "domain": "a.org\r\n"}, "invalid domain"),
        ({"name": "n", "value": "v", "same_site": "None"}, "needs secure=True"),
        ({"name": "n", "value": "v", "same_site": "Loose"}, "Strict, Lax or None"),
    ],
)
def test_unsendable_cookies_are_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cookie(**kwargs)  # type: ignore[arg-type]


def test_quote_value_round_trips_any_text() -> None:
    text = 'Project "Ω"; a=b, c\\d 100%'
    quoted = quote_value(text)
    Cookie("n", quoted)  # a valid cookie value
    assert unquote_value(quoted) == text


class Echo(dibble.Plugin):
    def onHome(self) -> dict[str, str]:
        return self.request.cookies


@pytest.mark.parametrize(
    "header",
    [
        "ok=1; " + "x" * 10_000,
        "ok=1; =; ==; ;;=x",
        'ok=1; "=2',
        "ok=1; \x80\x81=\xff",
        "ok=1; n=" + "v" * 60_000,
    ],
)
def test_requests_with_bad_cookies_never_fail(header: str) -> None:
    with TestClient(Echo()) as client:
        response = client.get("/", headers={"Cookie": header})
    assert response.status == 200
    assert response.json() == {"ok": "1"}
