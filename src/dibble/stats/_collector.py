"""The hot path: counting each response in memory, on the event loop.

``Collector.response`` is called by the protocol for every response it
finishes (``Collector.invalid`` for requests refused as malformed), on the
event loop thread.  It does no I/O, takes no lock, formats nothing: it
adds one to a counter, and, when the request log is on, appends the row's
values to a bounded buffer that the log's writer thread empties.

The common response (anonymous, not a bot) is counted in its route's own
dict under ``(method, status, latency bucket)``: the route is found by
identity (one dict lookup), and when the response is counted where the
route's last one was (the same method object and status, a latency within
that bucket's bounds) no key is made at all (``RouteCounts.entry_for``).
Its request-log row, when it has no arguments, is five values added to the
end of a flat list (``plain_rows``): no tuple per row for the garbage
collector to visit while it waits, and the writer takes the list's columns
with slices.
Responses of bots and of known users, and everything when the performance
log or reverse DNS is on, take ``_response``: the same result, more slowly.
A flush flattens everything into increments (``DayCounts.entries``).

Only the event loop thread touches the counters; a flush from another
thread asks the loop to run ``take`` (see ``Statistics``), so no count is
lost to a race and the hot path needs no lock.  The buffers are safe
between threads as they are: ``list += tuple``, a slice, ``del`` of a
slice, ``deque.append`` and ``popleft`` are each one step for the
interpreter, so the writer sees a row whole or not at all.

Days end at local midnight: the first response after it starts a new
day's counters.  The clock is ``perf_counter`` (the one ``Request.started``
uses), and midnight is worked out in it when a day starts, so the hot
path compares two floats.  Both clocks can be replaced, for tests.

Who the user is costs nothing to find out for most requests: only a
request with sessions (which is where logins live) or a route
behind a decorator (HTTP authentication wraps the methlet) is looked at.
The user counted is the one the page itself asked about (a login in the
session, or HTTP authentication); a request that never asked is anonymous.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ..server._access import _log_performance  # the performance line's one definition
from ._bots import BotDetector
from ._model import BOUNDS
from ._native import speedups

if TYPE_CHECKING:
    from ..app import Request, Route
    from ..http import RequestHead

__all__ = [
    "INVALID",
    "MICROS",
    "PLAIN_WIDTH",
    "Collector",
    "DayCounts",
    "Key",
    "LogRow",
    "RouteCounts",
    "RouteInfo",
    "write_performance",
]

error_log: Final = logging.getLogger("dibble.error")

#: The route name invalid requests (protocol errors) are counted under.
INVALID: Final = "\0invalid"

#: (route name, method, status, bot, user, project, latency bucket (-1: none)).
Key = tuple[str, str, int, bool, str | None, str | None, int]

#: The values of one request-log row of an anonymous request without arguments,
#: kept flat in ``Collector.plain_rows`` (row after row): created, method, target
#: (bytes, decoded by the writer), duration, status.  Created (microseconds since
#: the epoch) and duration (microseconds) come as ``MICROS + count``.
PLAIN_WIDTH: Final = 5

#: 2**52: a float ``MICROS + n`` (0 <= n < 2**52) holds n rounded to a whole number,
#: in the last 13 hex digits of its big-endian bytes.  The hot path adds (one float
#: operation); the writer packs and hexlifies whole columns in C, with no number
#: formatting (which costs CPython about 1,000 instructions a float).
MICROS: Final = 4503599627370496.0

#: Any other request-log row, as the hot path saw it (the writer converts it):
#: (created, method, target, parsed arguments, user, project, privilege, session
#: id (hashed by the writer, never stored), duration in ms (None: refused), status).
#: Plain tuples: a named one costs a Python call per request.
LogRow = tuple[
    float,
    str,
    bytes,
    "dict[str, list[str]] | None",
    "str | None",
    "str | None",
    "int | None",
    "str | None",
    "float | None",
    int,
]

_PROJECT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_PRIVILEGE: Final = 9
_NOBODY: Final = (None, None, None, None)
# ``63 in target``: ``b"?" in target`` first tries the bytes as an integer, and
# raising and clearing that TypeError costs more than the rest of the test.
_QUESTION_MARK: Final = ord("?")


class RouteInfo(NamedTuple):
    """What the flush needs to know about a route, learnt once per route name."""

    is_file: bool
    #: Behind a decorator (HTTP authentication among them): look for a user.
    guarded: bool


class RouteCounts:
    """One day's counts of one route's anonymous, non-bot responses.

    The counter the last response went to is kept at hand with what it
    counts (method, status, the latency bucket's bounds): a route's
    responses mostly repeat the last one's, and then the hot path compares
    instead of making, hashing and looking up a key.
    """

    __slots__ = ("counts", "entry", "guarded", "high", "low", "method", "name", "status")

    def __init__(self, name: str, guarded: bool) -> None:
        self.name = name
        self.guarded = guarded
        #: (method, status, latency bucket) -> [responses, body bytes]
        self.counts: dict[tuple[str, int, int], list[int]] = {}
        # The last counter: no response matches until one was counted.
        self.method: str | None = None
        self.status = 0
        self.low = math.inf
        self.high = -math.inf
        self.entry: list[int] = []

    def entry_for(self, method: str, status: int, elapsed: float) -> list[int]:
        """The counter of ``(method, status, bucket of elapsed)``, made the last one."""
        bucket = bisect_right(BOUNDS, elapsed)
        key = (method, status, bucket)
        entry = self.counts.get(key)
        if entry is None:
            entry = self.counts[key] = [0, 0]
        self.method = method
        self.status = status
        self.low = BOUNDS[bucket - 1] if bucket else -math.inf
        self.high = BOUNDS[bucket] if bucket < len(BOUNDS) else math.inf
        self.entry = entry
        return entry


class DayCounts:
    """Everything counted on one day (until a flush takes it)."""

    __slots__ = ("by_name", "by_route", "other")

    def __init__(self) -> None:
        #: Every route's counts, by route name.
        self.by_name: dict[str, RouteCounts] = {}
        #: The same, by the route objects the router keeps (the hot path's lookup);
        #: routes made per request (unknown paths, static files) are only found by name.
        self.by_route: dict[Any, RouteCounts] = {}
        #: Bots, users, invalid requests: key -> [responses, body bytes].
        self.other: dict[Key, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self.other) or any(rc.counts for rc in self.by_name.values())

    def entries(self) -> Iterator[tuple[Key, list[int]]]:
        """Every counter under its full key."""
        for rc in self.by_name.values():  # every route's counts are here (by_route shares them)
            name = rc.name
            for (method, status, bucket), entry in rc.counts.items():
                yield (name, method, status, False, None, None, bucket), entry
        yield from self.other.items()

    def copy(self) -> DayCounts:
        """A deep enough copy, safe to make beside the event loop (each step is one C call)."""
        copy = DayCounts()
        for name, rc in self.by_name.copy().items():
            twin = RouteCounts(rc.name, rc.guarded)
            twin.counts = {k: list(v) for k, v in rc.counts.copy().items()}
            copy.by_name[name] = twin
        copy.other = {k: list(v) for k, v in self.other.copy().items()}
        return copy


class _PyCore:
    """The collector's fast way, in Python, and the state it reads.

    ``Collector`` is built on the compiled twin of this class,
    ``dibble.stats._speedups.CollectorCore`` (the same steps in C, its
    fields shown as these attributes), when it was built and
    ``DIBBLE_NO_EXTENSIONS`` is not set; else on this.  The statistics
    tests run both (tests/stats/conftest.py, ``fast_way``).
    """

    __slots__ = (
        "_agents",
        "_by_route",
        "_day_end",
        "_last_agent",
        "_last_bot",
        "_max_plain",
        "_origin",
        "clock",
        "counting",
        "detector",
        "dropped",
        "plain_rows",
    )

    _agents: dict[bytes | None, bool]
    #: The routes the fast way counts, by route object (an empty dict: none).
    _by_route: dict[Any, RouteCounts]
    #: When the current day ends, in ``clock()`` time.
    _day_end: float
    # The last user agent and its verdict: most responses in a row come from
    # one agent, and comparing bytes costs less than hashing them afresh.
    _last_agent: bytes | None
    _last_bot: bool
    #: ``max_rows * PLAIN_WIDTH``: what the hot path compares.
    _max_plain: int
    #: ``clock() * 1e6 + _origin``: MICROS + microseconds since the epoch (see MICROS).
    _origin: float
    clock: Callable[[], float]
    counting: bool
    detector: BotDetector
    #: Rows the request log had no room for (only ever grows).
    dropped: int
    plain_rows: list[Any] | None

    if TYPE_CHECKING:  # what the fast way hands over to (Collector has them)

        def new_day(self, now: float) -> None: ...

        def _response(
            self,
            client: tuple[str, int] | None,
            request: Request,
            status: int,
            size: int,
            now: float,
        ) -> None: ...

        def _log(
            self,
            request: Request,
            status: int,
            now: float,
            elapsed: float,
            identity: tuple[str | None, str | None, int | None, str | None],
        ) -> None: ...

        def _failed(self, exc: Exception) -> None: ...

    def response(
        self, client: tuple[str, int] | None, head: RequestHead | None, status: int, size: int
    ) -> None:
        """Count one finished response (called by the protocol, on the event loop)."""
        # Every line here costs every request: see docs/statistics.md for the figures.
        # _speedups.c does the same, step for step: change both.
        request: Request = head  # type: ignore[assignment]
        try:
            now = self.clock()
            if now >= self._day_end:
                self.new_day(now)
            counts = self._by_route.get(request.route)
            if counts is None:  # a route seen for the first time, or the slow way on
                self._response(client, request, status, size, now)
                return
            agent = None
            for field, value in request.raw_headers:
                if field == b"user-agent":
                    agent = value
                    break
            if agent == self._last_agent:
                bot = self._last_bot
            else:
                verdict = self._agents.get(agent)
                bot = self.detector.agent_is_bot(agent) if verdict is None else verdict
                self._last_agent = agent
                self._last_bot = bot
            if bot or request.session_state is not None:
                self._response(client, request, status, size, now)
                return
            elapsed = now - request.started
            if self.counting:
                if (
                    request.method is counts.method
                    and status == counts.status
                    and counts.low <= elapsed < counts.high
                ):
                    entry = counts.entry
                else:
                    entry = counts.entry_for(request.method, status, elapsed)
                entry[0] += 1
                entry[1] += size
            rows = self.plain_rows
            if rows is not None:
                target = request.target
                if request._params is not None or _QUESTION_MARK in target:
                    self._log(request, status, now, elapsed, _NOBODY)
                elif len(rows) < self._max_plain:
                    # One C call (the tuple is freed at once): the writer's thread
                    # sees all five values or none.  See MICROS for the numbers.
                    rows += (
                        now * 1e6 + self._origin,
                        request.method,
                        target,
                        elapsed * 1e6 + MICROS,
                        status,
                    )
                else:
                    self.dropped += 1
        except Exception as exc:
            # Statistics must never break serving; each kind of failure is logged once.
            self._failed(exc)


# An if, not a conditional expression: mypy takes ``_Core`` for the class (an alias).
if TYPE_CHECKING or speedups is None:  # noqa: SIM108
    _Core = _PyCore
else:
    _Core = speedups.CollectorCore

#: Whether ``Collector`` counts with the compiled fast way.
SPEEDUPS: Final = _Core is not _PyCore


class Collector(_Core):
    """In-memory counts of responses, and the request log's buffers.

    ``detector`` judges bots.  ``plain_rows`` (``PLAIN_WIDTH`` values a
    row, flat) and ``log_rows`` (None: no request log) are the buffers the
    log's writer empties; about ``max_rows`` rows wait in them at most, more
    are dropped and counted in ``dropped``.  ``log_bots``: whether bot
    requests are logged.  ``on_full("counters")`` is called (on the loop) when ``max_keys``
    distinct counters of bots and users have piled up, to have them flushed
    early.
    """

    # The fast way's attributes are the core's (_PyCore).
    __slots__ = (
        "_failures",
        "_keys",
        "_known",
        "_offset",
        "_past",
        "_performance",
        "_rdns",
        "current",
        "day",
        "log_bots",
        "log_rows",
        "max_keys",
        "on_full",
        "project_cookie",
        "wall",
    )

    def __init__(
        self,
        detector: BotDetector,
        *,
        counting: bool = True,
        request_log: bool = False,
        max_rows: int = 20_000,
        log_bots: bool = False,
        max_keys: int = 10_000,
        project_cookie: str = "dibble_project",
        on_full: Callable[[str], None] | None = None,
        clock: Callable[[], float] = perf_counter,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.detector = detector
        self.counting = counting
        self.plain_rows = [] if request_log else None
        self.log_rows: deque[LogRow] | None = deque() if request_log else None
        self._max_plain = 0
        self.max_rows = max_rows
        self.log_bots = log_bots
        self.max_keys = max_keys
        self.project_cookie = project_cookie
        self.on_full = on_full
        self.clock = clock
        self.wall = wall
        self.dropped = 0
        self._offset = self._origin = 0.0
        self.offset = wall() - clock()
        self.day = datetime.date.min
        self.current = DayCounts()
        self._keys = 0
        self._day_end = float("-inf")
        self._past: list[tuple[datetime.date, DayCounts]] = []
        self._known: dict[str, RouteInfo] = {}
        self._agents = detector.agents
        self._rdns = detector.reverse_dns
        self._failures: set[str] = set()
        self._last_agent = None
        self._last_bot = False
        self._performance = False
        self._update()
        self.new_day(clock())

    @property
    def offset(self) -> float:
        """Unix time minus ``clock()``: dates the request log's rows."""
        return self._offset

    @offset.setter
    def offset(self, offset: float) -> None:
        self._offset = offset
        # clock() * 1e6 + _origin: MICROS + microseconds since the epoch (see MICROS).
        self._origin = offset * 1e6 + MICROS

    @property
    def max_rows(self) -> int:
        """Rows that may wait for the request log's writer."""
        return self._max_plain // PLAIN_WIDTH

    @max_rows.setter
    def max_rows(self, rows: int) -> None:
        self._max_plain = rows * PLAIN_WIDTH  # what the hot path compares

    @property
    def performance(self) -> bool:
        """Whether this writes the performance log's lines (the access log's call does not)."""
        return self._performance

    @performance.setter
    def performance(self, on: bool) -> None:
        self._performance = on
        self._update()

    def _update(self) -> None:
        # The fast path counts and logs; anything more takes the general one, which
        # the fast path's lookup sends every response to when it finds no route.
        slow = self._performance or self._rdns is not None
        self._by_route = {} if slow else self.current.by_route

    # --- the hot path: response (see _PyCore) and invalid -------------------------

    def invalid(
        self, client: tuple[str, int] | None, head: RequestHead | None, status: int
    ) -> None:
        """Count a request the protocol refused (answered with ``status``)."""
        try:
            now = self.clock()
            if now >= self._day_end:
                self.new_day(now)
            if self.counting:
                self._count((INVALID, "", status, False, None, None, -1), 0)
            rows = self.log_rows
            if rows is not None:
                if len(rows) < self.max_rows:
                    target = head.target if head is not None else b""
                    method = head.method if head is not None and head.target else ""
                    created = now + self._offset
                    rows.append(
                        (created, method, target, None, None, None, None, None, None, status)
                    )
                else:
                    self.dropped += 1
        except Exception as exc:
            self._failed(exc)

    # --- off the hot path ------------------------------------------------------------

    def _response(
        self,
        client: tuple[str, int] | None,
        request: Request,
        status: int,
        size: int,
        now: float,
    ) -> None:
        """Everything ``response`` leaves out of its fast path (same result, slower)."""
        route = request.route
        counts = self.current.by_route.get(route)
        if counts is None:
            counts = self._route_counts(route)
        agent = None
        for field, value in request.raw_headers:
            if field == b"user-agent":
                agent = value
                break
        bot = self.detector.agent_is_bot(agent)
        if self._rdns is not None and not bot and request.client is not None:
            bot = self._rdns.is_bot(request.client[0])
        elapsed = now - request.started
        looked = counts.guarded or request.session_state is not None
        identity = self.identity(request) if looked else (None, None, None, None)
        if self.counting:
            user, project = identity[0], identity[1]
            if bot or user is not None:
                bucket = bisect_right(BOUNDS, elapsed)
                key = (counts.name, request.method, status, bot, user, project, bucket)
                self._count(key, size)
            else:
                entry = counts.entry_for(request.method, status, elapsed)
                entry[0] += 1
                entry[1] += size
        if self.log_rows is not None and (not bot or self.log_bots):
            self._log(request, status, now, elapsed, identity)
        if self._performance:
            write_performance(client, request, status)

    def _log(
        self,
        request: Request,
        status: int,
        now: float,
        elapsed: float,
        identity: tuple[str | None, str | None, int | None, str | None],
    ) -> None:
        rows = self.log_rows
        plain = self.plain_rows
        assert rows is not None
        assert plain is not None
        if len(rows) + len(plain) // PLAIN_WIDTH >= self.max_rows:
            self.dropped += 1
            return
        user, project, privilege, session = identity
        target = request.target
        if (
            user is None
            and session is None
            and request._params is None
            and _QUESTION_MARK not in target
        ):
            plain += (
                now * 1e6 + self._origin,
                request.method,
                target,
                elapsed * 1e6 + MICROS,
                status,
            )
            return
        rows.append(
            (
                now + self._offset,
                request.method,
                target,
                # The page's parsed arguments (query and form fields), if it parsed them.
                request._params,
                user,
                project,
                privilege,
                session,
                elapsed * 1000.0,
                status,
            )
        )

    def _count(self, key: Key, size: int) -> None:
        other = self.current.other
        entry = other.get(key)
        if entry is None:
            other[key] = [1, size]
            self._keys += 1
            if self._keys >= self.max_keys:
                self._signal("counters")
        else:
            entry[0] += 1
            entry[1] += size

    def _failed(self, exc: Exception) -> None:
        kind = f"{type(exc).__name__}: {exc}"
        if kind not in self._failures and len(self._failures) < 100:
            self._failures.add(kind)
            error_log.error("statistics: a request could not be counted", exc_info=exc)

    def _signal(self, what: str) -> None:
        if self.on_full is not None:
            self.on_full(what)

    def _route_counts(self, route: Route | None) -> RouteCounts:
        """The counts of ``route`` today, made on its first response."""
        name = route.name if route is not None else "-"
        current = self.current
        counts = current.by_name.get(name)
        if counts is None:
            info = self._known.get(name)
            if info is None:
                info = self._learn(route)
                if len(self._known) < 4096:
                    self._known[name] = info
            counts = RouteCounts(name, info.guarded)
            current.by_name[name] = counts
        if (
            route is not None
            and not route.unknown
            and not counts.guarded
            and len(current.by_route) < 4096
        ):
            # A route the router keeps: found by identity from now on.
            current.by_route[route] = counts
        return counts

    @staticmethod
    def _learn(route: Route | None) -> RouteInfo:
        if route is None:
            return RouteInfo(False, False)
        try:
            from ..files import StaticFiles  # a sibling feature; only its type is needed
        except ImportError:  # pragma: no cover - part of dibble
            is_file = False
        else:
            is_file = isinstance(route.plugin, StaticFiles)
        return RouteInfo(is_file, hasattr(route.func, "__wrapped__"))

    def route_info(self, name: str) -> RouteInfo:
        """What was learnt about route ``name`` (nothing special if it was never seen)."""
        return self._known.get(name) or RouteInfo(False, False)

    def identity(self, head: Request) -> tuple[str | None, str | None, int | None, str | None]:
        """``(user, project, privilege, session id)`` as far as the request found them out."""
        name = head.remote_user
        user: Any = None
        session = None
        state = getattr(head, "session_state", None)
        if state is not None:
            session = getattr(state, "sid", None)
            user = getattr(getattr(state, "auth_cache", None), "user", None)
        if user is not None:
            name = getattr(user, "name", name)
        if name is None:
            return None, None, None, session
        project = None
        privilege = None
        projects = getattr(user, "projects", None)
        if projects is not None:
            chosen = self._chosen_project(head)
            admin = bool(getattr(user, "admin", False))
            if chosen is not None and (chosen in projects or admin):
                project = chosen
            elif chosen is None and len(projects) == 1:
                project = next(iter(projects))
            if project is not None:
                privilege = _MAX_PRIVILEGE if admin else int(projects.get(project, 0))
            elif admin:
                privilege = _MAX_PRIVILEGE
        return str(name), project, privilege, session

    def _chosen_project(self, head: Request) -> str | None:
        # Only what the page already parsed: its arguments, else its cookies.
        params = head._params
        value = None
        if params is not None:
            values = params.get("project")
            if values:
                value = values[-1]
        if value is None:
            cookies = head._cookies
            if cookies is not None:
                value = cookies.get(self.project_cookie)
        if value is not None and _PROJECT_NAME.fullmatch(value):
            return value
        return None

    def new_day(self, now: float) -> None:
        """Start the counters of the day it is now (keeping the last day's for the flush)."""
        wall = self.wall()
        self.offset = wall - now
        today = datetime.datetime.fromtimestamp(wall).date()
        if today != self.day:
            if self.current:
                self._past.append((self.day, self.current))
            self._start_counts()
            self.day = today
        midnight = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time())
        # A clock set back across midnight must not leave an end in the past.
        self._day_end = now + max(1.0, midnight.timestamp() - wall)

    def _start_counts(self) -> None:
        self.current = DayCounts()
        self._keys = 0
        self._update()

    def take(self) -> list[tuple[datetime.date, DayCounts]]:
        """Hand over every counter collected so far, by day, and start afresh.

        Must run on the thread that calls ``response`` (or when nothing
        does): ``Statistics`` sees to that.
        """
        taken = self._past
        if self.current:
            taken.append((self.day, self.current))
        self._past = []
        self._start_counts()
        return taken

    def peek(self) -> list[tuple[datetime.date, DayCounts]]:
        """A copy of the counters (``take`` without taking); safe from any thread."""
        past = list(self._past)
        current = self.current
        return [*((day, counts.copy()) for day, counts in past), (self.day, current.copy())]


def write_performance(
    client: tuple[str, int] | None, head: RequestHead | None, status: int
) -> None:
    """One performance line for ``head``, as the access log's call writes it."""
    started = getattr(head, "started", None)
    if head is None or started is None:
        return
    forwarded = getattr(head, "client", None)
    _log_performance(forwarded or client, head, status, started)
