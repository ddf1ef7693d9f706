"""``Housekeeping``: the periodic timer and the jobs it runs.

Every ``interval`` seconds (300 by default) the timer runs each job once,
one after another, in a thread of its own: jobs do I/O (stores, files,
SMTP) and run application code, which must never hold the event loop.
Rules that keep a server healthy whatever a job does:

* A job that raises is logged with its traceback in the error log; the
  other jobs of that tick still run, and so does the next tick.
* Ticks never overlap: a tick still running when the next is due makes the
  timer skip that one (with a warning).
* With several worker processes only one of them runs the *exclusive* jobs
  (the default): the one holding the housekeeping lock (``_lock.py``),
  which every tick takes or renews.  Jobs added with ``exclusive=False``
  (flushing this process's statistics) run in every worker.

``run_once()`` runs a tick now, in the calling thread: for tests and the
admin area's "run now" button.  ``add_job(name, func)`` lets any part of an
application register a job of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from ._lock import Holder, HousekeepingLock, LockError, MemoryLock, new_owner

__all__ = ["Housekeeping", "Job", "JobRun"]

error_log: Final = logging.getLogger("dibble.error")
log: Final = logging.getLogger("dibble.housekeeping")

JobFunc = Callable[[], object]


@dataclass(frozen=True, slots=True)
class Job:
    """A named job; ``exclusive`` jobs run only in the worker holding the lock."""

    name: str
    func: JobFunc
    exclusive: bool = True


@dataclass(frozen=True, slots=True)
class JobRun:
    """What one run of a job did: when, how long, its result or its error."""

    name: str
    started: float
    duration: float
    result: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Housekeeping:
    """The timer of one server and its jobs.

    ``lock`` elects one worker among those sharing it (a ``MemoryLock`` by
    default: one per process); ``lock_ttl`` is how long a lock lives without
    renewal (default three intervals), so a worker that died is replaced by
    another that long after its last tick.  ``clock`` gives the time of
    day (replaceable in tests).
    """

    def __init__(
        self,
        *,
        interval: float = 300.0,
        lock: HousekeepingLock | Callable[[], HousekeepingLock] | None = None,
        lock_ttl: float | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError("the housekeeping interval must be positive")
        self.interval = interval
        self.lock_ttl = lock_ttl if lock_ttl is not None else 3 * interval
        self.owner = owner or new_owner()
        self.clock = clock
        self._lock: HousekeepingLock | None = None
        self._lock_factory: Callable[[], HousekeepingLock]
        # A lock given is the caller's to close; one made here is closed at stop.
        self._owns_lock = not isinstance(lock, HousekeepingLock)
        if isinstance(lock, HousekeepingLock):
            self._lock = lock
            self._lock_factory = lambda: lock
        else:
            self._lock_factory = lock or MemoryLock
        self._lock_failing = False
        self._jobs: dict[str, Job] = {}
        #: The last run of each job, by name.
        self.last_runs: dict[str, JobRun] = {}
        #: Whether this worker held the lock at the last tick.
        self.held = False
        #: Ticks run so far, and when the last one started (None: none yet).
        self.ticks = 0
        self.last_tick: float | None = None
        #: True for the timer a server made from its configuration.
        self.made_by_default = False
        self._running = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._on_start: list[Callable[[], None]] = []
        self._on_stop: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<Housekeeping every {self.interval:g}s, {len(self._jobs)} job(s)>"

    # --- jobs -----------------------------------------------------------------------

    def add_job(self, name: str, func: JobFunc, *, exclusive: bool = True) -> None:
        """Run ``func()`` at every tick, after the jobs added before it.

        ``func`` runs in the timer's thread; what it returns (if not None) is
        shown as the run's result.  ``exclusive=False`` runs it in every
        worker, not only in the one holding the lock.
        """
        if not name:
            raise ValueError("a job needs a name")
        if name in self._jobs:
            raise ValueError(f"there is already a housekeeping job named {name!r}")
        self._jobs[name] = Job(name, func, exclusive)

    def remove_job(self, name: str) -> None:
        """Stop running the job called ``name`` (KeyError if there is none)."""
        del self._jobs[name]

    @property
    def jobs(self) -> list[Job]:
        """The jobs, in the order they run."""
        return list(self._jobs.values())

    def on_start(self, func: Callable[[], None]) -> None:
        """Call ``func()`` when the timer starts (on the event loop: keep it short)."""
        self._on_start.append(func)

    def on_stop(self, func: Callable[[], None]) -> None:
        """Call ``func()`` when the timer stops."""
        self._on_stop.append(func)

    # --- the lock -------------------------------------------------------------------

    @property
    def lock(self) -> HousekeepingLock:
        """The lock (opened on first use)."""
        if self._lock is None:
            self._lock = self._lock_factory()
        return self._lock

    def holder(self) -> Holder | None:
        """Who holds the lock now (None when free or when the lock cannot be read)."""
        try:
            return self.lock.holder()
        except (LockError, OSError, ValueError) as exc:
            log.warning("housekeeping: cannot read the lock: %s", exc)
            return None

    def _take_lock(self) -> bool:
        try:
            held = self.lock.acquire(self.owner, self.lock_ttl)
        except (LockError, OSError, ValueError) as exc:
            if not self._lock_failing:
                error_log.error(
                    "housekeeping: cannot take the lock (%s); the jobs that run once per "
                    "site are skipped until it works",
                    exc,
                )
            self._lock_failing = True
            return False
        if self._lock_failing:
            error_log.warning("housekeeping: the lock works again")
            self._lock_failing = False
        if held != self.held:
            log.info(
                "housekeeping: %s the lock (%s)",
                "this worker holds" if held else "another worker holds",
                self.lock.description,
            )
        return held

    # --- running --------------------------------------------------------------------

    def run_once(self) -> list[JobRun]:
        """Run one tick now, in this thread (waits for a tick in progress to end)."""
        with self._running:
            return self._tick()

    def _tick(self) -> list[JobRun]:
        self.last_tick = self.clock()
        self.held = self._take_lock()
        runs = [
            self._run(job) for job in list(self._jobs.values()) if self.held or not job.exclusive
        ]
        self.ticks += 1
        return runs

    def _run(self, job: Job) -> JobRun:
        started = self.clock()
        begun = time.perf_counter()
        result = ""
        error: str | None = None
        try:
            value = job.func()
            result = "" if value is None else str(value)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            error_log.exception("housekeeping: the job %r failed", job.name)
        run = JobRun(job.name, started, time.perf_counter() - begun, result, error)
        self.last_runs[job.name] = run
        if error is None:
            log.debug("housekeeping: %s: %s (%.3f s)", job.name, result or "done", run.duration)
        return run

    def _tick_and_release(self) -> None:
        try:
            self._tick()
        finally:
            self._running.release()

    async def _timer(self) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        while True:
            await asyncio.sleep(self.interval)
            if not self._running.acquire(blocking=False):
                log.warning(
                    "housekeeping: the last tick is still running after %g s; skipping one",
                    self.interval,
                )
                continue
            try:
                future = loop.run_in_executor(executor, self._tick_and_release)
            except BaseException:
                self._running.release()
                raise
            await future

    @property
    def running(self) -> bool:
        """Whether the timer is started."""
        return self._task is not None and not self._task.done()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the timer on ``loop`` (from that loop's thread); the first tick
        comes after one interval."""
        if self.running:
            return
        for func in self._on_start:
            func()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dibble-housekeeping")
        self._task = loop.create_task(self._timer(), name="dibble-housekeeping")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the timer, wait up to ``timeout`` for a tick in progress, release the lock."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        finished = self._running.acquire(timeout=timeout)
        try:
            if self._lock is not None:
                try:
                    self._lock.release(self.owner)
                except (LockError, OSError) as exc:
                    log.warning("housekeeping: cannot release the lock: %s", exc)
                if self._owns_lock:
                    self._lock.close()
                    self._lock = None
            self.held = False
        finally:
            if finished:
                self._running.release()
        if not finished:
            log.warning("housekeeping: a job still runs after %g s; leaving it behind", timeout)
        for func in self._on_stop:
            try:
                func()
            except Exception:
                error_log.exception("housekeeping: error while stopping")
