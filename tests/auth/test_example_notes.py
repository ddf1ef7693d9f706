"""The notes example (examples/notes), set up and served as its notes.toml says.

A real browser-like client walks it: urllib with a cookie jar, following
redirects: the guestbook, the login the protected page sends it to, notes
kept in the session, signing the guestbook, logging out.
"""

from __future__ import annotations

import html
import http.cookiejar
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

Spawn = Callable[..., subprocess.Popen[bytes]]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notes"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the example, so its data folder stays out of the tree."""
    copy = tmp_path / "notes"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return copy


def dibble_cli(site: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dibble", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=site,
        timeout=60,
        check=False,
    )


class Browser:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[str, str]:
        url = self.base + path  # http://127.0.0.1 only
        request = urllib.request.Request(url, headers={"Accept": "text/html"})  # noqa: S310
        with self.opener.open(request, timeout=10) as response:
            return response.geturl().removeprefix(self.base), response.read().decode()

    def post(self, path: str, **fields: str) -> tuple[str, str]:
        data = urllib.parse.urlencode(fields).encode()
        url = self.base + path  # http://127.0.0.1 only
        request = urllib.request.Request(url, data, headers={"Accept": "text/html"})  # noqa: S310
        with self.opener.open(request, timeout=10) as response:
            return response.geturl().removeprefix(self.base), response.read().decode()


def token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, page
    return html.unescape(match[1])


def test_the_notes_example(site: Path, spawn: Spawn, free_port: int) -> None:
    added = dibble_cli(
        site,
        "user",
        "add",
        "alice",
        "--password-stdin",
        "-c",
        "notes.toml",
        stdin="alice's password\n",
    )
    assert added.returncode == 0, added.stderr
    assert dibble_cli(site, "user", "list", "-c", "notes.toml").stdout == "alice\n"
    server = spawn(
        [
            sys.executable,
            "-m",
            "dibble",
            "serve",
            "notes_site.py",
            "-c",
            "notes.toml",
            "-p",
            str(free_port),
            "--no-access-log",
        ],
        free_port,
        cwd=site,
    )
    browser = Browser(free_port)
    url, page = browser.get("/")
    assert "Guestbook" in page and "log in" in page
    assert "Sign the guestbook" not in page  # only for logged-in users
    # The protected page sends the browser to the login page, and back after it.
    url, form = browser.get("/notes")
    assert url == "/login?next=%2Fnotes"
    url, page = browser.post(
        "/login", user="alice", password="alice's password", next="/notes", csrf_token=token(form)
    )
    assert url == "/notes"
    assert "alice" in page and "Visits to this page in this session: 1" in page
    url, page = browser.post("/add", text="buy <milk>", csrf_token=token(page))
    assert url == "/notes"
    assert "Saved." in page and "buy &lt;milk&gt;" in page
    assert "Visits to this page in this session: 2" in page
    url, page = browser.get("/notes")
    assert "Saved." not in page  # said once
    url, page = browser.get("/")
    url, page = browser.post("/sign", text="Lovely site", csrf_token=token(page))
    assert url == "/"
    assert "Lovely site" in page and "alice" in page
    url, page = browser.get("/logout")
    url, page = browser.post("/logout", csrf_token=token(page))
    assert url == "/login"
    url, _ = browser.get("/notes")
    assert url == "/login?next=%2Fnotes"
    server.terminate()
    server.communicate(timeout=10)
    assert (site / "data" / "sessions.sqlite3").exists()
    assert (site / "data" / "dibble.sqlite3").exists()
