"""Admin-area fixtures: a site with users, a logged-in browser, and made-up statistics.

``FakeStatistics`` answers ``report(days)`` like ``dibble.stats.Statistics``
with a real ``StatsReport`` of 31 made-up days, so the pages can be checked
against known numbers; ``flush()`` counts its calls.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import parse_config
from dibble.stats import Counts, StatsReport
from dibble.testing import TestClient, TestResponse
from dibble.users import ADMIN, WRITE, ScryptParams, UserStore

HTML = {"Accept": "text/html,application/xhtml+xml"}
FAST = ScryptParams(ln=4)


def make_report(last: datetime.date = datetime.date(2024, 5, 31)) -> StatsReport:
    days = []
    for i in range(31):
        day = last - datetime.timedelta(days=30 - i)
        requests = 0 if i == 3 else 100 + 37 * i  # one quiet day
        days.append(
            (
                day,
                Counts(
                    requests=requests,
                    get=requests - 5 if requests else 0,
                    post=5 if requests else 0,
                    bytes_sent=requests * 20_000,
                    not_found=i % 3,
                ),
            )
        )
    total = sum(c.requests for _, c in days)
    return StatsReport(
        days=days,
        forever=Counts(requests=total + 1000, get=total, bytes_sent=total * 20_000),
        bots=Counts(requests=42, get=42),
        users={"alice": Counts(requests=12, get=10, post=2), "<b>eve</b>": Counts(1)},
        projects={"lofar": Counts(requests=7, get=7)},
        status={200: total - 60, 304: 20, 404: 30, 500: 10},
        latency={
            "home": {"count": 900.0, "p50": 1.2, "p90": 3.4, "p99": 12.5},
            "report": {"count": 40.0, "p50": 25.0, "p90": 80.0, "p99": 240.0},
        },
    )


class FakeStatistics:
    """Stands in for ``dibble.stats.Statistics`` with a report of made-up days
    (``report_value``); ``failing`` makes ``report`` raise."""

    def __init__(self, report: StatsReport | None = None, *, failing: bool = False) -> None:
        self.report_value = report or make_report()
        self.failing = failing
        self.flushed = 0

    def report(self, days: int = 31) -> StatsReport:
        if self.failing:
            raise RuntimeError("the statistics store is missing")
        assert days == 31
        return self.report_value

    def flush(self) -> None:
        self.flushed += 1


@pytest.fixture
def fake_statistics(monkeypatch: pytest.MonkeyPatch) -> FakeStatistics:
    """Fake statistics for every server (``statistics_of`` patched in the admin area)."""
    statistics = FakeStatistics()
    monkeypatch.setattr("dibble.admin._area.statistics_of", lambda server: statistics)
    return statistics


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A data folder whose user database has root (admin), alice, bob and ops."""
    data = tmp_path / "data"
    users = UserStore(data / "dibble.sqlite3", params=FAST)
    users.add("root", "root pw", admin=True)
    users.add("alice", "alice pw", projects={"lofar": WRITE, "euclid": 1})
    users.add("bob", "bob pw", projects={"euclid": 2})
    users.add("ops", "ops pw", projects={"operations": ADMIN})
    users.add_project("empty", "a project nobody is in")
    users.close()
    return data


@pytest.fixture
def make_client(site_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(admin={...}, **sections)``: a TestClient of a configured server
    with the admin area on (cookies kept, like a browser)."""
    clients: list[TestClient] = []

    def make(**sections: dict[str, Any]) -> TestClient:
        admin = {"enabled": True, **sections.pop("admin", {})}
        table: dict[str, Any] = {
            "paths": {"data_dir": str(site_dir)},
            "server": {"name": "site", "secret_key": "s" * 40},
            "admin": admin,
            **sections,
        }
        server = dibble.HTTPServer.from_config(parse_config(table), dibble.Context())
        server.configure(test_mode=True, access_log=False)
        client = TestClient(server, cookies=True)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def token_of(page: TestResponse) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return html.unescape(match[1])


def log_in(client: TestClient, user: str, password: str) -> TestResponse:
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"user": user, "password": password, "next": "", "csrf_token": token_of(form)},
    )
    assert response.status == 303, response.text
    return response


@pytest.fixture
def csrf() -> Callable[[TestResponse], str]:
    """The CSRF token in a page's form."""
    return token_of


@pytest.fixture
def login() -> Callable[[TestClient, str, str], TestResponse]:
    """``login(client, user, password)`` through the admin area's login form."""
    return log_in


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    """``client``, logged in as root."""
    log_in(client, "root", "root pw")
    return client
