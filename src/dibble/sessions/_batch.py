"""Doing the session I/O of concurrent requests together.

A request's session is loaded when a methlet first reads it, and saved
when the response head goes out: two store operations per request, each a
round trip to Redis or a transaction in SQLite.  Done one request at a
time, that is most of what a session costs.

So once a route has been seen to use sessions, its later requests are
*prepared* (``Route.prepare``): before the methlet runs, the services it
used are loaded, and after it returns, what it changed is saved.  A
``Batcher`` gathers the operations that requests ask for during one turn
of the event loop and hands them to the store in one ``load_many`` and one
``save_many`` call: one pipelined round trip to Redis, one SQLite
transaction (group commit) for many requests.

Where the batch runs depends on the store:

* A local store (SQLite: ``in_loop``) runs it on the event loop at the end
  of the turn, with connections that never wait for a lock; the requests'
  responses go out right after.  Should another process hold the lock, the
  batch goes to the I/O thread, which may wait.
* A store with a connection of the loop's own (Redis: ``loop_batches``)
  sends it there and goes on when the replies arrive; the operations that
  arrive meanwhile form the next batch (under load, batches grow by
  themselves).
* Any other store runs it in the pool's I/O thread while the loop serves
  others, batches growing the same way.

No task and no future per request: the dispatcher runs a prepared sync
methlet from a ``Pending``'s callback.  A failure fails every request of
the batch with the 503 the pool makes of it; each request's changes are
still applied atomically and merged key by key, as when saved alone.

The first request of a route, and everything else (a service a methlet
reads for the first time, increments, rotation, logout), goes the plain
synchronous way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from ..app import HTTPError, Pending, Request
from ._store import LoadItem, SaveItem, StoreBusy, StoreError

if TYPE_CHECKING:
    from ._pool import SessionPool
    from ._store import Loaded

__all__ = ["Batcher", "SessionPreparation"]

error_log: Final = logging.getLogger("dibble.error")

T = TypeVar("T")
A = TypeVar("A")

#: Takes a request's results (and may raise: the request then fails with it).
Apply = Callable[[list[T]], None]


class _Queue(Generic[A, T]):
    """The operations of several requests: each a list of items, what to do with
    their results, and the ``Pending`` the request waits on."""

    __slots__ = ("entries", "items")

    def __init__(self) -> None:
        self.items: list[A] = []
        self.entries: list[tuple[int, Apply[T], Pending]] = []  # (how many items, ...)


class Batcher:
    """Store operations requested during one loop turn, done in one call each."""

    def __init__(self, pool: SessionPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        #: The store's way of running batches on this loop, if it has one.
        self.on_loop = pool.store.loop_batches(loop)
        #: Answers loads from what the loop kept, if it keeps anything (Redis).
        self._cached: Callable[[Sequence[LoadItem]], list[Loaded | None] | None] | None = getattr(
            self.on_loop, "cached", None
        )
        self._loads: _Queue[LoadItem, Loaded | None] = _Queue()
        self._saves: _Queue[SaveItem, bool] = _Queue()
        self._scheduled = False
        self._busy = False

    def load(self, items: Sequence[LoadItem], apply: Apply[Loaded | None]) -> Pending | None:
        """Load ``items`` (``(sid, service, now)``) in this turn's batch.

        ``apply`` gets the results; the ``Pending`` finishes after it (or
        fails with the store's error, or with what ``apply`` raised).  None:
        the loop had them all (``apply`` has run, and what it raised goes up).
        """
        cached = self._cached
        if cached is not None:
            found = cached(items)
            if found is not None:
                apply(found)
                return None
        return self._enqueue(self._loads, items, apply)

    def save(self, items: Sequence[SaveItem], apply: Apply[bool]) -> Pending:
        """Save ``items`` (``(sid, service, changes, now, expires)``) in this turn's batch."""
        return self._enqueue(self._saves, items, apply)

    def _enqueue(self, queue: _Queue[A, T], items: Sequence[A], apply: Apply[T]) -> Pending:
        pending = Pending()
        queue.items += items
        queue.entries.append((len(items), apply, pending))
        if not self._scheduled and not self._busy:
            self._scheduled = True
            # After every callback already queued: the other requests of
            # this turn get to add their operations first.
            self.loop.call_soon(self._flush)
        return pending

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not (self._loads.entries or self._saves.entries):
            return
        loads, self._loads = self._loads, _Queue()
        saves, self._saves = self._saves, _Queue()
        pool = self.pool
        if pool.store.in_loop:
            store = pool.store
            loads = _now(pool, store.load_many_now, loads)
            saves = _now(pool, store.save_many_now, saves)
            if not (loads.entries or saves.entries):
                return
        self._busy = True
        if self.on_loop is not None:
            # On the loop's own connection; what arrives meanwhile waits.
            down = pool.down()
            if down is not None:
                self._landed(down, down, loads, saves)
                return
            try:
                self.on_loop.batch(
                    loads.items,
                    saves.items,
                    lambda loaded, saved: self._landed(loaded, saved, loads, saves),
                )
            except Exception as exc:  # it could not be sent (a bug): its requests fail
                self._landed(exc, exc, loads, saves)
            return
        # In the I/O thread, which may wait; what arrives meanwhile waits too.
        work = pool.io_thread().submit(_execute, pool, loads.items, saves.items)
        work.add_done_callback(
            lambda done: self.loop.call_soon_threadsafe(self._done, done, loads, saves)
        )

    def _done(
        self,
        work: concurrent.futures.Future[tuple[_Outcome, _Outcome]],
        loads: _Queue[LoadItem, Loaded | None],
        saves: _Queue[SaveItem, bool],
    ) -> None:
        self._delivered(loads, saves, *work.result())

    def _landed(
        self,
        loaded: list[Any] | BaseException,
        saved: list[Any] | BaseException,
        loads: _Queue[LoadItem, Loaded | None],
        saves: _Queue[SaveItem, bool],
    ) -> None:
        failures: dict[int, BaseException] = {}  # one pool failure per error
        pool = self.pool
        self._delivered(
            loads, saves, _Outcome.of(pool, loaded, failures), _Outcome.of(pool, saved, failures)
        )

    def _delivered(
        self,
        loads: _Queue[LoadItem, Loaded | None],
        saves: _Queue[SaveItem, bool],
        loaded: _Outcome,
        saved: _Outcome,
    ) -> None:
        """A batch came back (from the thread or the loop's connection): hand it out."""
        self._busy = False
        _deliver(loads, loaded)
        _deliver(saves, saved)
        self._flush()  # what gathered meanwhile


class _Outcome:
    """What a batch call returned, or raised."""

    __slots__ = ("error", "results")

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.error: BaseException | None = None

    @classmethod
    def of(
        cls,
        pool: SessionPool,
        result: list[Any] | BaseException,
        failures: dict[int, BaseException],
    ) -> _Outcome:
        """The outcome of a part of a batch run on the loop (a ``StoreError`` → the 503)."""
        outcome = cls()
        if isinstance(result, StoreError):
            failure = failures.get(id(result))
            if failure is None:
                failure = failures[id(result)] = pool.failed(result)
            outcome.error = failure
        elif isinstance(result, BaseException):
            outcome.error = result
        else:
            outcome.results = result
            if result:
                pool.answered()
        return outcome


def _call(
    pool: SessionPool, method: Callable[[Sequence[Any]], list[Any]], items: Sequence[Any]
) -> _Outcome:
    outcome = _Outcome()
    if items:
        try:
            outcome.results = pool.call(method, items)
        except StoreBusy:
            raise
        except Exception as exc:  # handed to the requests, on the loop
            outcome.error = exc
    return outcome


def _now(
    pool: SessionPool,
    method: Callable[[Sequence[A]], list[T]],
    queue: _Queue[A, T],
) -> _Queue[A, T]:
    """Run ``queue`` on the loop and deliver; what is left for the thread (if busy)."""
    if not queue.entries:
        return queue
    try:
        outcome = _call(pool, method, queue.items)
    except StoreBusy:
        return queue
    _deliver(queue, outcome)
    return _Queue()


def _execute(
    pool: SessionPool, loads: list[LoadItem], saves: list[SaveItem]
) -> tuple[_Outcome, _Outcome]:
    # In the I/O thread; the deliveries are only called back on the loop.
    store = pool.store
    return _call(pool, store.load_many, loads), _call(pool, store.save_many, saves)


def _deliver(queue: _Queue[Any, T], outcome: _Outcome) -> None:
    error = outcome.error
    results = outcome.results
    start = 0
    for count, apply, pending in queue.entries:
        failure: BaseException | None = error
        if error is None:
            try:
                apply(results[start : start + count])
            except BaseException as exc:  # the request fails with it
                failure = exc
        elif isinstance(error, HTTPError):
            # Each request gets an exception of its own (tracebacks differ).
            failure = HTTPError(error.status, error.message, error.headers)
        # (any other error is a bug, not a store failure: each request gets its 500)
        try:
            pending.finish(failure)
        except Exception:  # the requests' own code handles its errors; this is a bug
            error_log.exception("delivering a session batch failed")
        start += count


class SessionPreparation:
    """A route's ``Preparation``: load its services before, save after, in batches."""

    def __init__(self, pool: SessionPool) -> None:
        self.pool = pool
        #: The (service, lifetime) pairs the route's requests have used.
        self.services: list[tuple[str, float | None]] = []

    def before(self, request: Request) -> Pending | None:
        return self.pool.for_request(request).preload(self.services)

    def after(self, request: Request) -> Pending | None:
        state = request.session_state
        return state.save_batched() if state is not None else None
