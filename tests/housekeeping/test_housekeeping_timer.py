"""The timer: jobs in order, in a thread, failures contained, and a server that keeps serving."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import ConfigError, parse_config
from dibble.housekeeping import Housekeeping, default_housekeeping, housekeeping_of
from dibble.sessions import MemoryStore, SessionPool


def test_jobs_run_in_order_with_their_results() -> None:
    timer = Housekeeping()
    timer.add_job("one", lambda: "first")
    timer.add_job("two", lambda: None)
    timer.add_job("three", lambda: 3)
    runs = timer.run_once()
    assert [(r.name, r.result, r.ok) for r in runs] == [
        ("one", "first", True),
        ("two", "", True),
        ("three", "3", True),
    ]
    assert timer.ticks == 1 and timer.held
    assert timer.last_runs["one"].duration >= 0
    assert [job.name for job in timer.jobs] == ["one", "two", "three"]


def test_job_names_are_unique() -> None:
    timer = Housekeeping()
    timer.add_job("one", lambda: None)
    with pytest.raises(ValueError, match="already a housekeeping job named 'one'"):
        timer.add_job("one", lambda: None)
    with pytest.raises(ValueError, match="needs a name"):
        timer.add_job("", lambda: None)
    timer.remove_job("one")
    assert timer.jobs == []
    with pytest.raises(ValueError, match="positive"):
        Housekeeping(interval=0)


def test_a_failing_job_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    timer = Housekeeping()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("the disk is on fire")

    timer.add_job("before", lambda: ran.append("before"))
    timer.add_job("broken", broken)
    timer.add_job("after", lambda: ran.append("after"))
    with caplog.at_level(logging.ERROR, "dibble.error"):
        runs = timer.run_once()
    assert ran == ["before", "after"]
    assert runs[1].error == "RuntimeError: the disk is on fire"
    (record,) = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.name == "dibble.error"
    assert record.exc_info is not None  # the traceback goes to the error log
    assert timer.run_once()[1].error is not None  # and it runs again next time


def run_loop(timer: Housekeeping, seconds: float) -> None:
    async def main() -> None:
        timer.start(asyncio.get_running_loop())
        timer.start(asyncio.get_running_loop())  # a second start is nothing
        await asyncio.sleep(seconds)
        timer.stop()
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_the_timer_ticks_off_the_event_loop() -> None:
    timer = Housekeeping(interval=0.05)
    threads: list[str] = []
    timer.add_job("where", lambda: threads.append(threading.current_thread().name))
    run_loop(timer, 0.4)
    assert len(threads) >= 3
    assert all(name.startswith("dibble-housekeeping") for name in threads)
    assert not timer.running


def test_ticks_never_overlap(caplog: pytest.LogCaptureFixture) -> None:
    timer = Housekeeping(interval=0.05)
    running = 0
    most = 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.15)
        with lock:
            running -= 1

    timer.add_job("slow", slow)
    # A "run now" from the admin area holds the timer's turn for a while.
    now = threading.Thread(target=timer.run_once)
    now.start()
    run_loop(timer, 0.5)
    now.join()
    assert most == 1
    assert timer.ticks >= 2
    assert "the last tick is still running" in caplog.text


def test_stop_waits_for_a_tick_in_progress() -> None:
    timer = Housekeeping()
    started = threading.Event()
    finished: list[bool] = []

    def job() -> None:
        started.set()
        time.sleep(0.2)
        finished.append(True)

    timer.add_job("job", job)
    thread = threading.Thread(target=timer.run_once)
    thread.start()
    started.wait(5)
    timer.stop()
    assert finished == [True]
    thread.join()


# --- in a server ----------------------------------------------------------------------------


class Hello(dibble.Plugin):
    def onHome(self) -> str:
        return "hello"

    def onCount(self) -> str:
        self.session["n"] = self.session.get("n", 0) + 1
        return str(self.session["n"])


CLEANUP_MODULE = """
import threading

made = []
calls = []


class Sweeper:
    def __init__(self, server):
        made.append(server)

    def do_work(self):
        calls.append(threading.current_thread().name)
        return "swept"


class Broken:
    def __init__(self, server):
        pass

    def do_work(self):
        raise ValueError("the cleanup class broke")


NotAClass = 42


class NoWork:
    pass
"""


@pytest.fixture
def cleanup_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import importlib
    import sys

    (tmp_path / "hk_cleanup_classes.py").write_text(CLEANUP_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("hk_cleanup_classes")
    yield module
    sys.modules.pop("hk_cleanup_classes", None)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., dibble.HTTPServer]]:
    contexts: list[dibble.Context] = []

    def start(table: dict[str, Any], **kwargs: Any) -> dibble.HTTPServer:
        base: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": 0, "secret_key": "k" * 40},
            "paths": {"data_dir": str(tmp_path / "data")},
        }
        for name, section in table.items():
            base[name] = {**base.get(name, {}), **section}
        context = dibble.Context()
        server = dibble.HTTPServer.from_config(parse_config(base), context)
        if "sessions" in kwargs:
            server.sessions = kwargs["sessions"]
        server.configure(access_log=False)
        server.register(Hello())
        context.start_in_thread()
        contexts.append(context)
        return server

    yield start
    for context in contexts:
        context.join(5)
    _browsers.clear()


def get(server: dibble.HTTPServer, path: str = "/") -> str:
    """The page at ``path``; each server has a cookie jar of its own (like a browser)."""
    browser = _browsers.setdefault(
        id(server), urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    )
    with browser.open(server.url.rstrip("/") + path, timeout=5) as response:
        return str(response.read().decode())


_browsers: dict[int, urllib.request.OpenerDirector] = {}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.02)


def test_a_server_runs_its_timer_and_the_cleanup_class(
    serve: Callable[..., dibble.HTTPServer], cleanup_module: Any
) -> None:
    server = serve(
        {
            "housekeeping": {
                "interval": 0.05,
                "cleanup_class": "hk_cleanup_classes:Sweeper",
            }
        }
    )
    assert get(server, "/count") == "1"
    wait_for(lambda: len(cleanup_module.calls) >= 2)
    assert cleanup_module.made == [server]  # made once, with the server
    assert all(name.startswith("dibble-housekeeping") for name in cleanup_module.calls)
    housekeeping = server.housekeeping
    assert housekeeping is not None and housekeeping.running
    assert [job.name for job in housekeeping.jobs] == ["sessions", "statistics", "cleanup class"]
    wait_for(lambda: "sessions" in housekeeping.last_runs)
    assert housekeeping.last_runs["cleanup class"].result == "swept"
    pool = server.sessions
    assert pool is not None and pool.cleanup_interval is None  # the timer cleans now
    assert get(server, "/count") == "2"


def test_a_cleanup_class_that_raises_is_logged_and_the_server_keeps_serving(
    serve: Callable[..., dibble.HTTPServer],
    cleanup_module: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = serve(
        {"housekeeping": {"interval": 0.05, "cleanup_class": "hk_cleanup_classes:Broken"}}
    )
    housekeeping = server.housekeeping
    assert housekeeping is not None
    wait_for(lambda: housekeeping.ticks >= 3)
    run = housekeeping.last_runs["cleanup class"]
    assert run.error == "ValueError: the cleanup class broke"
    assert housekeeping.last_runs["sessions"].ok  # the other jobs still ran
    assert "housekeeping: the job 'cleanup class' failed" in caplog.text
    assert get(server) == "hello"


def test_a_pool_given_with_a_timer_of_its_own_keeps_it(
    serve: Callable[..., dibble.HTTPServer],
) -> None:
    pool = SessionPool(MemoryStore(), cleanup_interval=123.0)
    server = serve({"housekeeping": {"interval": 0.05}}, sessions=pool)
    housekeeping = server.housekeeping
    assert housekeeping is not None
    wait_for(lambda: "sessions" in housekeeping.last_runs)
    assert housekeeping.last_runs["sessions"].result == (
        "the session pool cleans itself every 123 s"
    )
    assert [pool.cleanup_interval] == [123.0]
    server.context.join(5)
    pool.close()


def test_a_pool_given_without_a_timer_is_cleaned_by_housekeeping(
    serve: Callable[..., dibble.HTTPServer],
) -> None:
    pool = SessionPool(MemoryStore(), cleanup_interval=None)
    server = serve({"housekeeping": {"interval": 0.05}}, sessions=pool)
    housekeeping = server.housekeeping
    assert housekeeping is not None
    wait_for(lambda: "sessions" in housekeeping.last_runs)
    assert housekeeping.last_runs["sessions"].result.endswith("expired session record(s) removed")
    server.context.join(5)
    pool.close()


def test_the_configured_pool_gets_its_timer_back_when_the_timer_stops(tmp_path: Path) -> None:
    config = parse_config({"paths": {"data_dir": str(tmp_path)}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    timer = housekeeping_of(server)
    runs = {run.name: run for run in timer.run_once()}
    assert runs["sessions"].result == "0 expired session record(s) removed"
    pool = server.sessions  # made for the cleanup: the store is a shared file
    assert pool is not None and pool.made_by_default
    assert [pool.cleanup_interval] == [None]
    timer.stop()
    assert [pool.cleanup_interval] == [300.0]
    pool.close()


def test_without_housekeeping_the_pool_cleans_by_itself(
    serve: Callable[..., dibble.HTTPServer],
) -> None:
    server = serve({"housekeeping": {"enabled": False}})
    assert server.housekeeping is None
    assert get(server, "/count") == "1"
    assert server.sessions is not None and server.sessions.cleanup_interval == 300.0
    with pytest.raises(RuntimeError, match="turned off"):
        housekeeping_of(server)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hk_cleanup_classes:Missing", "has no attribute"),
        ("no_such_module_xyz:Cleaner", "cannot import"),
        ("hk_cleanup_classes:NotAClass", "is not a class"),
        ("hk_cleanup_classes:NoWork", "has no do_work"),
    ],
)
def test_a_bad_cleanup_class_is_a_config_error_at_start(
    cleanup_module: Any, spec: str, message: str
) -> None:
    config = parse_config({"housekeeping": {"cleanup_class": spec}})
    with pytest.raises(ConfigError, match=r"\[housekeeping\] cleanup_class: .*" + message):
        dibble.HTTPServer.from_config(config, dibble.Context())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cleanup_class": "just_a_module"}, 'expected "module:Class"'),
        ({"mail_to": ["not an address"]}, "is not a mail address"),
        ({"mail_to": [""]}, "an empty mail address"),
        ({"mail_from": "a@b, c@d"}, "is not a mail address"),
        ({"smtp_user": "mailer"}, "needs smtp_password_file"),
        ({"interval": 0}, "must be more than 0"),
        ({"log_short_age": -1}, "must not be negative"),
        ({"lock": "postgres://db/x"}, "is not a lock store"),
        ({"smtp_port": 70000}, "between 0 and 65535"),
    ],
)
def test_housekeeping_settings_are_checked(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"housekeeping": table})


def test_the_jobs_a_configuration_asks_for(tmp_path: Path, cleanup_module: Any) -> None:
    config = parse_config(
        {
            "logging": {"directory": "logs"},
            "housekeeping": {
                "interval": 60,
                "mail_to": ["ops@example.org"],
                "cleanup_class": "hk_cleanup_classes:Sweeper",
            },
        },
        base_dir=str(tmp_path),
    )
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    timer = housekeeping_of(server)
    assert [(j.name, j.exclusive) for j in timer.jobs] == [
        ("sessions", False),
        ("statistics", False),
        ("log files", True),
        ("error mail", True),
        ("cleanup class", True),
    ]
    assert timer.interval == 60 and timer.lock_ttl == 180
    assert housekeeping_of(server) is timer
    assert timer.lock.description == "memory (this process)"  # no data_dir, no Redis
    timer.stop()


def test_mail_without_a_log_folder_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config({"housekeeping": {"mail_to": ["ops@example.org"]}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    timer = default_housekeeping(server)
    assert timer is not None
    assert "error mail" not in [job.name for job in timer.jobs]
    assert "there is no error log file to mail" in caplog.text


def test_the_lock_follows_the_shared_state(tmp_path: Path) -> None:
    from dibble.housekeeping import RedisLock, SQLiteLock, lock_for

    with_data = parse_config({"paths": {"data_dir": str(tmp_path)}})
    lock = lock_for(with_data)()
    assert isinstance(lock, SQLiteLock) and lock.path == str(tmp_path / "housekeeping.sqlite3")
    lock.close()
    shared = parse_config({"sessions": {"store": "redis://127.0.0.1:1/2"}})
    redis = lock_for(shared)()
    assert isinstance(redis, RedisLock)
    redis.close()
    named = parse_config(
        {"paths": {"data_dir": str(tmp_path)}, "housekeeping": {"lock": "memory"}}
    )
    assert lock_for(named)().description == "memory (this process)"
