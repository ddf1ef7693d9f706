"""Sessions as methlets see them: ``self.session``, the cookie, saving, rotation, cleanup.

Most tests run once per store (memory, SQLite, Redis): the behaviour must
be the same whatever keeps the data.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
import dibble.config
from dibble.app import Request
from dibble.sessions import (
    MemoryStore,
    SessionPool,
    SessionStore,
    new_session_id,
    service_name,
    valid_session_id,
)
from dibble.sessions._session import valid_key
from dibble.testing import TestClient, TestResponse

Make = Callable[..., TestClient]


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Notes(dibble.Plugin):
    def __init__(self) -> None:
        self.expired: list[dict[str, Any]] = []
        self.plain_state: object = "unset"

    def onSet(self, key: str, value: str) -> str:
        self.session[key] = json.loads(value)
        return "set"

    def onGet(self, key: str) -> dict[str, Any]:
        session = self.session
        return {
            "value": session.get(key),
            "id": session.id,
            "new": session.is_new,
            "started": session.date_started,
            "modified": session.date_modified,
        }

    def onAll(self) -> dict[str, Any]:
        return dict(self.session)

    def onAppend(self, item: str) -> str:
        items = self.session.setdefault("items", [])
        items.append(item)
        return str(len(items))

    def onCount(self) -> str:
        return str(self.session.increment("count"))

    def onTally(self, key: str, value: str) -> str:
        # Changes made before an increment (written at once) are saved all the same.
        self.session[key] = value
        self.session.setdefault("seen", []).append(value)
        return str(self.session.increment("count"))

    def onRestart(self) -> str:
        self.session.clear()
        return str(self.session.increment("count"))

    def onDelete(self, key: str) -> str:
        del self.session[key]
        return "deleted"

    def onRotate(self) -> str:
        self.session.rotate()
        return "rotated"

    def onEnd(self) -> str:
        self.session.invalidate()
        return "ended"

    def onFail(self) -> str:
        self.session["failed"] = True
        raise RuntimeError("boom")

    def onRefuse(self) -> str:
        self.session["refused"] = True
        raise dibble.HTTPError(400, "no")

    def onPlain(self) -> str:
        self.plain_state = getattr(self.request, "session_state", None)
        return "plain"

    def onBig(self, size: int) -> str:
        self.session["big"] = "x" * size
        return "big"

    def onBad(self) -> str:
        self.session["bad"] = {1, 2, 3}
        return "never"

    def onReplace(self) -> str:
        self.set_user_session({"only": 1})
        return repr(dict(self.get_user_session()))

    def onCached(self) -> dibble.Response:
        self.session["seen"] = True
        return dibble.Response(
            "cached?",
            headers=[("Cache-Control", "public, max-age=60"), ("Vary", "Accept-Encoding")],
        )

    def onStream(self) -> None:
        self.session["streamed"] = True
        self.write_ok_headers("text/plain")
        self.write("part 1\n")
        self.flush()
        self.write("part 2\n")

    def onLate(self) -> None:
        self.write_ok_headers("text/plain")
        self.write("part 1\n")
        self.flush()
        self.session["late"] = True

    @dibble.blocking
    def onThreaded(self, value: str) -> str:
        self.session["threaded"] = value
        return "in a thread"

    async def onAsync(self, value: str) -> str:
        await asyncio.sleep(0)
        self.session["async"] = value
        return "async"

    def session_expired(self, data: dict[str, Any]) -> None:
        self.expired.append(data)


class Other(dibble.Plugin):
    def onOther(self) -> dict[str, Any]:
        self.session["mine"] = "other"
        return dict(self.session)


class Shared(dibble.Plugin):
    session_service = "notes-shared"

    def onShared(self) -> dict[str, Any]:
        return dict(self.session)


@pytest.fixture
def make(store: SessionStore) -> Iterator[Make]:
    """``make(*plugins, **pool_settings)``: a cookie-keeping client on a server whose
    pool uses the store under test."""
    clients: list[TestClient] = []

    def build(*plugins: dibble.Plugin, **pool_settings: Any) -> TestClient:
        pool_settings.setdefault("cleanup_interval", None)
        pool = SessionPool(store, **pool_settings)
        server = dibble.HTTPServer(
            ("127.0.0.1", 0), dibble.Context(), sessions=pool, test_mode=True, access_log=False
        )
        server.register(*(plugins or (Notes(),)))
        client = TestClient(server, cookies=True)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def cookie_of(response: TestResponse) -> str:
    (value,) = [v for k, v in response.header_list if k == "set-cookie"]
    return value


def test_values_round_trip(make: Make) -> None:
    client = make()
    value = '{"x": [1, 2.5, "é", null, true]}'
    assert client.get("/set", params={"key": "a", "value": value}).status == 200
    got = client.get("/get?key=a").json()
    assert got["value"] == {"x": [1, 2.5, "é", None, True]}
    assert valid_session_id(got["id"])
    assert not got["new"]
    assert got["started"] == got["modified"]


def test_the_cookie(make: Make) -> None:
    client = make()
    response = client.get("/set?key=a&value=1")
    cookie = cookie_of(response)
    name, _, rest = cookie.partition("=")
    value = rest.split(";")[0]
    assert name == "dibble_session"
    assert valid_session_id(value)
    assert len(value) * 6 >= 128  # >= 128 bits of base64 characters
    attributes = {a.strip() for a in cookie.split(";")[1:]}
    assert attributes == {"Path=/", "HttpOnly", "SameSite=Lax"}
    assert response.headers["vary"] == "Cookie"
    assert response.headers["cache-control"] == "private"
    # Once set, the cookie is not sent again.
    again = client.get("/set?key=b&value=2")
    assert "set-cookie" not in again.headers


def test_a_secure_cookie_gets_the_host_prefix(make: Make) -> None:
    client = make(cookie_secure=True)
    cookie = cookie_of(client.get("/set?key=a&value=1"))
    assert cookie.startswith("__Host-dibble_session=")
    assert "Secure" in cookie
    assert client.get("/get?key=a").json()["value"] == 1


def test_a_cookie_for_a_domain_has_no_prefix(make: Make) -> None:
    client = make(cookie_secure=True, cookie_domain="example.org")
    cookie = cookie_of(client.get("/set?key=a&value=1"))
    assert cookie.startswith("dibble_session=")
    assert "Domain=example.org" in cookie
    assert "Secure" in cookie


def test_tls_requests_get_secure_cookies() -> None:
    pool = SessionPool(MemoryStore())
    request = Request()
    assert pool.cookie_for(request) == ("dibble_session", False)
    request.tls = True
    assert pool.cookie_for(request) == ("__Host-dibble_session", True)
    assert SessionPool(MemoryStore(), cookie_path="/app").cookie_for(request) == (
        "dibble_session",
        True,
    )
    assert SessionPool(MemoryStore(), cookie_secure=False).cookie_for(request) == (
        "dibble_session",
        False,
    )


def test_a_request_that_never_reads_the_session_costs_nothing(make: Make) -> None:
    notes = Notes()
    client = make(notes)
    response = client.get("/plain")
    assert response.text == "plain"
    assert notes.plain_state is None
    assert not {"set-cookie", "vary", "cache-control"} & set(response.headers)
    assert client.server.sessions is not None
    assert client.server.sessions.store.sessions(2e9) == []


def test_reading_an_empty_session_stores_nothing(make: Make, store: SessionStore) -> None:
    client = make()
    response = client.get("/get?key=a")
    assert response.json()["value"] is None
    assert response.json()["id"] is None
    assert response.json()["new"]
    assert "set-cookie" not in response.headers
    assert response.headers["vary"] == "Cookie"
    assert store.sessions(2e9) == []


@pytest.mark.parametrize(
    ("cookie", "why"),
    [
        (new_session_id(), "unknown"),  # well formed, never issued: forged
        ("short", "malformed"),  # truncated
        (new_session_id()[:-1] + "!", "malformed"),
        ("x" * 300, "malformed"),
    ],
)
def test_an_id_the_server_did_not_issue_is_never_adopted(
    make: Make, cookie: str, why: str
) -> None:
    client = make()
    assert client.cookies is not None
    client.cookies["dibble_session"] = cookie
    response = client.get("/get?key=a")
    assert response.json()["value"] is None
    assert response.json()["id"] is None
    # The dead cookie is deleted, so the browser stops sending it.
    assert "Max-Age=0" in cookie_of(response)
    client.cookies["dibble_session"] = cookie
    stored = client.get("/set?key=a&value=1")
    issued = cookie_of(stored).split(";")[0].split("=", 1)[1]
    assert issued != cookie
    assert valid_session_id(issued)


def test_an_expired_id_is_not_adopted(make: Make) -> None:
    clock = Clock()
    client = make(lifetime=60, clock=clock)
    client.get("/set?key=a&value=1")
    assert client.cookies is not None
    old = client.cookies["dibble_session"]
    clock.now += 61
    response = client.get("/get?key=a")
    assert response.json()["value"] is None
    assert "Max-Age=0" in cookie_of(response)
    client.cookies["dibble_session"] = old
    client.get("/set?key=b&value=2")
    assert client.cookies["dibble_session"] != old


def test_use_slides_the_expiry(make: Make, store: SessionStore) -> None:
    clock = Clock()
    client = make(lifetime=600, clock=clock)
    client.get("/set?key=a&value=1")
    for _ in range(5):
        clock.now += 400  # beyond the lifetime in total, never idle that long
        assert client.get("/get?key=a").json()["value"] == 1
    clock.now += 601
    assert client.get("/get?key=a").json()["value"] is None


def test_a_read_writes_only_when_a_refresh_is_due(make: Make, store: SessionStore) -> None:
    clock = Clock()
    client = make(lifetime=1000, clock=clock)
    client.get("/set?key=a&value=1")
    assert client.cookies is not None
    sid = client.cookies["dibble_session"]
    before = store.load(sid, service_name(Notes), clock.now)
    clock.now += 50  # less than refresh_after (100)
    client.get("/get?key=a")
    after = store.load(sid, service_name(Notes), clock.now)
    assert before is not None and after is not None
    assert before.record is not None and after.record is not None
    assert after.record.expires == before.record.expires
    clock.now += 100
    client.get("/get?key=a")
    later = store.load(sid, service_name(Notes), clock.now)
    assert later is not None and later.record is not None
    assert later.record.expires == clock.now + 1000
    assert later.record.modified == before.record.modified


def test_in_place_changes_are_saved(make: Make) -> None:
    client = make()
    assert client.get("/append?item=a").json() == 1
    assert client.get("/append?item=b").json() == 2
    assert client.get("/all").json() == {"items": ["a", "b"]}


def test_delete_and_replace(make: Make) -> None:
    client = make()
    client.get("/set?key=a&value=1")
    client.get("/set?key=b&value=2")
    client.get("/delete?key=a")
    assert client.get("/all").json() == {"b": 2}
    assert client.get("/delete?key=zzz").status == 500  # a KeyError in the methlet
    assert client.get("/replace").text == "{'only': 1}"
    assert client.get("/all").json() == {"only": 1}


def test_increment_counts(make: Make) -> None:
    client = make()
    assert [client.get("/count").text for _ in range(3)] == ["1", "2", "3"]
    assert client.get("/all").json() == {"count": 3}


def test_changes_before_an_increment_are_saved_with_it(make: Make) -> None:
    client = make()
    assert client.get("/tally?key=a&value=1").text == "1"
    assert client.get("/tally?key=b&value=2").text == "2"
    assert client.get("/all").json() == {"a": "1", "b": "2", "seen": ["1", "2"], "count": 2}
    # A clear before an increment: the data goes, the count the methlet saw stays.
    count = int(client.get("/restart").text)
    assert client.get("/all").json() == {"count": count}


def test_rotation_keeps_the_data_under_a_new_id(make: Make, store: SessionStore) -> None:
    client = make()
    client.get("/set?key=a&value=1")
    assert client.cookies is not None
    old = client.cookies["dibble_session"]
    response = client.get("/rotate")
    new = client.cookies["dibble_session"]
    assert new != old
    assert f"dibble_session={new}" in cookie_of(response)
    assert client.get("/get?key=a").json()["value"] == 1
    assert store.load(old, "x", 0) is None


def test_invalidate_ends_the_session(make: Make, store: SessionStore) -> None:
    client = make()
    client.get("/set?key=a&value=1")
    assert client.cookies is not None
    old = client.cookies["dibble_session"]
    response = client.get("/end")
    assert "Max-Age=0" in cookie_of(response)
    assert "dibble_session" not in client.cookies
    assert client.get("/get?key=a").json()["value"] is None
    assert store.load(old, "x", 0) is None


def test_a_methlet_that_raises_saves_nothing(make: Make) -> None:
    client = make()
    client.get("/set?key=a&value=1")
    assert client.get("/fail").status == 500
    refused = client.get("/refuse")
    assert refused.status == 400
    assert "set-cookie" not in refused.headers
    assert client.get("/all").json() == {"a": 1}


def test_services_are_apart_unless_they_share_a_name(make: Make) -> None:
    class AlsoShared(dibble.Plugin):
        session_service = "notes-shared"

        def onPut(self) -> str:
            self.session["from"] = "also"
            return "ok"

    client = make(Notes(), Other(), Shared(), AlsoShared())
    client.get("/set?key=a&value=1")
    assert client.get("/other").json() == {"mine": "other"}
    assert client.get("/all").json() == {"a": 1}
    client.get("/put")
    assert client.get("/shared").json() == {"from": "also"}


def test_caching_fields_are_merged(make: Make) -> None:
    client = make()
    response = client.get("/cached")
    assert response.text == "cached?"
    assert response.headers["cache-control"] == "private, max-age=60"
    assert response.headers["vary"] == "Accept-Encoding, Cookie"


def test_blocking_and_async_methlets(make: Make) -> None:
    client = make()
    assert client.get("/threaded?value=t").text == "in a thread"
    assert client.get("/async?value=a").text == "async"
    assert client.get("/all").json() == {"threaded": "t", "async": "a"}


def test_a_streamed_response_saves_at_its_first_flush(make: Make) -> None:
    client = make()
    response = client.get("/stream")
    assert response.text == "part 1\npart 2\n"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "set-cookie" in response.headers
    assert client.get("/all").json() == {"streamed": True}


def test_a_change_after_the_head_went_out_is_an_error(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    client = make()
    client.get("/set?key=a&value=1")
    with caplog.at_level(logging.ERROR, "dibble.error"):
        # The head is out, so the error can only end the connection.
        response = client.get("/late")
    assert response.text.startswith("part 1")
    assert client.transport is not None and client.transport.aborted
    assert "the session was saved when the response head was sent" in caplog.text
    assert client.get("/all").json() == {"a": 1}


def test_too_much_data_is_refused(make: Make) -> None:
    client = make(max_size=1000)
    assert client.get("/big?size=500").status == 200
    failed = client.get("/big?size=2000")
    assert failed.status == 500
    assert "max_size" in failed.text
    assert client.get("/all").json() == {"big": "x" * 500}


def test_values_json_cannot_hold_fail_where_they_are_set(make: Make) -> None:
    client = make()
    response = client.get("/bad")
    assert response.status == 500
    assert "session value for &#x27;bad&#x27; cannot be stored" in response.text


def test_expired_data_goes_to_the_cleanup_hook(make: Make, store: SessionStore) -> None:
    clock = Clock()
    notes = Notes()
    client = make(notes, lifetime=60, clock=clock)
    client.get("/set?key=a&value=1")
    pool = client.server.sessions
    assert pool is not None
    assert pool.cleanup() == 0
    clock.now += 61
    assert pool.cleanup() == 1
    assert notes.expired == [{"a": 1}]
    assert pool.cleanup() == 0


def test_a_request_that_finds_its_data_expired_runs_the_hook(
    make: Make, store: SessionStore
) -> None:
    class Short(Notes):
        session_lifetime = 30

    clock = Clock()
    short = Short()
    client = make(short, lifetime=3600, clock=clock)
    client.get("/set?key=a&value=1")
    clock.now += 31  # the service's data expired, the session did not
    assert client.get("/get?key=a").json()["value"] is None
    assert short.expired == [{"a": 1}]
    client.get("/set?key=b&value=2")
    assert client.get("/all").json() == {"b": 2}


def test_per_service_lifetimes_from_the_pool(make: Make) -> None:
    clock = Clock()
    client = make(Notes(), Other(), lifetime=3600, clock=clock)
    pool = client.server.sessions
    assert pool is not None
    pool.lifetimes[service_name(Other)] = 10
    client.get("/set?key=a&value=1")
    client.get("/other")
    clock.now += 11
    assert client.get("/all").json() == {"a": 1}
    assert client.get("/other").json() == {"mine": "other"}  # fresh: the old one expired


def test_cleanup_runs_periodically_on_the_loop() -> None:
    notes = Notes()
    clock = Clock()
    pool = SessionPool(MemoryStore(), lifetime=5, cleanup_interval=0.05, clock=clock)
    context = dibble.Context()
    server = dibble.HTTPServer(("127.0.0.1", 0), context, sessions=pool, access_log=False)
    server.register(notes)
    context.start_in_thread()
    try:
        port = server.addresses[0][1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/set?key=a&value=1")
        assert conn.getresponse().read() == b"set"
        conn.close()
        clock.now += 10
        deadline = time.monotonic() + 5
        while not notes.expired and time.monotonic() < deadline:
            time.sleep(0.02)
        assert notes.expired == [{"a": 1}]
    finally:
        context.join(5)
        pool.close()


def test_the_default_pool_keeps_sessions_in_the_data_directory(tmp_path: Path) -> None:
    config = dibble.config.parse_config({"paths": {"data_dir": str(tmp_path / "data")}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    server.register(Notes())
    with TestClient(server, cookies=True) as client:
        client.get("/set?key=a&value=1")
        assert client.get("/all").json() == {"a": 1}
        pool = server.sessions
        assert pool is not None
        assert pool.made_by_default
    assert server.sessions is None  # closed with the server
    path = tmp_path / "data" / "sessions.sqlite3"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM dibble_session_values").fetchone() == (1,)
    db.close()


def test_without_a_data_directory_the_default_pool_is_in_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "dibble.error"), TestClient(Notes(), cookies=True) as c:
        c.get("/set?key=a&value=1")
        assert c.get("/all").json() == {"a": 1}
        assert c.server.sessions is not None
        assert "MemoryStore" in type(c.server.sessions.store).__name__
    assert "sessions are kept in memory" in caplog.text


def test_keys_no_store_can_hold_are_refused_where_they_are_set(make: Make) -> None:
    client = make()
    response = client.get("/set?key=%00&value=1")
    assert response.status == 500
    assert "without NUL" in response.text
    assert client.get("/set?key=%E2%98%83&value=1").text == "set"  # a snowman is fine
    assert client.get("/all").json() == {"\u2603": 1}
    # Arguments decode bad UTF-8 to U+FFFD, but bytes decoded elsewhere with
    # surrogateescape leave lone surrogates, which no store can write.
    with pytest.raises(ValueError, match="lone surrogate"):
        valid_key("name\udc80")
    assert valid_key("caf\u00e9 \U0001f600") == "caf\u00e9 \U0001f600"
