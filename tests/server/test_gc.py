"""The cyclic collector while serving: the young generation's threshold raised, once."""

from __future__ import annotations

import gc
import http.client
from collections.abc import Callable, Iterator

import pytest

import dibble
from dibble.server import _context
from dibble.server._context import GC_THRESHOLD, relax_gc


class Hello(dibble.Plugin):
    def onHello(self) -> str:
        return "hello"


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_interpreters_default_is_raised(
    thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.set_threshold(700, 10, 10)
    monkeypatch.setattr(_context, "_imported_thresholds", (700, 10, 10))
    relax_gc()
    assert gc.get_threshold() == (GC_THRESHOLD, 10, 10)
    relax_gc()  # once is enough; a second call changes nothing
    assert gc.get_threshold() == (GC_THRESHOLD, 10, 10)


@pytest.mark.parametrize(
    "own",
    [
        (500, 10, 10),  # lower, set by the program after importing dibble
        (50_000, 20, 20),  # higher
        (0, 10, 10),  # automatic collection off
    ],
)
def test_a_programs_own_threshold_is_kept(
    own: tuple[int, int, int], thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_context, "_imported_thresholds", (700, 10, 10))
    gc.set_threshold(*own)
    relax_gc()
    assert gc.get_threshold() == own


def test_a_default_at_import_of_zero_stays_off(
    thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_context, "_imported_thresholds", (0, 10, 10))
    gc.set_threshold(0, 10, 10)
    relax_gc()
    assert gc.get_threshold() == (0, 10, 10)


def test_a_running_server_raised_it(
    live_server: Callable[..., dibble.HTTPServer],
    thresholds: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gc.set_threshold(700, 10, 10)
    monkeypatch.setattr(_context, "_imported_thresholds", (700, 10, 10))
    server = live_server(Hello())
    conn = http.client.HTTPConnection("127.0.0.1", server.addresses[0][1], timeout=5)
    conn.request("GET", "/hello")
    assert conn.getresponse().read() == b"hello"
    conn.close()
    assert gc.get_threshold()[0] == GC_THRESHOLD
