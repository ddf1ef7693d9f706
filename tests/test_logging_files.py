"""Log files: access, error and performance logs, rotation, anonymisation, escaping."""

from __future__ import annotations

import http.client
import logging
import logging.handlers
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dibble
from dibble._logging import configure_logging
from dibble.config import LoggingSection

Serve = Callable[..., dibble.HTTPServer]
LOGGERS = ("dibble", "dibble.access", "dibble.performance")


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """configure_logging changes global loggers; put them back afterwards."""
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), list(logger.filters), logger.level, logger.propagate)
    yield
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


class Site(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    def onBoom(self) -> str:
        raise RuntimeError("bad \x1b[31mred\x1b[0m\rforged line")


def get(server: dibble.HTTPServer, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection(*server.addresses[0], timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def wait_for_text(path: Path, text: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        content = path.read_text() if path.exists() else ""
        if text in content or time.monotonic() > deadline:
            return content
        time.sleep(0.02)


def serve_config(data: dict[str, object]) -> tuple[dibble.Context, dibble.HTTPServer]:
    context = dibble.Context()
    config = dibble.config.parse_config({"server": {"port": 0}, **data})
    server = dibble.HTTPServer.from_config(config, context)
    server.register(Site())
    context.start_in_thread()
    return context, server


def test_logs_go_to_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    settings = {"directory": str(logs), "performance_log": True}
    configure_logging(LoggingSection(directory=str(logs), performance_log=True))
    context, server = serve_config({"logging": settings})
    try:
        assert get(server, "/?x=1") == 200
        access = wait_for_text(logs / "access.log", "GET /?x=1")
        performance = wait_for_text(logs / "performance.log", "GET /?x=1")
    finally:
        context.join(5)
    assert re.search(r'^127\.0\.0\.1 - - \[.*\] "GET /\?x=1 HTTP/1\.1" 200 4 ', access, re.M)
    assert re.search(
        r'^127\.0\.0\.1 \[.*\] "GET /\?x=1 HTTP/1\.1" 200 \d+\.\d\d ms Site\.onHome$',
        performance,
        re.M,
    )
    assert sorted(p.name for p in logs.iterdir()) == ["access.log", "error.log", "performance.log"]


def test_performance_log_without_access_log(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    settings = {"directory": str(logs), "performance_log": True, "access_log": False}
    configure_logging(LoggingSection(directory=str(logs), performance_log=True, access_log=False))
    context, server = serve_config({"logging": settings})
    try:
        assert get(server, "/") == 200
        line = wait_for_text(logs / "performance.log", '"GET / HTTP/1.1"')
    finally:
        context.join(5)
    assert " 200 " in line
    assert not (logs / "access.log").exists()


def test_errors_are_logged_escaped(tmp_path: Path, live_server: Serve) -> None:
    logs = tmp_path / "logs"
    configure_logging(LoggingSection(directory=str(logs)))
    server = live_server(Site(), test_mode=False)
    assert get(server, "/boom") == 500
    text = wait_for_text(logs / "error.log", "forged line")
    assert "ERROR dibble.error: error in Site.onBoom" in text
    assert "\x1b" not in text
    assert "\r" not in text
    assert "bad \\x1b[31mred\\x1b[0m\\x0dforged line" in text
    assert "Traceback" in text  # tracebacks keep their lines


def test_ip_anonymisation(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    configure_logging(
        LoggingSection(directory=str(logs), anonymize_ips=True, performance_log=True)
    )
    context, server = serve_config(
        {"proxies": {"trusted": ["127.0.0.1"]}, "logging": {"performance_log": True}}
    )
    try:
        assert get(server, "/", {"X-Forwarded-For": "198.51.100.77"}) == 200
        assert get(server, "/", {"X-Forwarded-For": "2001:db8:abcd:12::99"}) == 200
        access = wait_for_text(logs / "access.log", "2001:db8:abcd::")
        performance = wait_for_text(logs / "performance.log", "2001:db8:abcd::")
    finally:
        context.join(5)
    assert "198.51.100.0 - - [" in access
    assert "2001:db8:abcd:: - - [" in access
    assert "198.51.100.77" not in access + performance
    assert "198.51.100.0 [" in performance


def test_size_rotation(tmp_path: Path) -> None:
    configure_logging(
        LoggingSection(directory=str(tmp_path), rotation="size", max_bytes=300, backup_count=2)
    )
    access = logging.getLogger("dibble.access")
    for i in range(100):
        access.info("line %d %s", i, "x" * 50)
    assert sorted(p.name for p in tmp_path.glob("access.log*")) == [
        "access.log",
        "access.log.1",
        "access.log.2",
    ]
    assert "line 99" in (tmp_path / "access.log").read_text()


@pytest.mark.parametrize(
    ("rotation", "kind"),
    [
        ("size", logging.handlers.RotatingFileHandler),
        ("daily", logging.handlers.TimedRotatingFileHandler),
        ("external", logging.handlers.WatchedFileHandler),
    ],
)
def test_rotation_kinds(tmp_path: Path, rotation: str, kind: type[logging.Handler]) -> None:
    configure_logging(LoggingSection(directory=str(tmp_path), rotation=rotation))  # type: ignore[arg-type]
    (handler,) = logging.getLogger("dibble.access").handlers
    assert type(handler) is kind


def test_test_mode_logs_to_the_screen(tmp_path: Path) -> None:
    configure_logging(LoggingSection(directory=str(tmp_path / "logs")), test_mode=True)
    assert not (tmp_path / "logs").exists()
    for name in ("dibble", "dibble.access"):
        (handler,) = logging.getLogger(name).handlers
        assert type(handler) is logging.StreamHandler
    assert logging.getLogger("dibble").level == logging.DEBUG


def test_configuring_again_replaces_only_our_handlers(tmp_path: Path) -> None:
    own = logging.NullHandler()
    logging.getLogger("dibble").addHandler(own)
    configure_logging(LoggingSection(directory=str(tmp_path)))
    configure_logging(LoggingSection(directory=str(tmp_path)))
    handlers = logging.getLogger("dibble").handlers
    assert own in handlers
    assert len(handlers) == 2


def test_log_folder_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file")
    with pytest.raises(OSError):  # noqa: PT011 - FileExistsError or NotADirectoryError
        configure_logging(LoggingSection(directory=str(tmp_path / "logs")))
