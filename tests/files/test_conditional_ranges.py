"""The pure parts: preconditions (RFC 9110 §13.2.2), dates, range parsing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dibble.files import (
    MAX_RANGES,
    evaluate_preconditions,
    if_range_allows,
    parse_http_date,
    parse_ranges,
)

ETAG = '"abc-1"'
T = 1_000_000_000  # last modified
BEFORE, AFTER = "Sat, 08 Sep 2001 00:00:00 GMT", "Mon, 10 Sep 2001 00:00:00 GMT"
EXACT = "Sun, 09 Sep 2001 01:46:40 GMT"


@pytest.mark.parametrize(
    ("method", "fields", "expected"),
    [
        ("GET", {}, None),
        ("GET", {"if-match": ETAG}, None),
        ("GET", {"if-match": f'"x", {ETAG}'}, None),
        ("GET", {"if-match": f"W/{ETAG}"}, 412),
        ("GET", {"if-match": '"x"'}, 412),
        ("GET", {"if-match": "garbage"}, 412),
        ("GET", {"if-unmodified-since": BEFORE}, 412),
        ("GET", {"if-unmodified-since": EXACT}, None),
        ("GET", {"if-unmodified-since": "nonsense"}, None),
        ("GET", {"if-match": ETAG, "if-unmodified-since": BEFORE}, None),
        ("GET", {"if-none-match": ETAG}, 304),
        ("HEAD", {"if-none-match": f"W/{ETAG}"}, 304),
        ("GET", {"if-none-match": "*"}, 304),
        ("POST", {"if-none-match": ETAG}, 412),
        ("GET", {"if-none-match": '"x"', "if-modified-since": AFTER}, None),
        ("GET", {"if-modified-since": AFTER}, 304),
        ("GET", {"if-modified-since": EXACT}, 304),
        ("GET", {"if-modified-since": BEFORE}, None),
        ("POST", {"if-modified-since": AFTER}, None),
        ("GET", {"if-match": '"x"', "if-none-match": ETAG}, 412),
    ],
)
def test_preconditions(method: str, fields: dict[str, str], expected: int | None) -> None:
    assert evaluate_preconditions(method, fields, ETAG, T) == expected


def test_preconditions_without_a_resource() -> None:
    assert evaluate_preconditions("PUT", {"if-match": "*"}, None, None) == 412
    assert evaluate_preconditions("PUT", {"if-none-match": "*"}, None, None) is None
    assert evaluate_preconditions("PUT", {"if-none-match": "*"}, ETAG, T) == 412


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EXACT, T),
        ("Sunday, 09-Sep-01 01:46:40 GMT", T),  # RFC 850
        ("Sun Sep  9 01:46:40 2001", None),  # asctime has no zone: refused
        ("Sun, 09 Sep 2001 01:46:40", None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_http_dates(value: str, expected: int | None) -> None:
    assert parse_http_date(value) == expected


def test_if_range() -> None:
    assert if_range_allows(ETAG, ETAG, T)
    assert not if_range_allows(f"W/{ETAG}", ETAG, T)
    assert not if_range_allows('"other"', ETAG, T)
    assert if_range_allows(EXACT, ETAG, T)
    assert not if_range_allows(AFTER, ETAG, T)


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-0", 10, [(0, 0)]),
        ("bytes=0-", 10, [(0, 9)]),
        ("bytes=-3", 10, [(7, 9)]),
        ("bytes=-30", 10, [(0, 9)]),
        ("bytes=5-100", 10, [(5, 9)]),
        ("bytes=8-9,0-1", 10, [(8, 9), (0, 1)]),
        ("bytes=0-1,2-3", 10, [(0, 1), (2, 3)]),
        ("bytes= 0-1 , , 4-5", 10, [(0, 1), (4, 5)]),
        ("bytes=10-", 10, []),
        ("bytes=-0", 10, []),
        ("bytes=0-", 0, []),
        ("bytes=-1", 0, []),
        ("bytes=0-1,1-2", 10, None),
        ("bytes=0-5,-5", 10, None),
        ("bytes=1-0", 10, None),
        ("bytes=a-b", 10, None),
        ("bytes=--1", 10, None),
        ("bytes=1", 10, None),
        ("bytes=", 10, None),
        ("bits=0-1", 10, None),
        ("bytes=0x1-2", 10, None),
        ("bytes=\u0661-2", 10, None),
    ],
)
def test_parse_ranges(value: str, size: int, expected: list[tuple[int, int]] | None) -> None:
    assert parse_ranges(value, size) == expected


def test_range_count_cap() -> None:
    ok = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES))
    assert parse_ranges(ok, 1000) is not None
    too_many = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES + 1))
    assert parse_ranges(too_many, 1000) is None


@given(value=st.text(max_size=60), size=st.integers(min_value=0, max_value=10**12))
def test_parse_ranges_never_fails_and_stays_inside(value: str, size: int) -> None:
    ranges = parse_ranges("bytes=" + value, size)
    if ranges:
        assert len(ranges) <= MAX_RANGES
        for first, last in ranges:
            assert 0 <= first <= last < size
        ordered = sorted(ranges)
        assert all(b[0] > a[1] for a, b in itertools.pairwise(ordered))
