"""The collector and the flush's arithmetic, without sockets: days, users, bots, latency."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable

import pytest

from dibble.app import Route
from dibble.http import RequestHead
from dibble.stats import BotDetector, Collector, Statistics, StatsReport
from dibble.stats._collector import INVALID
from dibble.stats._statistics import increments_of
from dibble.users import User

from .conftest import Clock, make_request

# Every test here runs with the compiled helpers and with the Python ones.
pytestmark = pytest.mark.usefixtures("fast_way")

Routes = Callable[[str], Route]


def report_of(collector: Collector, clock: Clock, days: int = 3) -> StatsReport:
    from dibble.stats._model import build_report

    increments = increments_of(collector.take(), collector.route_info)
    today = datetime.datetime.fromtimestamp(clock.wall()).date()
    return build_report(increments.items(), today, days)


def new_collector(clock: Clock, **kwargs: object) -> Collector:
    return Collector(BotDetector(), clock=clock.perf, wall=clock.wall, **kwargs)  # type: ignore[arg-type]


def test_counts_methods_statuses_and_bytes(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    home = routes("/")
    for _ in range(3):
        collector.response(None, make_request(home), 200, 100)
    collector.response(None, make_request(home, method="POST"), 200, 10)
    collector.response(None, make_request(home, method="HEAD"), 200, 0)
    collector.response(None, make_request(home, method="PUT"), 201, 0)
    collector.response(None, make_request(home, method="DELETE"), 204, 0)
    collector.response(None, make_request(home, method="OPTIONS"), 204, 0)
    collector.response(None, make_request(routes("/nothing/here")), 404, 20)
    report = report_of(collector, clock)
    forever = report.forever
    assert forever.requests == 9
    assert (forever.get, forever.post, forever.head, forever.put, forever.delete) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert forever.not_found == 1
    assert forever.bytes_sent == 330
    assert forever.invalid == 0
    assert report.status == {200: 5, 201: 1, 204: 2, 404: 1}
    assert report.days[-1][1] == forever
    assert [day for day, _ in report.days] == [
        datetime.date(2024, 4, 29),
        datetime.date(2024, 4, 30),
        datetime.date(2024, 5, 1),
    ]
    assert report.days[0][1].requests == 0


def test_a_new_day_starts_at_midnight(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    home = routes("/")
    collector.response(None, make_request(home, started=clock.now), 200, 1)
    clock.advance(11 * 3600 + 59 * 60 + 59)  # 23:59:59
    collector.response(None, make_request(home, started=clock.now), 200, 1)
    clock.advance(2)  # 00:00:01 on May 2nd
    collector.response(None, make_request(home, started=clock.now), 200, 1)
    collector.response(None, make_request(home, started=clock.now), 200, 1)
    report = report_of(collector, clock)
    assert [(day.day, counts.requests) for day, counts in report.days] == [(30, 0), (1, 2), (2, 2)]
    assert report.forever.requests == 4


def test_a_flush_during_the_day_keeps_counting_the_same_day(clock: Clock, routes: Routes) -> None:
    stats = Statistics(clock=clock.perf, wall=clock.wall, start_thread=False)
    home = routes("/")
    stats.collector.response(None, make_request(home, started=clock.now), 200, 5)
    stats.flush()
    stats.collector.response(None, make_request(home, started=clock.now), 200, 5)
    report = stats.report(2)
    assert report.days[-1][1].requests == 2
    assert report.days[-1][1].bytes_sent == 10
    stats.close()


def test_users_and_projects(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    page = routes("/page")
    ada = User("ada", projects={"hubble": 2})
    bob = User("bob", projects={"hubble": 1, "kepler": 3})
    root = User("root", admin=True)
    collector.response(None, make_request(page, user=ada, sid="s1"), 200, 10)
    collector.response(None, make_request(page, user=ada, sid="s1"), 200, 10)
    # bob has two projects: the one his request names is counted.
    collector.response(
        None, make_request(page, user=bob, sid="s2", params={"project": ["kepler"]}), 200, 1
    )
    # ...but never one he is not a member of (a client cannot invent projects).
    collector.response(
        None, make_request(page, user=bob, sid="s2", params={"project": ["mars"]}), 200, 1
    )
    collector.response(
        None, make_request(page, user=root, sid="s3", params={"project": ["mars"]}), 200, 1
    )
    collector.response(None, make_request(page), 200, 1)  # anonymous
    report = report_of(collector, clock)
    assert report.users["ada"].requests == 2
    assert report.users["bob"].requests == 2
    assert report.users["root"].requests == 1
    assert report.projects["hubble"].requests == 2
    assert report.projects["kepler"].requests == 1
    assert report.projects["mars"].requests == 1  # an admin works in any project
    assert report.forever.requests == 6


def test_the_identity_of_a_request(routes: Routes) -> None:
    collector = Collector(BotDetector())
    bob = User("bob", projects={"hubble": 1, "kepler": 3})
    request = make_request(routes("/page"), user=bob, sid="abc", params={"project": ["kepler"]})
    assert collector.identity(request) == ("bob", "kepler", 3, "abc")
    assert collector.identity(make_request(routes("/page"), sid="abc")) == (
        None,
        None,
        None,
        "abc",
    )
    http_user = make_request(routes("/page"))
    http_user.remote_user = "carol"
    assert collector.identity(http_user) == ("carol", None, None, None)


def test_bots_are_counted_apart(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    home = routes("/")
    collector.response(None, make_request(home, agent=b"Googlebot/2.1"), 200, 100)
    collector.response(None, make_request(home, agent=b"Mozilla/5.0 HeadlessChrome/120"), 404, 1)
    collector.response(None, make_request(home), 200, 7)
    report = report_of(collector, clock)
    assert report.bots.requests == 2
    assert report.bots.not_found == 1
    assert report.bots.bytes_sent == 101
    assert report.forever.requests == 1
    assert report.forever.bytes_sent == 7
    assert report.days[-1][1].requests == 1
    # The status mix and latency are the server's: they include bots.
    assert report.status == {200: 2, 404: 1}
    assert report.latency["Site.onHome"]["count"] == 3


def test_each_change_of_user_agent_is_judged_afresh(clock: Clock, routes: Routes) -> None:
    # The fast path keeps the last agent's verdict: runs of one agent, and
    # switches between browsers, bots and none, must all come out as judged alone.
    collector = new_collector(clock)
    home = routes("/")
    browser, bot, other_bot = b"Mozilla/5.0 Firefox/126.0", b"Googlebot/2.1", b"bingbot/2.0"
    agents = [browser, browser, bot, bot, None, browser, other_bot, None, None, bot, browser]
    for agent in agents:
        collector.response(None, make_request(home, agent=agent), 200, 1)
    judge = BotDetector()
    bots = sum(1 for agent in agents if judge.agent_is_bot(agent))
    assert bots == 4
    report = report_of(collector, clock)
    assert report.bots.requests == bots
    assert report.forever.requests == len(agents) - bots


def test_invalid_requests(clock: Clock) -> None:
    collector = new_collector(clock)
    collector.invalid(None, None, 400)
    collector.invalid(None, RequestHead(), 408)
    report = report_of(collector, clock)
    assert report.forever.invalid == 2
    assert report.forever.requests == 2
    assert report.forever.get == 0
    assert report.status == {400: 1, 408: 1}
    assert INVALID not in report.latency


def test_latency_percentiles_per_service(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    home, page = routes("/"), routes("/page")
    for i in range(100):
        # 1 ms ... 100 ms for the home page, 50 ms for every other page.
        collector.response(None, make_request(home, started=clock.now - (i + 1) / 1000), 200, 0)
        collector.response(None, make_request(page, started=clock.now - 0.05), 200, 0)
    latency = report_of(collector, clock).latency
    assert latency["Site.onHome"]["count"] == 100
    assert 40 <= latency["Site.onHome"]["p50"] <= 60
    assert 75 <= latency["Site.onHome"]["p90"] <= 100
    assert 90 <= latency["Site.onHome"]["p99"] <= 100
    assert 30 <= latency["Site.onPage"]["p50"] <= 50
    assert latency["Site.onPage"]["p99"] <= 50


def test_repeated_and_changing_responses_count_under_their_own_keys(
    clock: Clock, routes: Routes
) -> None:
    # The hot path keeps each route's last counter at hand: responses that
    # change method, status or latency bucket (either side of each bound,
    # below) and methods that are equal strings but not the same object all
    # land right.
    from bisect import bisect_right

    from dibble.stats._model import BOUNDS

    collector = new_collector(clock)
    home, page = routes("/"), routes("/page")
    latencies = [0.0, BOUNDS[0] / 2, BOUNDS[0], BOUNDS[1], BOUNDS[-1], BOUNDS[-1] * 2]
    expected: dict[tuple[str, str, int, int], list[int]] = {}
    for i in range(300):
        route = home if i % 7 else page
        # "PATCH" made anew each time: equal, never the same object.
        method = ("GET", "GET", "POST", "".join(["PAT", "CH"]))[i % 4]
        status = 200 if i % 5 else 404
        started = clock.now - latencies[(i // 3) % len(latencies)]
        size = i % 11
        collector.response(None, make_request(route, method=method, started=started), status, size)
        name = "Site.onHome" if route is home else "Site.onPage"
        key = (name, method, status, bisect_right(BOUNDS, clock.now - started))
        entry = expected.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += size
    edge = routes("/page")
    for bound in BOUNDS:  # the latest latency under each bound, then the first not under
        on = clock.now - bound
        while clock.now - on < bound:
            on = math.nextafter(on, -math.inf)
        while clock.now - math.nextafter(on, math.inf) >= bound:
            on = math.nextafter(on, math.inf)
        for started in (math.nextafter(on, math.inf), on):
            collector.response(None, make_request(edge, started=started), 201, 1)
            key = ("Site.onPage", "GET", 201, bisect_right(BOUNDS, clock.now - started))
            expected.setdefault(key, [0, 0])[0] += 1
            expected[key][1] += 1
    counted: dict[tuple[str, str, int, int], list[int]] = {}
    for _, day in collector.take():
        for (name, method, status, bot, user, _, bucket), entry in day.entries():
            assert (bot, user) == (False, None)
            counted[name, method, status, bucket] = entry
    assert counted == expected


def test_static_files_are_files_served(clock: Clock, tmp_path: pytest.TempPathFactory) -> None:
    import dibble

    folder = tmp_path
    (folder / "a.txt").write_text("hello")  # type: ignore[operator]
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.static("/files", str(folder))
    route = server.router.resolve(b"/files/a.txt")
    collector = new_collector(clock)
    collector.response(None, make_request(route), 200, 5)
    collector.response(None, make_request(route, method="HEAD"), 200, 0)
    collector.response(None, make_request(route), 304, 0)
    collector.response(None, make_request(server.router.resolve(b"/files/b.txt")), 404, 9)
    report = report_of(collector, clock)
    assert report.forever.files_served == 2
    assert report.forever.requests == 4
    assert report.forever.not_found == 1


def test_too_many_counters_ask_for_an_early_flush(clock: Clock, routes: Routes) -> None:
    asked: list[str] = []
    collector = new_collector(clock, max_keys=3, on_full=asked.append)
    page = routes("/page")
    for name in ("a", "b", "c", "d"):
        collector.response(None, make_request(page, user=User(name), sid=name), 200, 1)
    assert asked == ["counters", "counters"]


def test_a_statistics_without_a_thread_flushes_itself_when_full(
    clock: Clock, routes: Routes
) -> None:
    stats = Statistics(max_keys=2, clock=clock.perf, wall=clock.wall)
    page = routes("/page")
    for name in ("a", "b", "c"):
        stats.collector.response(None, make_request(page, user=User(name), sid=name), 200, 1)
    # Flushed into the (memory) store on the spot; nothing counted twice.
    assert sum(v for (s, _, f), v in stats.store.read() if s == "forever" and f == "requests") >= 2
    assert stats.report().users.keys() == {"a", "b", "c"}
    stats.close()


def test_a_broken_request_is_logged_once_and_never_raises(
    clock: Clock, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    collector = new_collector(clock)
    broken = make_request(routes("/"))
    del broken.started  # a request that was not timed
    collector.response(None, broken, 200, 0)
    collector.response(None, broken, 200, 0)
    errors = [r for r in caplog.records if "could not be counted" in r.getMessage()]
    assert len(errors) == 1


def test_peek_does_not_take(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    collector.response(None, make_request(routes("/")), 200, 3)
    seen = collector.peek()
    assert sum(e[0] for _, day in seen for _, e in day.entries()) == 1
    assert sum(e[0] for _, day in collector.take() for _, e in day.entries()) == 1
    assert not collector.take()


def test_report_json(clock: Clock, routes: Routes) -> None:
    collector = new_collector(clock)
    collector.response(None, make_request(routes("/"), user=User("ada"), sid="x"), 200, 3)
    data = report_of(collector, clock, days=2).to_json()
    assert data["days"][-1] == ["2024-05-01", data["forever"]]
    assert data["forever"]["requests"] == 1
    assert data["users"]["ada"]["bytes_sent"] == 3
    assert data["status"] == {"200": 1}
    assert set(data["latency"]["Site.onHome"]) == {"count", "p50", "p90", "p99"}
