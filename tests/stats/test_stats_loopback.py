"""Statistics and the request log of a real server, over loopback with http.client."""

from __future__ import annotations

import http.client
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

import dibble
from dibble.config import parse_config
from dibble.stats import SQLiteStatsStore, Statistics, statistics_of

# Every test here runs with the compiled helpers and with the Python ones.
pytestmark = pytest.mark.usefixtures("fast_way")


class Site(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    def onLogin(self, user: str = "", password: str = "") -> str:
        return f"hello {user}"

    def onSlow(self) -> str:
        time.sleep(0.02)
        return "slow"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dibble.HTTPServer]:
    """A server with statistics (SQLite in the data folder) and the request log."""
    config = parse_config(
        {
            "server": {"port": 0, "test_mode": True},
            "paths": {"data_dir": str(tmp_path / "data")},
            "logging": {"access_log": False},
            "statistics": {"enabled": True, "request_log": True, "request_log_interval": 0.05},
        }
    )
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    server.register(Site())
    server.context.start_in_thread()
    yield server
    server.context.join(5)


def request(
    server: dibble.HTTPServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.addresses[0][1], timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def malformed(server: dibble.HTTPServer) -> bytes:
    with socket.create_connection(("127.0.0.1", server.addresses[0][1]), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        return sock.recv(1000)


def test_traffic_is_counted_and_logged(served: dibble.HTTPServer, tmp_path: Path) -> None:
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"}
    for _ in range(3):
        assert request(served, "GET", "/", headers=browser) == 200
    assert request(served, "HEAD", "/", headers=browser) == 200
    form = urlencode({"user": "ada", "password": "hunter2"}).encode()
    headers = {**browser, "Content-Type": "application/x-www-form-urlencoded"}
    assert request(served, "POST", "/login", form, headers) == 200
    assert request(served, "GET", "/slow", headers=browser) == 200
    assert request(served, "GET", "/missing", headers=browser) == 404
    assert request(served, "GET", "/", headers={"User-Agent": "Googlebot/2.1"}) == 200
    assert malformed(served).startswith(b"HTTP/1.1 400")

    stats = statistics_of(served)
    assert stats is not None
    report = stats.report()
    forever = report.forever
    assert forever.requests == 8  # the bot apart
    assert (forever.get, forever.head, forever.post) == (5, 1, 1)
    assert forever.not_found == 1
    assert forever.invalid == 1
    assert forever.bytes_sent > 0
    assert report.bots.requests == 1
    assert report.status[200] == 7
    assert report.status[400] == 1
    assert report.latency["Site.onSlow"]["p50"] >= 15
    assert report.latency["Site.onHome"]["count"] == 5  # the bot's included
    assert report.days[-1][1] == forever

    stats.flush()  # what the housekeeping timer calls
    assert stats.report().forever == forever  # nothing counted twice

    log = tmp_path / "data" / "dibble.sqlite3"
    conn = sqlite3.connect(log)
    rows = conn.execute("SELECT method, query, args, status FROM dibble_request_log").fetchall()
    conn.close()
    assert len(rows) == 8  # no bot
    posted = next(r for r in rows if r[0] == "POST")
    assert posted[1] == "/login"
    assert "hunter2" not in (posted[2] or "")
    assert '"password": "***"' in posted[2]


def test_counts_are_flushed_when_the_server_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = parse_config(
        {
            "server": {"port": 0},
            "paths": {"data_dir": str(data)},
            "logging": {"access_log": False},
            "statistics": {"enabled": True},
        }
    )
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    server.register(Site())
    server.context.start_in_thread()
    for _ in range(4):
        assert request(server, "GET", "/") == 200
    server.context.join(5)
    assert server.statistics is None  # closed, and made afresh at the next start
    again = Statistics(SQLiteStatsStore(data / "statistics.sqlite3"), start_thread=False)
    assert again.report().forever.requests == 4
    again.close()


def test_a_store_removed_while_serving(
    served: dibble.HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats = statistics_of(served)
    assert stats is not None
    assert request(served, "GET", "/") == 200
    stats.flush()
    store = tmp_path / "data" / "statistics.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    assert request(served, "GET", "/") == 200  # serving goes on
    stats.flush()
    assert "removed or replaced" in caplog.text
    assert stats.report().forever.requests == 2


def test_statistics_are_off_by_default() -> None:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.register(Site())
    server.context.start_in_thread()
    try:
        assert request(server, "GET", "/") == 200
        assert statistics_of(server) is None
        assert server.listeners[0].observer is None
    finally:
        server.context.join(5)


def test_statistics_from_the_configuration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dibble.stats import MemoryStatsStore, statistics_from_config

    assert statistics_from_config(parse_config({})) is None
    stats = statistics_from_config(
        parse_config(
            {
                "statistics": {
                    "enabled": True,
                    "request_log": True,
                    "reverse_dns": True,
                    "bot_domains": ["crawler.example.org"],
                    "bot_agents": ["^curl/"],
                }
            }
        )
    )
    assert stats is not None
    assert isinstance(stats.store, MemoryStatsStore)  # no data folder
    assert stats.request_log is None  # ...and so no database
    assert "no database" in caplog.text
    assert stats.bots.reverse_dns is not None
    assert "crawler.example.org" in stats.bots.reverse_dns.domains
    assert stats.bots.classify("curl/8.0")
    stats.close()
    only_log = statistics_from_config(
        parse_config({"statistics": {"request_log": True}, "paths": {"data_dir": str(tmp_path)}})
    )
    assert only_log is not None
    assert not only_log.counting
    assert only_log.request_log is not None
    only_log.close()


def test_configuration_errors() -> None:
    from dibble.config import ConfigError

    with pytest.raises(ConfigError, match=r"\[statistics\] bot_agents"):
        parse_config({"statistics": {"bot_agents": ["(unclosed"]}})
    with pytest.raises(ConfigError, match=r"\[statistics\] store"):
        parse_config({"statistics": {"store": "mysql://x"}})
