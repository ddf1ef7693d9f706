"""Upload progress: how much of a body has arrived, for the client that sends it.

A request whose query string carries ``_upload_id=ID`` has its progress
recorded under ``(owner, ID)`` while its body streams in; the progress page
answers ``GET /_upload_progress?id=ID`` from the same key.  The owner is
what identifies the client: until sessions exist, a random token in the
``dibble_upload`` cookie (``HttpOnly``, ``SameSite=Lax``); nobody without
that cookie can read the record, whatever ID they guess.

``ProgressStore`` is the interface the session pool will implement to take
over; ``ProgressTable`` is the in-memory one.  Its size is bounded: finished
records are kept for ``keep_seconds``, and past ``max_records`` the oldest go
first, so a client inventing IDs cannot grow it without end.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from collections import OrderedDict
from typing import Final, Protocol

from ..http import RequestHead

#: The cookie that holds the client's progress token.
PROGRESS_COOKIE: Final = "dibble_upload"

_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{22,64}")
_UPLOAD_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ProgressRecord:
    """Bytes received so far of one upload, and whether it ended."""

    __slots__ = ("done", "failed", "received", "total", "updated")

    def __init__(self, total: int | None) -> None:
        self.received = 0
        #: The body's announced length; None for a chunked body.
        self.total = total
        self.done = False
        #: True when the upload ended without completing (refused or cut off).
        self.failed = False
        self.updated = time.monotonic()

    def as_dict(self) -> dict[str, int | bool | None]:
        return {
            "received": self.received,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
        }

    def __repr__(self) -> str:
        return f"<ProgressRecord {self.received}/{self.total} done={self.done}>"


class ProgressStore(Protocol):
    """Where progress records live; keyed by (owner, client-chosen upload id)."""

    def begin(self, owner: str, upload_id: str, total: int | None) -> ProgressRecord:
        """A fresh record for an upload that is starting (replacing an old one)."""

    def get(self, owner: str, upload_id: str) -> ProgressRecord | None:
        """The record, or None when there is none for this owner."""


class ProgressTable:
    """An in-memory ``ProgressStore``, bounded in size and age; thread-safe."""

    def __init__(self, *, max_records: int = 10_000, keep_seconds: float = 60.0) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.max_records = max_records
        self.keep_seconds = keep_seconds
        self._records: OrderedDict[tuple[str, str], ProgressRecord] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, owner: str, upload_id: str, total: int | None) -> ProgressRecord:
        record = ProgressRecord(total)
        key = (owner, upload_id)
        with self._lock:
            self._records.pop(key, None)
            self._records[key] = record
            self._prune(record.updated)
        return record

    def get(self, owner: str, upload_id: str) -> ProgressRecord | None:
        with self._lock:
            return self._records.get((owner, upload_id))

    def __len__(self) -> int:
        return len(self._records)

    def _prune(self, now: float) -> None:
        records = self._records
        while len(records) > self.max_records:
            records.popitem(last=False)
        # Records are in start order; drop finished ones that are old enough
        # from the front, stopping at the first that must stay.
        stale = now - self.keep_seconds
        for key in list(itertools.islice(records, 64)):
            record = records[key]
            if record.done and record.updated < stale:
                del records[key]
            elif not record.done and record.updated < now - 3600:
                del records[key]  # a record nobody finished in an hour is lost anyway


def progress_owner(head: RequestHead) -> str | None:
    """The progress token in the request's cookie, when it has a valid one."""
    for name, value in head.raw_headers:
        if name == b"cookie":
            for pair in value.decode("latin-1").split(";"):
                key, _, token = pair.strip().partition("=")
                if key == PROGRESS_COOKIE and _TOKEN.fullmatch(token):
                    return token
    return None


def upload_id_of(head: RequestHead) -> str | None:
    """The ``_upload_id`` query parameter, when present and well-formed."""
    target = head.target
    if b"_upload_id=" not in target:
        return None
    for pair in head.query_string.split("&"):
        key, _, value = pair.partition("=")
        if key == "_upload_id":
            return value if _UPLOAD_ID.fullmatch(value) else None
    return None


def valid_upload_id(value: str) -> bool:
    return _UPLOAD_ID.fullmatch(value) is not None


def new_progress_token() -> str:
    """128 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(16)


def progress_cookie(token: str, *, secure: bool = False) -> tuple[str, str]:
    """The ``Set-Cookie`` header field that hands ``token`` to the client."""
    value = f"{PROGRESS_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax"
    if secure:
        value += "; Secure"
    return ("Set-Cookie", value)
