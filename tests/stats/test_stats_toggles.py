"""The run-time toggles: verbose, the SQL log and the performance log, without a restart."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import dibble
from dibble._logging import configure_logging
from dibble.config import LoggingSection, parse_config
from dibble.db import Database, set_sql_logging, sql_logging
from dibble.stats import TOGGLES, set_toggle, statistics_of, toggles

# Every test here runs with the compiled helpers and with the Python ones.
pytestmark = pytest.mark.usefixtures("fast_way")

LOGGERS = ("dibble", "dibble.performance", "dibble.sql", "dibble.access")


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """The toggles change process-wide loggers: put them back afterwards."""
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    yield
    set_sql_logging(False)
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


class Lines(logging.Handler):
    """Collects one logger's messages, whatever its propagation."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Hello(dibble.Plugin):
    def onHome(self) -> str:
        return "hello"


def get(server: dibble.HTTPServer, path: str = "/") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.addresses[0][1], timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_the_toggles() -> None:
    assert TOGGLES == ("verbose", "sql_log", "performance_log")
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    with pytest.raises(ValueError, match="unknown toggle"):
        set_toggle(server, "loud", True)
    assert set(toggles(server)) == set(TOGGLES)


def test_verbose() -> None:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.site.settings = parse_config({"logging": {"level": "WARNING"}})
    set_toggle(server, "verbose", True)
    assert toggles(server)["verbose"]
    assert logging.getLogger("dibble").level == logging.DEBUG
    set_toggle(server, "verbose", False)
    assert not toggles(server)["verbose"]
    assert logging.getLogger("dibble").level == logging.WARNING


def test_sql_log_at_run_time(tmp_path: Path) -> None:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    lines = Lines("dibble.sql")
    db = Database(tmp_path / "x.sqlite3")
    db.query("SELECT 1")
    set_toggle(server, "sql_log", True)
    assert sql_logging()
    assert toggles(server)["sql_log"]
    db.query("SELECT 2")
    set_toggle(server, "sql_log", False)
    db.query("SELECT 3")
    db.close()
    assert [line.split(" ms ", 1)[1] for line in lines.lines] == ["SELECT 2 [1 row]"]


def test_sql_log_gets_its_file_when_dibble_serve_set_up_the_logs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    configure_logging(LoggingSection(directory=str(logs)))
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.site.settings = parse_config({"logging": {"directory": str(logs)}})
    set_toggle(server, "sql_log", True)
    db = Database(tmp_path / "x.sqlite3")
    db.query("SELECT 42")
    db.close()
    for handler in logging.getLogger("dibble.sql").handlers:
        handler.flush()
    assert "SELECT 42 [1 row]" in (logs / "sql.log").read_text()
    assert "SELECT 42" not in (logs / "error.log").read_text()


def test_the_sql_log_from_the_configuration(tmp_path: Path) -> None:
    config = parse_config({"logging": {"sql_log": True}, "server": {"port": 0}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    server.register(Hello())
    server.context.start_in_thread()
    try:
        assert sql_logging()
    finally:
        server.context.join(5)


@pytest.mark.parametrize("statistics", [False, True])
def test_performance_log_at_run_time(statistics: bool) -> None:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), access_log=False)
    server.register(Hello())
    server.site.settings = parse_config({"statistics": {"enabled": statistics}})
    server.context.start_in_thread()
    try:
        lines = Lines("dibble.performance")
        logging.getLogger("dibble.performance").setLevel(logging.WARNING)
        assert get(server) == 200
        assert lines.lines == []
        assert not toggles(server)["performance_log"]
        set_toggle(server, "performance_log", True)
        assert toggles(server)["performance_log"]
        assert get(server) == 200
        assert len(lines.lines) == 1
        assert '"GET / HTTP/1.1" 200' in lines.lines[0]
        assert "Hello.onHome" in lines.lines[0]
        set_toggle(server, "performance_log", False)
        assert get(server) == 200
        assert len(lines.lines) == 1
        assert not toggles(server)["performance_log"]
        assert (statistics_of(server) is not None) == statistics
    finally:
        server.context.join(5)


def test_performance_log_before_the_start_with_the_access_log() -> None:
    # With the access log on, its call writes the performance lines; none twice.
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), access_log=True)
    server.register(Hello())
    server.site.settings = parse_config({"statistics": {"enabled": True}})
    lines = Lines("dibble.performance")
    set_toggle(server, "performance_log", True)
    logging.getLogger("dibble.access").setLevel(logging.WARNING)
    server.context.start_in_thread()
    try:
        assert get(server) == 200
        assert get(server) == 200
        assert len(lines.lines) == 2
    finally:
        server.context.join(5)
