"""``Statistics``: the collector, the store, the request log and their thread.

One ``Statistics`` per server.  The protocol calls its ``observer`` (the
``Collector``) for every response, on the event loop; everything slow
happens in the ``dibble-stats`` thread or in whoever calls ``flush``:

* every ``log_interval`` seconds (every 50 ms while many are waiting), the
  waiting request-log rows are written;
* every ``flush_interval`` seconds (sooner when too many distinct counters
  piled up), and whenever the housekeeping timer or an admin page calls
  ``flush()``, the counters are taken from the collector and added to the
  store;
* at ``close()`` (the server stopping) a last flush.

The counters are taken on the event loop (``call_soon_threadsafe`` and a
wait for the answer), so the hot path needs no lock.  A batch the store
refuses (Redis down, the file's folder gone, the disk full) is kept and
sent again, before newer counts, at the next flush; the error log says
when the store fails and when it works again, not at every flush.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from ._bots import BotDetector, ReverseDNS
from ._collector import INVALID, Collector, DayCounts, RouteInfo
from ._model import Increments, StatsReport, build_report, merge
from ._requestlog import RequestLog
from ._stores import MemoryStatsStore, StatsStore, StoreError

if TYPE_CHECKING:
    from ..db import Database

__all__ = ["Statistics", "increments_of"]

error_log: Final = logging.getLogger("dibble.error")

_METHOD_FIELDS: Final = {
    "GET": "get",
    "POST": "post",
    "HEAD": "head",
    "PUT": "put",
    "DELETE": "delete",
}
_MAX_UNSENT: Final = 64
_HANDOVER_TIMEOUT: Final = 5.0
_BUSY_ROWS: Final = 100


def increments_of(
    taken: Iterable[tuple[datetime.date, DayCounts]],
    route_info: Callable[[str], RouteInfo],
) -> Increments:
    """The store increments of counters taken from a ``Collector``."""
    increments: Increments = {}

    def add(scope: str, key: str, fields: list[tuple[str, int]]) -> None:
        for name, amount in fields:
            if amount:
                counter = (scope, key, name)
                increments[counter] = increments.get(counter, 0) + amount

    for day, counts in taken:
        date = day.isoformat()
        for (route, method, status, bot, user, project, bucket), (n, size) in counts.entries():
            invalid = route == INVALID
            fields = [("requests", n), ("bytes_sent", size)]
            if invalid:
                fields.append(("invalid", n))
            else:
                method_field = _METHOD_FIELDS.get(method)
                if method_field is not None:
                    fields.append((method_field, n))
                if (
                    status in (200, 206)
                    and method in ("GET", "HEAD")
                    and route_info(route).is_file
                ):
                    fields.append(("files_served", n))
            if status == 404:
                fields.append(("not_found", n))
            if bot:
                add("bots", "", fields)
            else:
                add("day", date, fields)
                add("forever", "", fields)
                if user is not None:
                    add("user", user, fields)
                if project is not None:
                    add("project", project, fields)
            add("status", "", [(str(status), n)])
            if not invalid and bucket >= 0:
                add("latency", route, [(str(bucket), n)])
    return increments


class Statistics:
    """Counts of requests kept in ``store``, and optionally the request log.

    ``counting``: whether requests are counted (False: only the request log
    is kept).  ``request_log``: the database of the request log (a
    ``dibble.db.Database`` or a function opening one), None for none.
    ``start_thread=False`` leaves all writing to explicit ``flush()``
    calls (tests).  See docs/statistics.md for everything else.
    """

    def __init__(
        self,
        store: StatsStore | None = None,
        *,
        counting: bool = True,
        request_log: Database | Callable[[], Database] | None = None,
        request_log_bots: bool = False,
        request_log_buffer: int = 20_000,
        request_log_days: float = 90.0,
        masked_args: Iterable[str] = (),
        bots: BotDetector | None = None,
        max_keys: int = 10_000,
        flush_interval: float = 300.0,
        log_interval: float = 0.1,
        project_cookie: str = "dibble_project",
        clock: Callable[[], float] = perf_counter,
        wall: Callable[[], float] = time.time,
        start_thread: bool = True,
    ) -> None:
        self.store: StatsStore = store if store is not None else MemoryStatsStore()
        self.counting = counting
        self.bots = bots if bots is not None else BotDetector()
        self.flush_interval = flush_interval
        self.log_interval = log_interval
        self._wall = wall
        self.collector = Collector(
            self.bots,
            counting=counting,
            request_log=request_log is not None,
            max_rows=request_log_buffer,
            log_bots=request_log_bots,
            max_keys=max_keys,
            project_cookie=project_cookie,
            on_full=self._full,
            clock=clock,
            wall=wall,
        )
        self.request_log: RequestLog | None = None
        collector = self.collector
        if request_log is not None:
            assert collector.plain_rows is not None
            assert collector.log_rows is not None
            self.request_log = RequestLog(
                request_log,
                collector.plain_rows,
                collector.log_rows,
                masked_args=tuple(masked_args),
                max_rows=request_log_buffer,
                keep_days=request_log_days,
                wall=wall,
            )
        self._clock = clock
        #: What the protocol calls for every response (``response``, ``invalid``).
        self.observer: Collector = self.collector
        #: True for the ``Statistics`` a server made from its configuration.
        self.made_by_default = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._unsent: list[tuple[str, Increments]] = []
        self._store_failing = False
        self._dropped_reported = 0
        self._flush_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._wake = threading.Event()
        self._flush_asked = False
        self._stop = threading.Event()
        self._closed = False
        self._last_flush = time.monotonic()
        self._thread: threading.Thread | None = None
        # Counts kept in memory anyway need no thread to move them (a flush
        # when too many piled up is quick, and runs on the loop).
        needed = (
            not isinstance(self.store, MemoryStatsStore)
            or self.request_log is not None
            or self.bots.reverse_dns is not None
        )
        if start_thread and needed:
            self._thread = threading.Thread(target=self._run, name="dibble-stats", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        log = " + request log" if self.request_log is not None else ""
        return f"<Statistics {self.store.description}{log}>"

    # --- the event loop -----------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The loop (and so the thread) the collector is called on; None: no loop."""
        self.loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None

    def _on_loop(self, func: Callable[[], Any]) -> Any:
        """``func()``, run on the collector's event loop thread (blocking until done)."""
        loop = self.loop
        if (
            loop is None
            or threading.get_ident() == self._loop_thread
            or loop.is_closed()
            or not loop.is_running()
        ):
            return func()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(func())
                except BaseException as exc:
                    future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop closed meanwhile: nothing runs on it any more
            return func()
        deadline = time.monotonic() + _HANDOVER_TIMEOUT
        while True:
            try:
                return future.result(0.05)
            except concurrent.futures.TimeoutError:
                # Closing: the server no longer serves, so nothing runs ``response``
                # any more, and the loop thread may itself be waiting for this flush.
                if self._stop.is_set() and future.cancel():
                    return func()
                if time.monotonic() >= deadline and future.cancel():
                    raise

    def _full(self, what: str) -> None:
        # On the loop: too many counters; the thread (or, without one, this) flushes them.
        if what == "counters":
            self._flush_asked = True
            if self._thread is None:
                # On the loop, into memory: quick.  Skipped if a flush is running.
                if self._flush_lock.acquire(blocking=False):
                    try:
                        self._flush_counts()
                    finally:
                        self._flush_lock.release()
                return
        self._wake.set()

    # --- flushing -----------------------------------------------------------------------

    def flush(self) -> None:
        """Add the counts collected so far to the store, and write the waiting log rows.

        Blocking; safe from any thread (the event loop's included).  Never
        raises for a store error: the counts are kept and sent next time.
        """
        with self._flush_lock:
            self._flush_counts()
        self.write_log()

    def _flush_counts(self) -> None:
        # With ``_flush_lock`` held.
        self._flush_asked = False
        self._last_flush = time.monotonic()
        if not self.counting:
            return
        try:
            taken = self._on_loop(self.collector.take)
        except concurrent.futures.TimeoutError:
            error_log.warning("statistics: the event loop did not answer; flushing later")
            taken = []
        increments = increments_of(taken, self.collector.route_info)
        if increments:
            self._unsent.append((uuid.uuid4().hex, increments))
        self._send()

    def _send(self) -> None:
        unsent = self._unsent
        if len(unsent) > _MAX_UNSENT:
            # A long outage: fold the oldest batches into one so memory stays bounded.
            # (Only Redis batches can be half-known; one of them counted twice is the
            # price of a bounded buffer, and the log says so.)
            merged: Increments = {}
            for _, increments in unsent[: len(unsent) - _MAX_UNSENT // 2]:
                merge(merged, increments)
            del unsent[: len(unsent) - _MAX_UNSENT // 2]
            unsent.insert(0, (uuid.uuid4().hex, merged))
            error_log.warning("statistics: merged unsent batches while the store is failing")
        while unsent:
            batch, increments = unsent[0]
            try:
                self.store.add(increments, batch)
            except StoreError as exc:
                if not self._store_failing:
                    self._store_failing = True
                    error_log.error(
                        "statistics: %s; counts are kept in memory and sent again at the "
                        "next flush",
                        exc,
                    )
                return
            except Exception:
                error_log.exception("statistics: the store failed unexpectedly")
                return
            del unsent[0]
        if self._store_failing:
            self._store_failing = False
            error_log.warning("statistics: the store (%s) works again", self.store.description)

    def write_log(self) -> None:
        """Write the waiting request-log rows now (blocking; never raises)."""
        log = self.request_log
        if log is None:
            return
        with self._log_lock:
            # Rows are dated with the collector's offset: follow the wall clock's steps.
            self.collector.offset = self._wall() - self._clock()
            try:
                log.write()
                log.prune()
            except Exception:
                error_log.exception("request log: writing failed unexpectedly")
            dropped = self.collector.dropped
            if dropped > self._dropped_reported:
                error_log.warning(
                    "request log: %d row(s) dropped because the buffer was full "
                    "(the database is slow or stuck)",
                    dropped - self._dropped_reported,
                )
                self._dropped_reported = dropped

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.write_log()
                rdns = self.bots.reverse_dns
                if rdns is not None:
                    rdns.purge()
                due = time.monotonic() - self._last_flush >= self.flush_interval
                if self.counting and (due or self._flush_asked):
                    self.flush()
            except Exception:  # pragma: no cover - the thread must survive anything
                error_log.exception("statistics: the background thread failed")

    def _next_wait(self) -> float:
        """How long the thread sleeps: until the next flush, or the next log write."""
        wait = max(0.05, self.flush_interval - (time.monotonic() - self._last_flush))
        log = self.request_log
        if log is not None:
            # A busy log is drained every 50 ms rather than signalled from the hot
            # path, so the rows waiting stay well below the buffer's size.
            wait = min(wait, 0.05 if log.waiting >= _BUSY_ROWS else self.log_interval)
        if self.bots.reverse_dns is not None:
            wait = min(wait, 60.0)  # expired verdicts go within a minute
        return wait

    # --- reading ------------------------------------------------------------------------

    def report(self, days: int = 31) -> StatsReport:
        """The counts so far: the store's plus those not flushed yet (blocking).

        When the store cannot be read, ``store_error`` says why and the
        report holds only what this process has not flushed.
        """
        with self._flush_lock:
            error = ""
            try:
                stored = self.store.read()
            except StoreError as exc:
                stored = []
                error = str(exc)
            pending: Increments = {}
            for _, increments in self._unsent:
                merge(pending, increments)
            # A copy needs no hand-over: dict.copy() is one step for the interpreter.
            peeked = self.collector.peek()
            merge(pending, increments_of(peeked, self.collector.route_info))
        today = datetime.datetime.fromtimestamp(self._wall()).date()
        return build_report([*stored, *pending.items()], today, days, error)

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Flush once more and release the store, the request log and the thread."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self.flush()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        if self._unsent:
            error_log.error(
                "statistics: the store failed; the counts of %d flush(es) are lost at shutdown",
                len(self._unsent),
            )
        self.store.close()
        if self.request_log is not None:
            if self.request_log.waiting:
                error_log.error(
                    "request log: %d row(s) could not be written before shutdown",
                    self.request_log.waiting,
                )
            self.request_log.close()
        self.bots.close()

    @property
    def closed(self) -> bool:
        return self._closed


def reverse_dns(domains: Iterable[str], ttl: float) -> ReverseDNS:
    """A ``ReverseDNS`` checker for the built-in crawler domains plus ``domains``."""
    from ._bots import BOT_DOMAINS

    return ReverseDNS((*BOT_DOMAINS, *domains), ttl=ttl)
