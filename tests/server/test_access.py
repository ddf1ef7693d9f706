"""The access log: combined format, one line per response, escaped input."""

from __future__ import annotations

import logging
import re

import pytest

import dibble
from dibble.server import escape_log_text
from dibble.testing import TestClient

COMBINED = re.compile(
    r'^(?P<host>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" '
    r'(?P<status>\d{3}) (?P<size>\d+|-) "(?P<referer>(?:[^"\\]|\\.)*)" '
    r'"(?P<agent>(?:[^"\\]|\\.)*)"$'
)


class Hello(dibble.Plugin):
    def onHome(self) -> str:
        return "hello"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dibble.access"]


def test_combined_log_format(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, "dibble.access"),
        TestClient(Hello(), access_log=True) as client,
    ):
        client.get("/?x=1", headers={"Referer": "http://r/", "User-Agent": "tester/1.0"})
    (line,) = lines(caplog)
    match = COMBINED.match(line)
    assert match, line
    assert match["host"] == "127.0.0.1"
    assert match["request"] == "GET /?x=1 HTTP/1.1"
    assert match["status"] == "200"
    assert match["size"] == "5"
    assert match["referer"] == "http://r/"
    assert match["agent"] == "tester/1.0"


def test_client_strings_are_escaped(caplog: pytest.LogCaptureFixture) -> None:
    # Control characters never get this far (the parser refuses them: 400).
    agent = 'evil" 200 "forged\\\xe9'
    with (
        caplog.at_level(logging.INFO, "dibble.access"),
        TestClient(Hello(), access_log=True) as client,
    ):
        client.send_raw(
            b"GET /%22 HTTP/1.1\r\nHost: t\r\nUser-Agent: " + agent.encode("latin-1") + b"\r\n\r\n"
        )
    (line,) = lines(caplog)
    match = COMBINED.match(line)
    assert match, line
    assert match["agent"] == 'evil\\" 200 \\"forged\\\\\\xe9'
    assert match["request"] == "GET /%22 HTTP/1.1"


def test_protocol_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, "dibble.access"),
        TestClient(Hello(), access_log=True) as client,
    ):
        client.send_raw(b"GET / HTTP/1.1\r\n\r\n")
    (line,) = lines(caplog)
    assert '"-" 400 -' in line


def test_access_log_off(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, "dibble.access"),
        TestClient(Hello(), access_log=False) as client,
    ):
        client.get("/")
    assert lines(caplog) == []


def test_escape_log_text() -> None:
    assert escape_log_text('a"b\\c\n\x7f') == 'a\\"b\\\\c\\x0a\\x7f'
