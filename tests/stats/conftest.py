"""Fixtures for the statistics tests: fake requests, clocks, and Redis.

The Redis fixtures (``redis_url``, ``redis_process``) are tests/conftest.py's.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import dibble
from dibble.app import Request, Route
from dibble.stats import _requestlog
from dibble.stats._collector import Collector, _PyCore
from dibble.stats._native import speedups


class Site(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    def onPage(self, q: str = "") -> str:
        return "page"


def need_speedups() -> ModuleType:
    """The compiled module; the test is skipped where it was not built (or is
    switched off), except under CI (``CI=true``), where that is a failure: CI
    must test what the benchmark measures."""
    if speedups is None or Collector.response is _PyCore.response:
        message = (
            "dibble.stats._speedups was not built (or DIBBLE_NO_EXTENSIONS is set): "
            "pip install -e . with a C compiler builds it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return speedups


@pytest.fixture
def compiled() -> ModuleType:
    """The compiled module (see ``need_speedups``)."""
    return need_speedups()


@pytest.fixture(params=["compiled", "python"])
def fast_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test twice: with the compiled helpers and with the Python ones.

    The statistics test modules use it for every test (``pytestmark``).
    """
    if request.param == "compiled":
        need_speedups()
    else:
        monkeypatch.setattr(Collector, "response", _PyCore.response)
        monkeypatch.setattr(_requestlog, "speedups", None)
    return str(request.param)


class Clock:
    """A settable pair of clocks: ``perf`` (the collector's) and ``wall`` (Unix time)."""

    def __init__(self, when: datetime.datetime) -> None:
        self.now = 1000.0
        self.wall_time = when.timestamp()

    def perf(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_time

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall_time += seconds


@pytest.fixture
def clock() -> Clock:
    """Clocks at 2024-05-01 12:00 local time."""
    return Clock(datetime.datetime(2024, 5, 1, 12, 0, 0))


@pytest.fixture
def routes() -> Callable[[str], Route]:
    """``routes("/page")``: the route a real router gives that path."""
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.register(Site())

    def route(path: str) -> Route:
        return server.router.resolve(path.encode())

    return route


def make_request(
    route: Route,
    *,
    method: str = "GET",
    target: bytes = b"/",
    agent: bytes | None = b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
    started: float = 1000.0,
    client: tuple[str, int] = ("192.0.2.7", 50000),
    user: Any = None,
    sid: str | None = None,
    params: dict[str, list[str]] | None = None,
) -> Request:
    """A request as the dispatcher leaves it, optionally with a logged-in user."""
    request = Request()
    request.method = method
    request.target = target
    request.route = route
    request.raw_headers = [(b"host", b"example.org")]
    if agent is not None:
        request.raw_headers.append((b"user-agent", agent))
    request.started = started
    request.client = client
    if params is not None:
        request._params = params
    if user is not None or sid is not None:
        # What dibble.sessions leaves on a request that asked for its user (no
        # writer: the collector must see the sessions alone).
        request.session_state = SimpleNamespace(
            sid=sid, auth_cache=SimpleNamespace(user=user, reason=None)
        )
    return request
