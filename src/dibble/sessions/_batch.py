"""Doing the session I/O of concurrent requests together.

A request's session is loaded when a methlet first reads it, and saved
when the response head goes out: two store operations per request, each a
round trip to Redis or a transaction in SQLite.  Done one request at a
time on the event loop, that is most of what a session costs.

So once a route has been seen to use sessions, its later requests are
*prepared* (``Route.prepare``): before the methlet runs, the services it
used are loaded, and after it returns, what it changed is saved -- both as
futures that a ``Batcher`` gathers and hands to the store in one
``load_many``/``save_many`` call: one pipelined round trip to Redis, one
SQLite transaction (group commit) for many requests.  The call runs in the
pool's I/O thread, so the event loop serves other requests meanwhile; the
operations that arrive while a batch is out form the next one (under load,
batches grow by themselves).  A failure fails every request of the batch
with the 503 the pool makes of it; each request's changes are still
applied atomically and merged key by key, as when saved alone.

The first request of a route, and everything else (a service a methlet
reads for the first time, increments, rotation, logout), goes the plain
synchronous way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..app import HTTPError, Request

if TYPE_CHECKING:
    from ._pool import SessionPool
    from ._store import Changes, Loaded

__all__ = ["Batcher", "SessionPreparation"]

T = TypeVar("T")


class Batcher:
    """Store operations requested during one loop turn, done in one call each."""

    def __init__(self, pool: SessionPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self._loads: list[tuple[tuple[str, str, float], asyncio.Future[Loaded | None]]] = []
        self._saves: list[tuple[tuple[str, str, Changes, float, float], asyncio.Future[bool]]] = []
        self._scheduled = False
        self._busy = False

    def load(self, sid: str, service: str, now: float) -> asyncio.Future[Loaded | None]:
        future: asyncio.Future[Loaded | None] = self.loop.create_future()
        self._loads.append(((sid, service, now), future))
        self._schedule()
        return future

    def save(
        self, sid: str, service: str, changes: Changes, now: float, expires: float
    ) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = self.loop.create_future()
        self._saves.append(((sid, service, changes, now, expires), future))
        self._schedule()
        return future

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            # After every callback already queued: the other requests of
            # this turn get to add their operations first.
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not (self._loads or self._saves):
            return
        loads, self._loads = self._loads, []
        saves, self._saves = self._saves, []
        self._busy = True
        pool = self.pool
        work = pool.io_thread().submit(_execute, pool, loads, saves)
        work.add_done_callback(
            lambda done: self.loop.call_soon_threadsafe(self._done, done, loads, saves)
        )

    def _done(
        self,
        work: concurrent.futures.Future[tuple[_Outcome, _Outcome]],
        loads: list[tuple[Any, asyncio.Future[Loaded | None]]],
        saves: list[tuple[Any, asyncio.Future[bool]]],
    ) -> None:
        self._busy = False
        loaded, saved = work.result()
        _deliver(loads, loaded)
        _deliver(saves, saved)
        self._flush()  # what gathered meanwhile


class _Outcome:
    """What a batch call returned, or raised."""

    __slots__ = ("error", "results")

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.error: BaseException | None = None


def _call(
    pool: SessionPool, method: Callable[[Sequence[Any]], list[Any]], batch: Sequence[Any]
) -> _Outcome:
    outcome = _Outcome()
    if batch:
        try:
            outcome.results = pool.call(method, [args for args, _ in batch])
        except Exception as exc:  # handed to the requests, on the loop
            outcome.error = exc
    return outcome


def _execute(
    pool: SessionPool,
    loads: list[tuple[Any, asyncio.Future[Loaded | None]]],
    saves: list[tuple[Any, asyncio.Future[bool]]],
) -> tuple[_Outcome, _Outcome]:
    # In the I/O thread; the futures are only touched back on the loop.
    store = pool.store
    return _call(pool, store.load_many, loads), _call(pool, store.save_many, saves)


def _deliver(batch: Sequence[tuple[Any, asyncio.Future[T]]], outcome: _Outcome) -> None:
    error = outcome.error
    for index, (_, future) in enumerate(batch):
        if future.done():  # a request whose client left is cancelled
            continue
        if error is None:
            future.set_result(outcome.results[index])
        elif isinstance(error, HTTPError):
            future.set_exception(HTTPError(error.status, error.message, error.headers))
        else:  # a bug, not a store failure: each request gets its 500
            future.set_exception(error)


class SessionPreparation:
    """A route's ``Preparation``: load its services before, save after, in batches."""

    def __init__(self, pool: SessionPool) -> None:
        self.pool = pool
        #: The (service, lifetime) pairs the route's requests have used.
        self.services: list[tuple[str, float | None]] = []

    def before(self, request: Request) -> Awaitable[None] | None:
        return self.pool.for_request(request).preload(self.services)

    def after(self, request: Request) -> Awaitable[None] | None:
        state = getattr(request, "session_state", None)
        return state.save_batched() if state is not None else None
