"""The example site in examples/observatory, served as its README says."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest

Spawn = Callable[..., subprocess.Popen[bytes]]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "observatory"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the example, so its data folder and maintenance file stay out of the tree."""
    copy = tmp_path / "observatory"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("data", "logs", "maintenance"))
    return copy


def request(
    port: int, path: str, host: str = "127.0.0.1", cookie: str = ""
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Host": host, **({"Cookie": cookie} if cookie else {})}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        fields = {k.lower(): v for k, v in response.getheaders()}
        return response.status, fields, response.read().decode()
    finally:
        conn.close()


def test_check_config(site: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dibble", "check-config", "-c", "observatory.toml"],
        capture_output=True,
        text=True,
        cwd=site,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = tomllib.loads(result.stdout)
    assert config["server"]["default_service"] == "home"
    assert "docs.localhost" in config["vhosts"]["hosts"]
    assert "127.0.0.0/8" in config["access"]["allow"]
    assert config["maintenance"]["exempt"] == ["/static/"]


def test_the_example_site(site: Path, spawn: Spawn, free_port: int) -> None:
    proc = spawn(
        [sys.executable, "-m", "dibble", "serve", "-c", "observatory.toml", "-p", str(free_port)],
        free_port,
        cwd=site,
    )
    # Services and the default service.
    status, headers, home = request(free_port, "/?project=Deep%20Field")
    assert status == 200
    assert '<option value="Deep Field" selected>' in home
    assert "2004-01-12" in home
    cookie = headers["set-cookie"].split(";", 1)[0]
    assert cookie == "observatory_project=Deep%20Field"
    # The project is remembered.
    assert "2004-01-12" in request(free_port, "/", cookie=cookie)[2]
    # A signed link works; a tampered one is refused.
    link = re.search(r'href="(/nights/night/[^"]+)"', home)
    assert link is not None
    status, _, night = request(free_port, link.group(1).replace("&amp;", "&"))
    assert status == 200
    assert json.loads(night) == {"project": "Deep Field", "night": "2004-01-12", "frames": 96}
    tampered = link.group(1)[:-3] + "AAA"
    assert request(free_port, tampered)[0] == 400
    # The virtual host.
    assert "Documentation" in request(free_port, "/", host="docs.localhost")[2]
    assert request(free_port, "/nights", host="docs.localhost")[0] == 404
    assert request(free_port, "/static/style.css", host="docs.localhost")[0] == 200
    # Built-in pages.
    status, headers, _ = request(free_port, "/archive")
    assert (status, headers["location"]) == (301, "/nights")
    assert request(free_port, "/error?status=410")[0] == 410
    assert "server information" in request(free_port, "/info")[2].lower()
    # Maintenance mode, started and ended by the file.
    (site / "maintenance").write_text("The telescope is being <serviced>.\n")
    deadline = time.monotonic() + 3
    while (answer := request(free_port, "/"))[0] != 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert answer[1]["retry-after"] == "600"
    assert "The telescope is being &lt;serviced&gt;." in answer[2]
    assert request(free_port, "/static/style.css")[0] == 200
    (site / "maintenance").unlink()
    deadline = time.monotonic() + 3
    while request(free_port, "/")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The secret key was made on first start, private.
    assert (site / "data" / "secret_key").stat().st_mode & 0o077 == 0
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert unquote(cookie.split("=", 1)[1]) == "Deep Field"


def test_the_access_list_refuses_others(site: Path, spawn: Spawn, free_port: int) -> None:
    # Served with an allow list that excludes the loopback, the site refuses us.
    config = (site / "observatory.toml").read_text()
    config = config.replace('allow = ["127.0.0.0/8", "::1",', "allow = [")
    (site / "observatory.toml").write_text(config)
    proc = spawn(
        [sys.executable, "-m", "dibble", "serve", "-c", "observatory.toml", "-p", str(free_port)],
        free_port,
        cwd=site,
    )
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        request(free_port, "/")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
