"""The sans-I/O request parser: events, framing rules, limits, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dibble.http import (
    END_OF_MESSAGE,
    BodyTooLarge,
    Event,
    HeadersTooLarge,
    Limits,
    ProtocolError,
    RequestHead,
    RequestLineTooLong,
    RequestParser,
    UnsupportedTransferCoding,
)


def feed(data: bytes, parser: RequestParser | None = None) -> list[Event]:
    return (parser or RequestParser()).feed(data)


def heads(events: list[Event]) -> list[RequestHead]:
    return [e for e in events if isinstance(e, RequestHead)]


def error_of(events: list[Event]) -> ProtocolError:
    assert events, "expected a protocol error event"
    last = events[-1]
    assert isinstance(last, ProtocolError), f"expected a ProtocolError, got {events!r}"
    return last


def test_simple_get() -> None:
    events = feed(b"GET /spam?x=1&y=%20 HTTP/1.1\r\nHost: example\r\nX-A: b\r\n\r\n")
    assert len(events) == 2
    head = events[0]
    assert isinstance(head, RequestHead)
    assert events[1] is END_OF_MESSAGE
    assert head.method == "GET"
    assert head.target == b"/spam?x=1&y=%20"
    assert head.path == "/spam"
    assert head.query_string == "x=1&y=%20"
    assert head.version == "1.1"
    assert head.keep_alive
    assert head.headers["x-a"] == "b"
    assert head.headers["X-A"] == "b"
    assert head.raw_headers == [(b"host", b"example"), (b"x-a", b"b")]


def test_percent_decoded_path_and_absolute_form() -> None:
    (head,) = heads(feed(b"GET /a%20b/%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert head.path == "/a b/\u00e9"
    (head,) = heads(feed(b"GET http://h/x/y?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert head.path == "/x/y"
    assert head.query_string == "q=1"
    (head,) = heads(feed(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert head.path == "/"


def test_body_with_content_length_in_pieces() -> None:
    parser = RequestParser()
    first = parser.feed(b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")
    assert [type(e) for e in first] == [RequestHead, bytes]
    assert not parser.idle
    assert heads(first)[0].content_length == 10
    rest = parser.feed(b"world")
    assert rest == [b"world", END_OF_MESSAGE]
    assert parser.idle


def test_chunked_body_and_trailers_ignored() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    events = feed(data)
    head = heads(events)[0]
    assert head.chunked
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"abcde"
    assert events[-1] is END_OF_MESSAGE
    assert (b"x-trailer", b"t") not in head.raw_headers


def test_pipelined_requests_in_one_chunk() -> None:
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(16))
    events = feed(data)
    assert [h.target for h in heads(events)] == [b"/%d" % i for i in range(16)]
    assert events.count(END_OF_MESSAGE) == 16


def test_byte_at_a_time() -> None:
    data = (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /y HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    parser = RequestParser()
    events: list[Event] = []
    for i in range(len(data)):
        events.extend(parser.feed(data[i : i + 1]))
    assert [h.target for h in heads(events)] == [b"/x", b"/y"]
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"abc"


def test_http10_keep_alive_rules() -> None:
    (head,) = heads(feed(b"GET / HTTP/1.0\r\n\r\n"))
    assert head.version == "1.0"
    assert not head.keep_alive
    (head,) = heads(feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    assert head.keep_alive
    (head,) = heads(feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert not head.keep_alive


def test_expect_continue() -> None:
    (head,) = heads(
        feed(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    )
    assert head.expect_continue
    (head,) = heads(feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"))
    assert not head.expect_continue  # ignored from HTTP/1.0 clients
    error = error_of(feed(b"GET / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n"))
    assert error.status_hint == 417


def test_upgrade_is_answered_as_plain_http_and_stops_parsing() -> None:
    parser = RequestParser()
    events = parser.feed(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    (head,) = heads(events)
    assert head.upgrade
    assert not head.keep_alive
    assert parser.failed
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") == []


BAD_REQUESTS = {
    "content-length with transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "duplicate content-length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    "non-digit content-length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
        400,
    ),
    "content-length list": (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    "invalid chunk size": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "chunk size overflow": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffff\r\nabc\r\n",
        400,
    ),
    "bare LF chunk line": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        400,
    ),
    "bare LF header lines": (b"GET / HTTP/1.1\nHost: h\n\n", 400),
    "bare CR in value": (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
    "NUL in value": (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
    "NUL in name": (b"GET / HTTP/1.1\r\nHost: h\r\nX\x00Y: a\r\n\r\n", 400),
    "CR in name": (b"GET / HTTP/1.1\r\nHost: h\r\nX\rY: a\r\n\r\n", 400),
    "whitespace before colon": (b"GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n", 400),
    "missing host": (b"GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    "duplicate host": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "duplicate host on 1.0": (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "transfer-encoding on 1.0": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "unknown transfer coding": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    "coding before chunked": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "split transfer-encoding fields": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "HTTP/0.9": (b"GET /\r\n\r\n", 505),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "unknown version": (b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 400),
    "space in target": (b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    "CONNECT": (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_malformed_requests_are_protocol_errors(name: str) -> None:
    data, status = BAD_REQUESTS[name]
    parser = RequestParser()
    events = parser.feed(data)
    error = error_of(events)
    assert error.status_hint == status, error
    assert error.message
    assert parser.failed
    # Nothing after the bad request is ever parsed.
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") == []


def test_requests_before_a_bad_one_are_delivered_and_nothing_after() -> None:
    events = feed(
        b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /bad HTTP/1.1\r\n\r\n"
        b"GET /never HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert [h.target for h in heads(events)] == [b"/good"]
    assert events[1] is END_OF_MESSAGE
    assert error_of(events).status_hint == 400


def test_request_line_limit() -> None:
    limits = Limits(max_request_line=100)
    events = RequestParser(limits).feed(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(error_of(events), RequestLineTooLong)
    assert error_of(events).status_hint == 414
    # Exactly at the limit is fine.
    ok = RequestParser(limits).feed(b"GET /" + b"a" * 99 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert heads(ok)


def test_default_request_line_limit_is_8k() -> None:
    events = feed(b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert error_of(events).status_hint == 414


def test_header_count_limit() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(100))
    events = feed(b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n")
    assert isinstance(error_of(events), HeadersTooLarge)
    assert error_of(events).status_hint == 431
    ok = feed(b"GET / HTTP/1.1\r\nHost: h\r\n" + fields[: -len(b"X-99: v\r\n")] + b"\r\n")
    assert heads(ok)


def test_header_size_limit() -> None:
    big = b"X-Big: " + b"v" * (64 * 1024) + b"\r\n"
    events = feed(b"GET / HTTP/1.1\r\nHost: h\r\n" + big + b"\r\n")
    assert error_of(events).status_hint == 431


def test_endless_header_value_is_bounded_while_it_streams() -> None:
    parser = RequestParser(Limits(max_header_bytes=1024))
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX: ") == []
    events: list[Event] = []
    for _ in range(10):
        events = parser.feed(b"v" * 512)
        if events:
            break
    assert error_of(events).status_hint == 431
    assert parser.in_head or parser.failed


def test_body_limit_from_content_length_before_any_body() -> None:
    parser = RequestParser(Limits(max_body_size=10))
    events = parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    assert isinstance(error_of(events), BodyTooLarge)
    assert error_of(events).status_hint == 413


def test_body_limit_for_chunked_bodies() -> None:
    parser = RequestParser(Limits(max_body_size=10))
    events = parser.feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"
    )
    assert error_of(events).status_hint == 413


def test_body_limit_per_request_from_callback() -> None:
    def limit(head: RequestHead) -> int:
        return 100 if head.target == b"/big" else 5

    parser = RequestParser(body_limit=limit)
    ok = parser.feed(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n" + b"x" * 50)
    assert ok[-1] is END_OF_MESSAGE
    bad = parser.feed(b"POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nxxxxxx")
    assert error_of(bad).status_hint == 413


def test_unsupported_transfer_coding_type() -> None:
    events = feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n")
    assert isinstance(error_of(events), UnsupportedTransferCoding)


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_header_count"):
        Limits(max_header_count=0)
    with pytest.raises(ValueError, match="max_body_size"):
        Limits(max_body_size=-1)


def test_headers_mapping() -> None:
    (head,) = heads(
        feed(
            b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n"
            b"Cookie: x=1\r\nCookie: y=2\r\n\r\n"
        )
    )
    headers = head.headers
    assert headers["accept"] == "a, b"
    assert headers["cookie"] == "x=1; y=2"
    assert headers.get_all("Accept") == ["a", "b"]
    assert headers.get("ACCEPT") == "a, b"
    assert headers.get("range") is None
    assert headers.get("range", "bytes=0-") == "bytes=0-"
    assert "ACCEPT" in headers
    assert object() not in headers
    assert len(headers) == 3
    assert set(headers) == {"host", "accept", "cookie"}
    assert "Headers" in repr(headers)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_garbage_only_ever_gives_events_or_protocol_errors(data: bytes) -> None:
    parser = RequestParser(Limits(max_header_bytes=200, max_request_line=100, max_body_size=50))
    for chunk in (data[: len(data) // 2], data[len(data) // 2 :]):
        for event in parser.feed(chunk):
            assert (
                isinstance(event, RequestHead | bytes | ProtocolError) or event is END_OF_MESSAGE
            )
            if isinstance(event, ProtocolError):
                assert 400 <= event.status_hint <= 599


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_token, st.text(alphabet="abc xyz019;=", max_size=20)), max_size=8),
    st.binary(max_size=100),
    st.integers(min_value=1, max_value=50),
)
def test_fuzz_valid_requests_roundtrip_in_any_split(
    fields: list[tuple[str, str]], body: bytes, split: int
) -> None:
    fields = [(k, v.strip()) for k, v in fields if k.lower() not in _FRAMING]
    head = "POST /p HTTP/1.1\r\nHost: h\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    data = head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body
    parser = RequestParser()
    events: list[Event] = []
    for i in range(0, len(data), split):
        events.extend(parser.feed(data[i : i + split]))
    assert not any(isinstance(e, ProtocolError) for e in events), events
    assert b"".join(e for e in events if isinstance(e, bytes)) == body
    assert events[-1] is END_OF_MESSAGE


_FRAMING = {"host", "content-length", "transfer-encoding", "expect", "connection", "upgrade"}
