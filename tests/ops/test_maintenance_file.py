"""The maintenance file: parsed once per change, looked at once per interval."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from dibble.ops import DEFAULT_MESSAGE, MaintenanceState, MaintenanceWatcher, parse_maintenance


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_text_is_the_message() -> None:
    assert parse_maintenance("Back at 14:00.\nSorry!\n") == MaintenanceState(
        message="Back at 14:00.\nSorry!"
    )


def test_empty_means_no_maintenance() -> None:
    assert parse_maintenance("") is None


def test_whitespace_only_means_the_default_message() -> None:
    assert parse_maintenance("\n  \n") == MaintenanceState(message=DEFAULT_MESSAGE)


@pytest.mark.parametrize(
    "url", ["https://new.example.org/", "http://new.example.org", "/elsewhere/page?x=1"]
)
def test_301_line_redirects(url: str) -> None:
    assert parse_maintenance(f"301 {url}\n") == MaintenanceState(redirect=url)


@pytest.mark.parametrize(
    "line",
    [
        "301",
        "301 ",
        "301 not-a-url",
        "301 javascript:alert(1)",
        "301 https://a.example.org/ with spaces",
        "301 ftp://files.example.org/",
        "301 https://",
        "301 https://a.example.org/<script>",
    ],
)
def test_malformed_301_line_is_a_plain_503(line: str) -> None:
    state = parse_maintenance(line)
    assert state is not None
    assert state.redirect is None
    assert state.message == DEFAULT_MESSAGE
    assert state.problem is not None
    assert "malformed redirect line" in state.problem


def test_a_301_line_among_others_is_just_text() -> None:
    state = parse_maintenance("301 https://a.example.org/\nwe moved")
    assert state == MaintenanceState(message="301 https://a.example.org/\nwe moved")


def test_watcher_follows_the_file(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "maintenance"
    watcher = MaintenanceWatcher(path, clock=clock)
    assert watcher.current() is None
    path.write_text("Upgrading the database.\n")
    assert watcher.current() is None  # not looked at again within the interval
    clock.now = 1.0
    assert watcher.current() == MaintenanceState(message="Upgrading the database.")
    path.unlink()
    clock.now = 1.5
    assert watcher.current() is not None
    clock.now = 2.0
    assert watcher.current() is None


def test_watcher_reads_only_when_the_file_changed(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "maintenance"
    path.write_text("down")
    watcher = MaintenanceWatcher(path, clock=clock)
    assert watcher.current() == MaintenanceState(message="down")
    opened: list[str] = []
    real_open = open

    def counting_open(file: str, *args: object, **kwargs: object) -> object:
        opened.append(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", counting_open)
    for step in range(1, 5):
        clock.now = float(step)
        assert watcher.current() == MaintenanceState(message="down")
    assert opened == []


def test_no_file_system_call_between_checks(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = MaintenanceWatcher(tmp_path / "maintenance", clock=clock)
    watcher.current()
    calls: list[object] = []
    monkeypatch.setattr(os, "stat", lambda *a, **k: calls.append(a))
    for _ in range(1000):
        watcher.current()
    assert calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_plain_503_with_a_warning(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "maintenance"
    path.write_text("301 https://new.example.org/")
    path.chmod(0)
    try:
        with caplog.at_level(logging.WARNING, "dibble.error"):
            state = MaintenanceWatcher(path, clock=clock).current()
    finally:
        path.chmod(0o600)
    assert state is not None
    assert state.redirect is None
    assert state.message == DEFAULT_MESSAGE
    assert any("cannot read it" in r.getMessage() for r in caplog.records)


def test_a_directory_named_maintenance_is_a_plain_503(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "maintenance").mkdir()
    state = MaintenanceWatcher(tmp_path / "maintenance", clock=clock).current()
    assert state is not None
    assert state.message == DEFAULT_MESSAGE


def test_malformed_redirect_is_logged_once(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "maintenance"
    path.write_text("301 nowhere")
    watcher = MaintenanceWatcher(path, clock=clock)
    with caplog.at_level(logging.WARNING, "dibble.error"):
        for step in range(5):
            clock.now = float(step)
            state = watcher.current()
            assert state is not None
            assert state.redirect is None
    warnings = [r for r in caplog.records if "malformed redirect line" in r.getMessage()]
    assert len(warnings) == 1


def test_invalid_utf8_is_shown_replaced(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "maintenance"
    path.write_bytes(b"caf\xe9 closed")
    state = MaintenanceWatcher(path, clock=clock).current()
    assert state == MaintenanceState(message="caf\ufffd closed")


def test_only_the_start_of_a_huge_file_is_read(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "maintenance"
    path.write_text("x" * 1_000_000)
    state = MaintenanceWatcher(path, clock=clock).current()
    assert state is not None
    assert len(state.message) == 64 * 1024


def test_unreadable_file_even_as_root(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "maintenance"
    path.write_text("301 https://new.example.org/")

    def refuse(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    state = MaintenanceWatcher(path, clock=clock).current()
    assert state is not None
    assert state.redirect is None
    assert state.problem == "cannot read it (Permission denied)"
