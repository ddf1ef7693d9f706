"""Response-side helpers: status lines, Date, header fields, chunks."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from dibble.http import (
    LAST_CHUNK,
    DateHeader,
    InvalidResponseHeader,
    encode_chunk,
    encode_header_fields,
    http_date,
    reason_phrase,
    status_line,
)


def test_status_lines_are_precomputed_and_exact() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert status_line(200) is status_line(200)
    assert status_line(599) == b"HTTP/1.1 599 Unknown\r\n"
    assert reason_phrase(418) == "I'm a Teapot"
    with pytest.raises(ValueError, match="status"):
        status_line(1000)


def test_date_header_changes_at_most_once_a_second() -> None:
    date = DateHeader(1_700_000_000.1)
    first = date.field
    assert first.startswith(b"Date: ") and first.endswith(b" GMT\r\n")
    stamp = parsedate_to_datetime(first[6:-2].decode())
    assert stamp.timestamp() == 1_700_000_000
    date.update(1_700_000_000.9)
    assert date.field is first  # same second: not rebuilt
    date.update(1_700_000_001.0)
    assert date.field != first


def test_header_fields_render() -> None:
    assert encode_header_fields([("X-A", "1"), ("Set-Cookie", "a=b")]) == (
        b"X-A: 1\r\nSet-Cookie: a=b\r\n"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("X", "a\r\nInjected: 1"), ("X", "a\nb"), ("X", "a\rb"), ("X\r\nY", "1"), ("X", "a\0b")],
)
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(InvalidResponseHeader):
        encode_header_fields([(name, value)])


@pytest.mark.parametrize("name", ["", "A B", "A:B"])
def test_invalid_header_names(name: str) -> None:
    with pytest.raises(InvalidResponseHeader):
        encode_header_fields([(name, "v")])


def test_chunks() -> None:
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"x" * 255).startswith(b"ff\r\n")
    assert encode_chunk(b"") == b""
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_http_date_matches_the_standard_library() -> None:
    from email.utils import formatdate

    for seconds in (0, 784111777, 1_700_000_000, 2_000_000_000, 4_102_444_799):
        assert http_date(seconds) == formatdate(seconds, usegmt=True)


def test_extra_fields_render_the_same_when_kept() -> None:
    from dibble.app._render import encode_extra_fields

    fields = [("Vary", "Cookie"), ("Cache-Control", "private"), ("Content-Length", "9")]
    for _ in range(2):  # rendered, then kept (the framing field always left out)
        assert encode_extra_fields(fields) == b"Vary: Cookie\r\nCache-Control: private\r\n"
    as_lists: list[Any] = [["X-A", "1"], ["X-B", "2"]]  # not hashable: rendered each time
    assert encode_extra_fields(as_lists) == b"X-A: 1\r\nX-B: 2\r\n"
    for _ in range(2):  # a field that would split the response is refused every time
        with pytest.raises(InvalidResponseHeader):
            encode_extra_fields([("Vary", "Cookie"), ("X-Evil", "a\r\nSet-Cookie: x=1")])
