"""``dibble serve -c FILE`` and ``dibble check-config``, run as a user runs them."""

from __future__ import annotations

import http.client
import signal
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

Spawn = Callable[..., subprocess.Popen[bytes]]

APP = """
import dibble


class Hello(dibble.Page):
    def get_html(self) -> str:
        self.set_cookie("seen", "1")
        return "hello " + (self.request.client_ip or "?")


class Cal(dibble.Plugin):
    def onHome(self) -> str:
        return "cal"

    def onSpam(self) -> str:
        return "spam"


class Extra(dibble.Plugin):
    def onExtra(self) -> str:
        return "extra"
"""

SERVER_APP = """
import dibble

from cli_app import Cal

server = dibble.HTTPServer(("127.0.0.1", {port}), keep_alive_timeout=3, test_mode=True)
server.register(Cal(), prefix="/coded")
"""

CONFIG = """
[server]
name = "obs"
port = {port}
default_service = "hello"

[services]
hello = "cli_app:Hello"
cal = "cli_app:Cal"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "cli_app.py").write_text(APP)
    return tmp_path


def dibble(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dibble", *args],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=cwd,
        check=False,
    )


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        cookie = response.getheader("Set-Cookie") or ""
        return response.status, response.read().decode(), cookie
    finally:
        conn.close()


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    return stderr.decode()


def test_check_config_prints_the_effective_configuration(site: Path) -> None:
    (site / "site.toml").write_text(CONFIG.format(port=8123))
    result = dibble("check-config", "-c", "site.toml", "-p", "9000", "-d", "example.org", cwd=site)
    assert result.returncode == 0, result.stderr
    printed = tomllib.loads(result.stdout)
    assert printed["server"]["port"] == 9000  # the command line wins
    assert printed["server"]["name"] == "obs"
    assert printed["cookies"]["domain"] == "example.org"
    assert printed["services"] == {"hello": "cli_app:Hello", "cal": "cli_app:Cal"}
    assert printed["limits"]["max_body_size"] == 16 * 1024 * 1024  # defaults too
    assert printed["paths"]["root"] == str(site)


def test_check_config_without_a_file_prints_the_defaults(tmp_path: Path) -> None:
    result = dibble("check-config", cwd=tmp_path)
    assert result.returncode == 0
    assert tomllib.loads(result.stdout)["server"]["port"] == 8888


def test_check_config_hides_the_secret_key(site: Path) -> None:
    (site / "site.toml").write_text(f'[server]\nsecret_key = "{"s3cr3t" * 8}"\n')
    result = dibble("check-config", "-c", "site.toml", cwd=site)
    assert result.returncode == 0
    assert "s3cr3t" not in result.stdout
    assert 'secret_key = "<hidden: 48 characters>"' in result.stdout


def test_check_config_hides_passwords_in_every_url(site: Path) -> None:
    (site / "site.toml").write_text(
        '[sessions]\nstore = "redis://web:pw-sessions@127.0.0.1:6379/0"\n'
        '[housekeeping]\nlock = "redis://:pw-lock@127.0.0.1:6379/1"\n'
        '[statistics]\nstore = "redis://stats:pw-stats@127.0.0.1:6379/2"\n'
        '[auth]\nsso_keys = ["k3y-one-that-is-long-enough-0123456789"]\n'
    )
    result = dibble("check-config", "-c", "site.toml", cwd=site)
    assert result.returncode == 0, result.stderr
    for secret in ("pw-sessions", "pw-lock", "pw-stats", "k3y-one"):
        assert secret not in result.stdout
    printed = tomllib.loads(result.stdout)
    assert printed["housekeeping"]["lock"] == "redis://***@127.0.0.1:6379/1"
    assert printed["sessions"]["store"] == "redis://web:***@127.0.0.1:6379/0"


def test_check_config_makes_nothing(site: Path) -> None:
    (site / "site.toml").write_text('[paths]\ndata_dir = "data"\n')
    assert dibble("check-config", "-c", "site.toml", cwd=site).returncode == 0
    assert not (site / "data").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nport = "abc"', '[server] port: expected an integer, got "abc" (in site.toml)'),
        ("[server]\nport = 1\n[server]", "site.toml: not valid TOML: "),
        ("[nope]", "[nope]: unknown section"),
        ("[server]\nnope = 1", "[server] nope: unknown setting"),
        ('[services]\nx = "cli_app:Missing"', '[services] x: cannot import "cli_app:Missing"'),
        ('[services]\nx = "no_module_here:X"', "No module named 'no_module_here'"),
        ('[access]\nallow = ["1.2.3.04"]', '[access] allow: "1.2.3.04" is not a valid IPv4'),
        ('[server]\ndefault_service = "x"', '[server] default_service: no service named "x"'),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_bad_configuration_is_one_line_and_status_2(
    site: Path, text: str, message: str, command: str
) -> None:
    (site / "site.toml").write_text(text)
    target = ["cli_app.py:Extra"] if command == "serve" else []
    result = dibble(command, *target, "-c", "site.toml", cwd=site)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dibble: config error: ")
    assert message in lines[0]


def test_bad_default_service_from_the_command_line(site: Path) -> None:
    (site / "site.toml").write_text(CONFIG.format(port=0))
    result = dibble("check-config", "-c", "site.toml", "-s", "nothing", cwd=site)
    assert result.returncode == 2
    assert '[server] default_service: no service named "nothing"' in result.stderr


def test_missing_config_file(site: Path) -> None:
    result = dibble("serve", "-c", "nothing.toml", cwd=site)
    assert result.returncode == 2
    assert (
        result.stderr
        == "dibble: config error: nothing.toml: cannot read it: No such file or directory\n"
    )


def test_serve_needs_a_target_or_services(site: Path) -> None:
    (site / "site.toml").write_text("[server]\nport = 0\n")
    result = dibble("serve", "-c", "site.toml", cwd=site)
    assert result.returncode == 2
    assert "the following arguments are required: TARGET" in result.stderr


def test_serve_the_configured_services(site: Path, spawn: Spawn, free_port: int) -> None:
    (site / "site.toml").write_text(CONFIG.format(port=1))
    proc = spawn(
        [sys.executable, "-m", "dibble", "serve", "-c", "site.toml", "-p", str(free_port)],
        free_port,
        cwd=site,
    )
    status, text, cookie = get(free_port, "/")
    assert (status, text) == (200, "hello 127.0.0.1")
    assert cookie.startswith("obs_seen=1;")
    assert get(free_port, "/cal")[1] == "cal"
    assert get(free_port, "/cal/spam")[1] == "spam"
    assert get(free_port, "/spam")[0] == 404
    stop(proc)


def test_command_line_options_win(site: Path, spawn: Spawn, free_port: int) -> None:
    (site / "site.toml").write_text(CONFIG.format(port=1))
    command = [sys.executable, "-m", "dibble", "serve", "-c", "site.toml"]
    options = ["-p", str(free_port), "-s", "cal", "-d", "example.org"]
    proc = spawn([*command, *options], free_port, cwd=site)
    assert get(free_port, "/")[1] == "cal"
    _, _, cookie = get(free_port, "/hello")
    assert "Domain=example.org" in cookie
    stop(proc)


def test_target_plugins_and_configured_services(site: Path, spawn: Spawn, free_port: int) -> None:
    (site / "site.toml").write_text(CONFIG.format(port=free_port))
    proc = spawn(
        [sys.executable, "-m", "dibble", "serve", "cli_app.py:Extra", "-c", "site.toml"],
        free_port,
        cwd=site,
    )
    assert get(free_port, "/extra")[1] == "extra"
    assert get(free_port, "/cal")[1] == "cal"
    stop(proc)


def test_a_server_in_code_takes_only_what_the_file_sets(
    site: Path, spawn: Spawn, free_port: int
) -> None:
    (site / "server_app.py").write_text(SERVER_APP.format(port=free_port))
    (site / "site.toml").write_text('[services]\nhello = "cli_app:Hello"\n')
    proc = spawn(
        [sys.executable, "-m", "dibble", "serve", "server_app.py", "-c", "site.toml"],
        free_port,
        cwd=site,
    )
    # The port and the plugin come from the code, the service from the file.
    assert get(free_port, "/coded/spam")[1] == "spam"
    assert get(free_port, "/hello")[1] == "hello 127.0.0.1"
    stop(proc)


def test_the_secret_key_is_made_private_on_first_start(
    site: Path, spawn: Spawn, free_port: int
) -> None:
    (site / "site.toml").write_text(
        CONFIG.format(port=free_port) + '\n[paths]\ndata_dir = "data"\n'
    )
    proc = spawn([sys.executable, "-m", "dibble", "serve", "-c", "site.toml"], free_port, cwd=site)
    key = site / "data" / "secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_bytes()
    stop(proc)
    proc = spawn([sys.executable, "-m", "dibble", "serve", "-c", "site.toml"], free_port, cwd=site)
    assert key.read_bytes() == first
    stop(proc)


def test_logs_to_files_and_the_screen_in_test_mode(
    site: Path, spawn: Spawn, free_port: int
) -> None:
    config = CONFIG.format(port=free_port) + '\n[logging]\ndirectory = "logs"\n'
    (site / "site.toml").write_text(config)
    proc = spawn([sys.executable, "-m", "dibble", "serve", "-c", "site.toml"], free_port, cwd=site)
    get(free_port, "/cal")
    stderr = stop(proc)
    assert '"GET /cal HTTP/1.1" 200' in (site / "logs" / "access.log").read_text()
    assert "listening on" in (site / "logs" / "error.log").read_text()
    assert stderr == ""
    proc = spawn(
        [sys.executable, "-m", "dibble", "serve", "-c", "site.toml", "-t"], free_port, cwd=site
    )
    get(free_port, "/cal/spam")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr_bytes = proc.communicate(timeout=10)
    assert '"GET /cal/spam HTTP/1.1" 200' in stdout.decode()
    assert "GET /cal/spam" not in (site / "logs" / "access.log").read_text()
    assert "listening on" in stderr_bytes.decode()


def test_a_log_folder_that_cannot_be_made(site: Path) -> None:
    (site / "logs").write_text("a file")
    (site / "site.toml").write_text(CONFIG.format(port=0) + '\n[logging]\ndirectory = "logs"\n')
    result = dibble("serve", "-c", "site.toml", cwd=site)
    assert result.returncode == 2
    assert result.stderr.startswith("dibble: config error: [logging] directory: ")
