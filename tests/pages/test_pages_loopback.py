"""Pages over real sockets, with curl as the browser: cookies, forwards, url objects."""

from __future__ import annotations

import gc
import http.client
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import parse_config
from dibble.pages import PageResult


class Project(dibble.Page):
    def get_html(self) -> PageResult:
        return f"project={self.get_arg('project', 'none')}"


class Next(dibble.Forward):
    url = "/project"


class Carry(dibble.Page):
    def get_html(self) -> PageResult:
        if self.has_arg("state"):
            return repr(self.url_decode_object(self.get_arg("state")))
        return self.url_encode_object(["a", 1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dibble.HTTPServer]:
    context = dibble.Context()
    config: dict[str, Any] = {
        "server": {"port": 0, "name": "obs"},
        "paths": {"data_dir": str(tmp_path / "data")},
        "cookies": {"attrs": ["project"]},
    }
    site = dibble.HTTPServer.from_config(parse_config(config), context)
    site.register_service("project", Project)
    site.register_service("next", Next)
    site.register_service("carry", Carry)
    context.start_in_thread()
    yield site
    context.join(5)
    gc.collect()


def run_curl(curl_path: str, *args: str) -> str:
    result = subprocess.run(
        [curl_path, "--silent", "--show-error", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout


def test_remembered_attribute_with_a_real_cookie_jar(
    server: dibble.HTTPServer, curl: str, tmp_path: Path
) -> None:
    jar = str(tmp_path / "jar.txt")
    base = server.url
    assert run_curl(curl, "-c", jar, "-b", jar, base + "project?project=M31") == "project=M31"
    assert "obs_project\tM31" in Path(jar).read_text()
    assert run_curl(curl, "-c", jar, "-b", jar, base + "project") == "project=M31"
    assert run_curl(curl, base + "project") == "project=none"


def test_forward_followed_by_curl(server: dibble.HTTPServer, curl: str) -> None:
    assert run_curl(curl, "-L", server.url + "next") == "project=none"


def test_tampered_url_object_is_a_400(server: dibble.HTTPServer) -> None:
    host, port = server.addresses[0]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/carry")
        token = conn.getresponse().read().decode()
        conn.request("GET", "/carry?state=" + token)
        assert conn.getresponse().read() == b"['a', 1]"
        conn.request("GET", "/carry?state=" + token[:-4])
        response = conn.getresponse()
        assert response.status == 400
        assert b"invalid url object: signature does not match" in response.read()
        conn.request("GET", "/carry?state=" + token)  # the connection still works
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_malformed_cookies_over_the_wire(server: dibble.HTTPServer) -> None:
    host, port = server.addresses[0]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.putrequest("GET", "/project")
        conn.putheader("Cookie", "=x; ;;; obs_project=%ZZ; junk")
        conn.putheader("Cookie", "a" * 5000 + "=1")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"project=%ZZ"
    finally:
        conn.close()
