"""What every session store implements, and the values stores exchange.

A store keeps two kinds of record:

* a session **id** (``sid``) with the time it was started and the time it
  expires.  Only ids a store holds are ever adopted from a cookie; an id a
  client invents is simply unknown.
* per id and **service** (a plugin or page), the service's data: a mapping
  of keys to JSON texts, with ``started``, ``modified`` and ``expires``.

Values cross the interface as JSON *texts*, one per key, never as Python
objects: stores never decode what they keep (no pickle anywhere), and the
session layer decodes a value only when a request reads it.

Writes are *changes*, not whole records: the keys a request set (with their
new JSON texts), the keys it deleted, and whether it cleared everything.  A
store applies one request's changes atomically, on top of whatever is stored
at that moment.  That is the merge rule that makes concurrent requests of
one session safe: two requests that change different keys both keep their
writes; when both change the same key, the later save wins.  ``increment``
is the atomic read-modify-write for counters.

Times are POSIX seconds (floats).  A record whose ``expires`` has passed is
treated as absent by every read, whether or not cleanup has removed it yet;
``take``/``take_expired`` remove expired records and hand their data back,
each to exactly one caller, so cleanup hooks run once even with several
workers sharing a store.

Every method may raise ``StoreError``; none may raise anything else for a
failure of the storage itself.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

__all__ = [
    "BatchDone",
    "Changes",
    "Expired",
    "LoadItem",
    "Loaded",
    "LoopBatches",
    "Record",
    "SaveItem",
    "SessionInfo",
    "SessionStore",
    "StoreBusy",
    "StoreError",
    "integer_value",
]

#: Meta data of a record is kept beside its values under names starting with
#: NUL, which a session key may never contain.
META_PREFIX: Final = "\x00"


class StoreBusy(Exception):
    """An operation that was asked not to wait (``*_now``) would have had to.

    Not a failure: the pool does the same work again off the event loop,
    where waiting is allowed.
    """


class StoreError(Exception):
    """The store failed (unreachable, locked, full): the request gets a 503.

    ``unavailable`` marks failures to reach the store at all (a Redis server
    that is down or not answering); the pool then fails fast for a short
    while instead of waiting on every request.
    """

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


# The values made per request are named tuples: immutable like frozen
# dataclasses, and several times cheaper to make.


class Record(NamedTuple):
    """One service's data in one session, as stored."""

    values: dict[str, str]
    started: float
    modified: float
    expires: float


class Loaded(NamedTuple):
    """What ``load`` found for a live id: its expiry and the service's record."""

    id_expires: float
    #: None when the service has no data in this session yet.
    record: Record | None


class Changes(NamedTuple):
    """One request's changes to one service's data (keys set, keys deleted, cleared)."""

    set: dict[str, str]
    deleted: frozenset[str] = frozenset()
    cleared: bool = False

    def __bool__(self) -> bool:
        return bool(self.set or self.deleted or self.cleared)


NO_CHANGES: Final = Changes({})


@dataclass(frozen=True, slots=True)
class Expired:
    """A record removed because it expired: for the service's cleanup hook."""

    sid: str
    service: str
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session, for listings (the admin pages)."""

    sid: str
    started: float
    expires: float
    services: tuple[str, ...]


#: A load in a batch: (session id, service, now).
LoadItem = tuple[str, str, float]
#: A save in a batch: (session id, service, changes, now, expires).
SaveItem = tuple[str, str, Changes, float, float]
#: Called with a batch's load results and save results, each a list or the error.
BatchDone = Callable[[list[Any] | BaseException, list[Any] | BaseException], None]


class LoopBatches(Protocol):
    """Runs a batch's loads and saves on the event loop, without blocking it."""

    def batch(self, loads: Sequence[LoadItem], saves: Sequence[SaveItem], done: BatchDone) -> None:
        """Start them; ``done(loaded, saved)`` is called on the loop with each part's
        results (as ``load_many``/``save_many`` return them) or its ``StoreError``."""


class SessionStore(ABC):
    """The interface of the memory, SQLite and Redis stores.

    Implementations are thread-safe: one store serves the event loop and the
    thread pool of blocking methlets at once.
    """

    #: A short description for messages and logs ("SQLite /srv/data/sessions.db").
    description: str = "session store"
    #: Whether doing many operations at once (``load_many``, ``save_many``)
    #: saves time: the pool then gathers those of concurrent requests.
    batches: bool = False
    #: Whether ``load_many_now`` and ``save_many_now`` may run on the event
    #: loop itself: the store is local (a file, memory) and those raise
    #: ``StoreBusy`` at once rather than wait for another writer.  Batches
    #: then cost no thread hand-off; a busy store falls back to the thread.
    in_loop: bool = False

    @abstractmethod
    def create(self, sid: str, now: float, expires: float) -> None:
        """Register a new id (that no other session has)."""

    @abstractmethod
    def load(self, sid: str, service: str, now: float) -> Loaded | None:
        """The id's expiry and the service's record; None if the id is unknown or expired.

        An expired service record is returned as it is (``record.expires <=
        now``): the caller hands it to ``take`` so its cleanup hook runs.
        """

    @abstractmethod
    def save(self, sid: str, service: str, changes: Changes, now: float, expires: float) -> bool:
        """Apply ``changes`` atomically; set the record's expiry and extend the id's.

        An expired record is emptied before the changes apply.  Returns False
        (and stores nothing) when the id is unknown or expired.
        """

    @abstractmethod
    def increment(
        self, sid: str, service: str, key: str, amount: int, now: float, expires: float
    ) -> int | None:
        """Add ``amount`` to the integer at ``key`` (0 when absent), atomically.

        Returns the new value, or None when the id is unknown or expired.
        Raises ``ValueError`` when the stored value is not an integer.
        """

    @abstractmethod
    def rename(self, old: str, new: str, now: float) -> bool:
        """Move a live session with all its services to a new id (id rotation).

        Returns False when ``old`` is unknown or expired.
        """

    @abstractmethod
    def delete(self, sid: str) -> None:
        """Remove the id and every service's data (logout); unknown ids are ignored."""

    @abstractmethod
    def take(self, sid: str, service: str, now: float) -> Expired | None:
        """Remove one record if it has expired, returning it to this caller only."""

    @abstractmethod
    def take_expired(self, now: float, limit: int = 1000) -> list[Expired]:
        """Remove up to ``limit`` expired records (and expired ids), returning their data."""

    @abstractmethod
    def sessions(self, now: float, limit: int = 1000) -> list[SessionInfo]:
        """Live sessions, oldest first, at most ``limit``."""

    def load_many(self, items: Sequence[tuple[str, str, float]]) -> list[Loaded | None]:
        """``load`` for each ``(sid, service, now)``; a store may do them in one go."""
        return [self.load(sid, service, now) for sid, service, now in items]

    def save_many(self, items: Sequence[tuple[str, str, Changes, float, float]]) -> list[bool]:
        """``save`` for each ``(sid, service, changes, now, expires)``, each atomic.

        A store may do them in one transaction or round trip; if it raises,
        none of them is known to have been stored.
        """
        return [self.save(*item) for item in items]

    def load_many_now(self, items: Sequence[tuple[str, str, float]]) -> list[Loaded | None]:
        """``load_many`` without waiting for locks: ``StoreBusy`` if it would wait."""
        raise StoreBusy(f"{self.description} does not answer on the event loop")

    def save_many_now(self, items: Sequence[tuple[str, str, Changes, float, float]]) -> list[bool]:
        """``save_many`` without waiting for locks: ``StoreBusy`` (nothing stored) if it would."""
        raise StoreBusy(f"{self.description} does not answer on the event loop")

    def loop_batches(self, loop: asyncio.AbstractEventLoop) -> LoopBatches | None:
        """What runs the pool's batches on ``loop`` itself, without blocking it (Redis's
        own connection there); None: they go to the I/O thread (or run ``*_now``)."""
        return None

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:  # noqa: B027
        """Let go of what ``loop_batches`` made for ``loop`` (on it, before it stops)."""

    def close(self) -> None:  # noqa: B027 - stores without connections need nothing
        """Release connections; the store is not used afterwards."""

    def summary(self, now: float) -> tuple[int, float | None, dict[str, int]]:
        """Live sessions at ``now``, for the admin pages: how many, when the oldest
        started (None: there are none), and how many hold data of each service.

        This default lists them all; a store may count without listing.
        """
        live = self.sessions(now, limit=1 << 62)
        services: dict[str, int] = {}
        for info in live:
            for service in info.services:
                services[service] = services.get(service, 0) + 1
        return len(live), (live[0].started if live else None), services


def integer_value(text: str, key: str) -> int:
    """The integer a stored JSON text holds; ValueError naming ``key`` otherwise."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if type(value) is not int:
        raise ValueError(f"session key {key!r} holds {text[:40]!r}, not an integer")
    return value
