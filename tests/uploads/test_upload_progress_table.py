"""The in-memory progress table: keyed by owner, bounded, and the request helpers."""

from __future__ import annotations

import time

import pytest

from dibble.http import RequestHead
from dibble.uploads import (
    PROGRESS_COOKIE,
    ProgressTable,
    new_progress_token,
    progress_cookie,
    progress_owner,
    upload_id_of,
)


def head(target: bytes, cookie: bytes | None = None) -> RequestHead:
    request = RequestHead()
    request.target = target
    request.raw_headers = [(b"cookie", cookie)] if cookie is not None else []
    return request


def test_records_belong_to_their_owner() -> None:
    table = ProgressTable()
    record = table.begin("owner-a", "u1", 100)
    record.received = 40
    assert table.get("owner-a", "u1") is record
    assert table.get("owner-b", "u1") is None
    assert record.as_dict() == {"received": 40, "total": 100, "done": False, "failed": False}
    again = table.begin("owner-a", "u1", 50)  # the same id started again
    assert table.get("owner-a", "u1") is again


def test_table_is_bounded() -> None:
    table = ProgressTable(max_records=3)
    for n in range(10):
        table.begin("o", f"u{n}", None)
    assert len(table) == 3
    assert table.get("o", "u9") is not None
    assert table.get("o", "u0") is None


def test_finished_records_expire() -> None:
    table = ProgressTable(keep_seconds=0.0)
    old = table.begin("o", "old", 1)
    old.done = True
    old.updated = time.monotonic() - 1
    table.begin("o", "new", 1)
    assert table.get("o", "old") is None
    assert table.get("o", "new") is not None
    with pytest.raises(ValueError, match="max_records"):
        ProgressTable(max_records=0)


def test_request_helpers() -> None:
    token = new_progress_token()
    assert len(token) >= 22
    assert progress_owner(head(b"/", f"a=1; {PROGRESS_COOKIE}={token}".encode())) == token
    assert progress_owner(head(b"/", f"{PROGRESS_COOKIE}=short".encode())) is None
    assert progress_owner(head(b"/")) is None
    assert upload_id_of(head(b"/up?x=1&_upload_id=abc-123")) == "abc-123"
    assert upload_id_of(head(b"/up?_upload_id=bad%20id")) is None
    assert upload_id_of(head(b"/up?_upload_id=" + b"x" * 65)) is None
    assert upload_id_of(head(b"/up")) is None
    name, value = progress_cookie(token, secure=True)
    assert name == "Set-Cookie"
    assert value == f"{PROGRESS_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Secure"
