"""The ``dibble`` command, run as a user runs it: ``python -m dibble`` in a subprocess."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import dibble

Spawn = Callable[..., subprocess.Popen[bytes]]

SITE = """
import dibble


class Alpha(dibble.Plugin):
    def onAlpha(self) -> str:
        return "alpha"

    def onBoom(self) -> str:
        return str(1 // 0)


class Beta(dibble.Plugin):
    def onBeta(self) -> str:
        return "beta"


class NeedsArgs(dibble.Plugin):
    def __init__(self, name: str) -> None:
        self.name = name


class NotAPlugin:
    def onAlpha(self) -> str:
        return "no"


PLUGINS = [Alpha(), Beta()]
NOTHING: list[dibble.Plugin] = []
NUMBER = 42
"""

TWO_PLUGINS = """
import dibble
from site_plugins import NeedsArgs  # defined elsewhere: left alone, not instantiated


class Alpha(dibble.Plugin):
    def onAlpha(self) -> str:
        return "alpha"


class Beta(dibble.Plugin):
    def onBeta(self) -> str:
        return "beta"
"""

SERVER = """
import dibble

from site_plugins import Alpha

server = dibble.HTTPServer(({host!r}, {port}), keep_alive_timeout=3)
server.register(Alpha())
"""

COMBINED = re.compile(
    r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
    r'"GET /alpha\?x=1 HTTP/1\.1" 200 5 "http://example\.test/from" "cli-test/1\.0"$'
)


def dibble_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dibble", *args]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dibble_command(*args), capture_output=True, text=True, timeout=10, cwd=cwd, check=False
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "site_plugins.py").write_text(SITE)
    (tmp_path / "empty_module.py").write_text("VALUE = 1\n")
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('cannot start')\n")
    (tmp_path / "syntax_error.py").write_text("def broken(:\n")
    (tmp_path / "missing_import.py").write_text("import no_such_module_anywhere\n")
    return tmp_path


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        conn.close()


def stop(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    """SIGTERM the server; return its stdout and stderr once it exited cleanly."""
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 0, stderr
    return stdout.decode(), stderr.decode()


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"dibble {dibble.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", dibble.__version__)


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "serve" in result.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("does_not_exist.py", "no such file: does_not_exist.py"),
        ("does/not/exist.py:Alpha", "no such file: does/not/exist.py"),
        ("no_such_module_xyz", "cannot import module 'no_such_module_xyz'"),
        ("broken_module.py", "RuntimeError: cannot start"),
        ("broken_module", "RuntimeError: cannot start"),
        ("syntax_error.py", "SyntaxError"),
        ("missing_import.py", "no_such_module_anywhere"),
        ("site_plugins.py:Gamma", "has no attribute 'Gamma'"),
        ("site_plugins:Gamma", "has no attribute 'Gamma'"),
        ("site_plugins.py:NUMBER", "is int, not an HTTPServer"),
        ("site_plugins.py:NotAPlugin", "is type, not an HTTPServer"),
        ("site_plugins.py:NOTHING", "is an empty list"),
        ("site_plugins.py:NeedsArgs", "cannot create NeedsArgs() without arguments"),
        ("site_plugins.py:1abc", "is not a valid attribute name"),
        ("empty_module.py", "defines no HTTPServer, plugin or Plugin subclass"),
        ("empty_module", "defines no HTTPServer, plugin or Plugin subclass"),
    ],
)
def test_bad_target_prints_one_line_and_exits_2(site: Path, target: str, message: str) -> None:
    result = run("serve", target, "-p", "0", cwd=site)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dibble: error: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-p", "notaport"], "invalid port 'notaport'"),
        (["-p", "70000"], "port 70000 is out of range"),
        (["-p", "-1"], "port -1 is out of range"),
        (["--keep-alive-timeout", "0"], "must be more than 0 seconds"),
        (["--keep-alive-timeout", "soon"], "invalid number of seconds 'soon'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        ([], "the following arguments are required: TARGET"),
    ],
)
def test_bad_option_prints_one_line_and_exits_2(
    site: Path, options: list[str], message: str
) -> None:
    target = ["site_plugins.py"] if options else []
    result = run("serve", *target, *options, cwd=site)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_serve_a_list_of_plugins(site: Path, spawn: Spawn, free_port: int) -> None:
    proc = spawn(
        dibble_command("serve", "site_plugins:PLUGINS", "-p", str(free_port)), free_port, cwd=site
    )
    assert get(free_port, "/alpha") == (200, "alpha")
    assert get(free_port, "/beta") == (200, "beta")
    stop(proc)


def test_serve_a_plugin_class(site: Path, spawn: Spawn, free_port: int) -> None:
    proc = spawn(
        dibble_command("serve", "site_plugins.py:Beta", "-p", str(free_port)), free_port, cwd=site
    )
    assert get(free_port, "/beta") == (200, "beta")
    assert get(free_port, "/alpha")[0] == 404
    stop(proc)


def test_serve_a_module_serves_every_plugin_class_it_defines(
    site: Path, spawn: Spawn, free_port: int
) -> None:
    (site / "two_plugins.py").write_text(TWO_PLUGINS)
    proc = spawn(dibble_command("serve", "two_plugins", "-p", str(free_port)), free_port, cwd=site)
    assert get(free_port, "/alpha") == (200, "alpha")
    assert get(free_port, "/beta") == (200, "beta")
    stop(proc)


def test_serve_an_http_server_instance(site: Path, spawn: Spawn, free_port: int) -> None:
    (site / "hosted.py").write_text(SERVER.format(host="127.0.0.1", port=free_port))
    proc = spawn(dibble_command("serve", "hosted.py:server"), free_port, cwd=site)
    assert get(free_port, "/alpha") == (200, "alpha")
    stop(proc)


def test_host_and_port_options_override_the_modules_server(
    site: Path, spawn: Spawn, free_port: int
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: binding it would fail.
    (site / "elsewhere.py").write_text(SERVER.format(host="192.0.2.1", port=1))
    proc = spawn(
        dibble_command("serve", "elsewhere.py", "-H", "127.0.0.1", "-p", str(free_port)),
        free_port,
        cwd=site,
    )
    assert get(free_port, "/alpha") == (200, "alpha")
    stop(proc)


TWO_SERVERS = """
import dibble

from site_plugins import Alpha

one = dibble.HTTPServer(("127.0.0.1", 0))
two = dibble.HTTPServer(("127.0.0.1", 0){context})
one.register(Alpha())
two.register(Alpha())
"""


@pytest.mark.parametrize(
    ("context", "options", "message"),
    [
        ("", ["-p", "0"], "TARGET defines several servers; -H/-p cannot apply to all"),
        (", dibble.Context()", [], "TARGET's servers are in different contexts"),
    ],
    ids=["port-for-two-servers", "two-contexts"],
)
def test_servers_the_options_cannot_apply_to_exit_2(
    site: Path, context: str, options: list[str], message: str
) -> None:
    (site / "two_servers.py").write_text(TWO_SERVERS.format(context=context))
    result = run("serve", "two_servers.py", *options, cwd=site)
    assert result.returncode == 2
    assert result.stderr == f"dibble: error: {message}\n"


def test_keep_alive_timeout_option(site: Path, spawn: Spawn, free_port: int) -> None:
    proc = spawn(
        dibble_command(
            "serve", "site_plugins.py:Alpha", "-p", str(free_port), "--keep-alive-timeout", "0.3"
        ),
        free_port,
        cwd=site,
    )
    conn = http.client.HTTPConnection("127.0.0.1", free_port, timeout=3)
    try:
        conn.request("GET", "/alpha")
        assert conn.getresponse().read() == b"alpha"
        assert conn.sock is not None
        conn.sock.settimeout(1.5)
        started = time.monotonic()
        assert conn.sock.recv(10) == b""  # closed by the server once idle for 0.3 s
        assert time.monotonic() - started < 1.0
    finally:
        conn.close()
    stop(proc)


def test_unbindable_address_exits_1_with_one_line(site: Path) -> None:
    (site / "elsewhere.py").write_text(SERVER.format(host="192.0.2.1", port=1))
    result = run("serve", "elsewhere.py", cwd=site)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dibble: error: cannot listen")


def test_access_log_line_in_combined_format_on_stdout(
    site: Path, spawn: Spawn, free_port: int
) -> None:
    proc = spawn(
        dibble_command("serve", "site_plugins.py:Alpha", "-p", str(free_port)),
        free_port,
        cwd=site,
    )
    headers = {"User-Agent": "cli-test/1.0", "Referer": "http://example.test/from"}
    assert get(free_port, "/alpha?x=1", headers) == (200, "alpha")
    stdout, _ = stop(proc)
    assert [line for line in stdout.splitlines() if COMBINED.match(line)], stdout
    assert len(stdout.splitlines()) == 1


def test_no_access_log_option(site: Path, spawn: Spawn, free_port: int) -> None:
    proc = spawn(
        dibble_command("serve", "site_plugins.py:Alpha", "-p", str(free_port), "--no-access-log"),
        free_port,
        cwd=site,
    )
    assert get(free_port, "/alpha?x=1") == (200, "alpha")
    stdout, _ = stop(proc)
    assert stdout == ""


@pytest.mark.parametrize("test_mode", [True, False], ids=["-t", "no -t"])
def test_traceback_in_500_page_only_in_test_mode(
    site: Path, spawn: Spawn, free_port: int, test_mode: bool
) -> None:
    options = ["-t"] if test_mode else []
    proc = spawn(
        dibble_command("serve", "site_plugins.py:Alpha", "-p", str(free_port), *options),
        free_port,
        cwd=site,
    )
    status, page = get(free_port, "/boom")
    assert status == 500
    assert "500 Internal Server Error" in page
    assert ("Traceback" in page) is test_mode
    assert ("ZeroDivisionError" in page) is test_mode
    _, stderr = stop(proc)
    # The error log always has the traceback.
    assert "Traceback" in stderr
    assert "ZeroDivisionError" in stderr
