"""The compiled helpers (``_speedups.c``) against their Python versions, input for input.

The other statistics tests run both ways (the ``fast_way`` fixture); these
feed the two the same odd and random input and compare everything they
leave behind, down to the request log's text.
"""

from __future__ import annotations

import functools
import math
import struct
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dibble
from dibble.app import Request, Route
from dibble.stats import BotDetector, Collector
from dibble.stats._collector import MICROS, PLAIN_WIDTH, _PyCore
from dibble.stats._native import speedups
from dibble.stats._requestlog import _plain_json
from dibble.users import User

from .conftest import Clock, Site, make_request


class PyCollector(Collector):
    """A collector that counts with the Python fast way, whatever its core."""

    __slots__ = ()
    response = _PyCore.response


def test_collectors_are_built_on_the_compiled_core(compiled: ModuleType) -> None:
    assert isinstance(Collector(BotDetector()), compiled.CollectorCore)
    assert Collector.response is compiled.CollectorCore.response


# --- the request log's text ----------------------------------------------------------------

_times = st.one_of(
    st.integers(0, 2**52 - 1).map(lambda n: MICROS + n),
    st.sampled_from([MICROS - 1, 2 * MICROS, -MICROS, 0.0, 1.5, math.inf, math.nan]),
    st.integers(0, 2**60),
)
_methods = st.sampled_from(["GET", "POST", "HEAD", "PROPFIND", "", "GE T", 'GE"T', "G\\T", "PÖST"])
_statuses = st.one_of(st.integers(0, 1200), st.sampled_from([200, 404, True]))
_targets = st.one_of(
    st.sampled_from([b"/", b"/plaintext", b"/caf\xe9", b"/a b", b'/"q"', b"/back\\slash"]),
    st.binary(max_size=12),
)
_rows = st.lists(st.tuples(_times, _methods, _targets, _times, _statuses), min_size=1, max_size=6)


def _flat(rows: list[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


@settings(max_examples=300, deadline=None)
@given(rows=_rows)
def test_the_request_log_text_is_the_python_text(rows: list[tuple[Any, ...]]) -> None:
    if speedups is None:
        return  # test_collectors_are_built_on_the_compiled_core says why
    values = _flat(rows)
    assert speedups.plain_json(values) == _plain_json(values)


def test_the_common_rows_take_the_compiled_encoder(compiled: ModuleType) -> None:
    values = _flat(
        [
            (MICROS + 1_700_000_000_000_000 + i, "GET", b"/caf\xe9", MICROS + 250, 200)
            for i in range(3)
        ]
    )
    text = compiled.plain_json(values)
    assert text is not None
    assert text == _plain_json(values)
    rows = [
        struct.pack(">dd", MICROS + 1_700_000_000_000_000 + i, MICROS + 250).hex()
        + "/caf\xe9 GET200"
        for i in range(3)
    ]
    assert text == '["' + '","'.join(rows) + '"]'
    assert rows[0] == "43360a24181e400043300000000000fa/caf\xe9 GET200"


def test_rows_it_cannot_judge_are_left_to_python(compiled: ModuleType) -> None:
    row = [MICROS + 1, "GET", bytearray(b"/"), MICROS + 2, 200]
    assert compiled.plain_json(row) is None
    assert _plain_json(row) == '["43300000000000014330000000000002/ GET200"]'
    assert compiled.plain_json([]) is None
    assert compiled.plain_json(("not", "a", "list")) is None


# --- the fast way -------------------------------------------------------------------------


@functools.cache
def _routes() -> dict[str, Route]:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.register(Site())
    return {path: server.router.resolve(path.encode()) for path in ("/", "/page", "/nothing")}


class OddRequest(Request):
    """A request class whose route is a property: no slot to read directly."""

    __slots__ = ("_route",)

    @property
    def route(self) -> Route | None:
        return self._route

    @route.setter
    def route(self, route: Route | None) -> None:
        self._route = route


def _request(spec: tuple[Any, ...]) -> Any:
    path, method, _, agent, delay, query, who, kind = spec
    target = path.encode() + (b"?q=1" if query == "query" else b"")
    params = {"q": ["1"], "password": ["x"]} if query == "params" else None
    user = User("ada", projects={"hubble": 2}) if who == "user" else None
    sid = "s1" if who in ("user", "session") else None
    request = make_request(
        _routes()[path],
        method=method,
        target=target,
        agent=agent,
        started=1000.0 - delay,
        user=user,
        sid=sid,
        params=params,
    )
    if kind == "subclass":
        odd = OddRequest()
        for name in ("method", "target", "raw_headers", "started", "client", "_params"):
            setattr(odd, name, getattr(request, name))
        odd.session_state = request.session_state
        odd.route = request.route
        return odd
    if kind == "namespace":  # duck-typed: every attribute the hard way
        return SimpleNamespace(
            method=request.method,
            target=request.target,
            raw_headers=request.raw_headers,
            started=request.started,
            client=request.client,
            _params=request._params,
            session_state=request.session_state,
            route=request.route,
            remote_user=None,
            _cookies=None,
        )
    return request


_specs = st.tuples(
    st.sampled_from(["/", "/page", "/nothing"]),
    st.sampled_from(["GET", "POST", "HEAD"]),
    st.sampled_from([(200, 13), (200, 5000), (404, 20), (500, 0)]),
    st.sampled_from([None, b"curl/8.0", b"Googlebot/2.1", b"Mozilla/5.0 Firefox/126.0"]),
    st.sampled_from([0.0, 0.0004, 0.003, 0.2, 2.5]),
    st.sampled_from(["none", "none", "query", "params"]),
    st.sampled_from(["anonymous", "anonymous", "session", "user"]),
    st.sampled_from(["request", "request", "subclass", "namespace"]),
)


def _state(collector: Collector) -> Any:
    days = [(day, dict(counts.entries())) for day, counts in collector.take()]
    rows = list(collector.plain_rows or ())
    logged = list(collector.log_rows or ())
    return days, rows, logged, collector.dropped, collector._last_agent, collector._last_bot


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(_specs, min_size=1, max_size=25),
    max_rows=st.sampled_from([3, 20_000]),
    midnight=st.integers(0, 25),
    counting=st.booleans(),
)
def test_the_compiled_fast_way_counts_as_the_python_one(
    specs: list[tuple[Any, ...]], max_rows: int, midnight: int, counting: bool
) -> None:
    if speedups is None:
        return  # test_collectors_are_built_on_the_compiled_core says why
    import datetime

    results = []
    for kind in (Collector, PyCollector):
        clock = Clock(datetime.datetime(2024, 5, 1, 23, 59, 59))
        collector = kind(
            BotDetector(),
            clock=clock.perf,
            wall=clock.wall,
            request_log=True,
            max_rows=max_rows,
            counting=counting,
        )
        for i, spec in enumerate(specs):
            if i == midnight:
                clock.advance(2.0)  # into May 2nd: a new day's counters
            collector.response(None, _request(spec), spec[2][0], spec[2][1])
        results.append(_state(collector))
    assert results[0] == results[1]
    counted = sum(n for _, entries in results[0][0] for n, _ in entries.values())
    assert counted == (len(specs) if counting else 0)


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not be counted" in r.getMessage()]


@pytest.mark.parametrize("kind", [Collector, PyCollector])
def test_what_cannot_be_read_is_logged_never_raised(
    kind: type[Collector], caplog: pytest.LogCaptureFixture
) -> None:
    def broken_clock() -> float:
        raise OSError("no clock")

    collector = kind(BotDetector(), clock=lambda: 1000.0, request_log=True)
    home = _routes()["/"]
    collector.clock = broken_clock
    collector.response(None, make_request(home), 200, 1)
    collector.clock = lambda: 1000.0
    headless: Any = SimpleNamespace(route=home)
    collector.response(None, headless, 200, 1)
    untimed = make_request(home)
    del untimed.started
    collector.response(None, untimed, 200, 1)
    collector.response(None, make_request(home), 200, 1)  # and it goes on counting
    ((_, counts),) = collector.take()
    assert sum(n for _, (n, _) in counts.entries()) == 1
    assert len(caplog.records) == 3
    assert len(_failures(caplog)) == 3
    assert collector.plain_rows is not None
    assert len(collector.plain_rows) == PLAIN_WIDTH


@pytest.mark.parametrize("kind", [Collector, PyCollector])
def test_a_keyboard_interrupt_is_not_swallowed(kind: type[Collector]) -> None:
    def interrupted() -> float:
        raise KeyboardInterrupt

    collector = kind(BotDetector(), clock=lambda: 1000.0)
    collector.clock = interrupted
    with pytest.raises(KeyboardInterrupt):
        collector.response(None, make_request(_routes()["/"]), 200, 1)


def test_the_core_attributes_read_and_write_as_python_ones(compiled: ModuleType) -> None:
    collector = Collector(BotDetector(), request_log=True, max_rows=7)
    assert collector._max_plain == 7 * PLAIN_WIDTH
    assert collector.max_rows == 7
    collector.dropped = 5
    assert collector.dropped == 5
    collector.counting = False
    assert collector.counting is False
    with pytest.raises(TypeError):
        collector.counting = "yes"  # type: ignore[assignment]
    del collector.clock
    with pytest.raises(AttributeError):
        _ = collector.clock


#: ``Request``'s slot for ``route`` (its member descriptor).
_ROUTE_SLOT: Any = vars(Request)["route"]


def test_a_class_changed_after_it_was_read_is_read_afresh(compiled: ModuleType) -> None:
    """The core keeps where a class's slots are; a change to the class moves its
    version, and the next read looks again."""

    class Changing(Request):
        __slots__ = ()

    home, page = _routes()["/"], _routes()["/page"]

    def made() -> Changing:
        request = Changing()
        model = make_request(home)
        for name in ("method", "target", "raw_headers", "started", "client"):
            setattr(request, name, getattr(model, name))
        _ROUTE_SLOT.__set__(request, home)  # the slot itself, whatever the class says
        return request

    collector = Collector(BotDetector(), clock=lambda: 1000.0)
    for _ in range(2):
        collector.response(None, made(), 200, 1)
    setattr(Changing, "route", property(lambda self: page, _ROUTE_SLOT.__set__))  # noqa: B010
    collector.response(None, made(), 200, 1)
    ((_, counts),) = collector.take()
    by_route: dict[str, int] = {}
    for key, (n, _) in counts.entries():
        by_route[key[0]] = by_route.get(key[0], 0) + n
    assert by_route == {home.name: 2, page.name: 1}
