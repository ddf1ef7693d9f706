"""Access lists, trusted proxies, virtual hosts and maintenance mode over real sockets."""

from __future__ import annotations

import gc
import http.client
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import parse_config
from dibble.pages import PageResult

Start = Callable[..., dibble.HTTPServer]


class Who(dibble.Plugin):
    def __init__(self) -> None:
        self.calls = 0

    def onHome(self) -> str:
        self.calls += 1
        return f"home {self.request.client_ip}"

    def onWho(self) -> str:
        self.calls += 1
        return str(self.request.client_ip)


class Docs(dibble.Page):
    def get_html(self) -> PageResult:
        return f"docs {self.request.path}"


class Asset(dibble.Plugin):
    def onLogo(self) -> str:
        return "logo"


@pytest.fixture
def start() -> Iterator[Start]:
    """``start(config_dict, who=Who(), services=...)``: a configured server on a free port."""
    contexts: list[dibble.Context] = []

    def run(config: dict[str, Any], *services: tuple[str, Any], **settings: Any) -> Any:
        context = dibble.Context()
        server = dibble.HTTPServer(("127.0.0.1", 0), context, test_mode=True, access_log=False)
        for name, target in services:
            server.register_service(name, target)
        server.apply_config(parse_config(config, check_imports=False), explicit_only=True)
        server.configure(**settings)
        context.start_in_thread()
        contexts.append(context)
        return server

    yield run
    for context in contexts:
        context.join(5)
    gc.collect()


def port_of(server: dibble.HTTPServer) -> int:
    return server.addresses[0][1]


def get(
    server: dibble.HTTPServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(*server.addresses[0], timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        fields = {k.lower(): v for k, v in response.getheaders()}
        return response.status, fields, response.read().decode()
    finally:
        conn.close()


# --- access list -------------------------------------------------------------------


def refused_before_reading(server: dibble.HTTPServer) -> bool:
    """Connect, send a request, and see the connection end without an answer."""
    with socket.create_connection(server.addresses[0], timeout=5) as sock:
        try:
            sock.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(1024) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True


def test_allowed_networks_are_served(start: Start) -> None:
    who = Who()
    server = start({"access": {"allow": ["127.0.0.0/8", "::1"]}}, ("", who))
    assert get(server, "/who")[0] == 200


def test_other_networks_are_refused_at_accept(start: Start) -> None:
    who = Who()
    server = start({"access": {"allow": ["192.0.2.0/24", "2001:db8::/32"]}})
    server.register(who)
    assert refused_before_reading(server)
    assert refused_before_reading(server)
    assert who.calls == 0


def test_denied_networks_are_refused(start: Start) -> None:
    who = Who()
    server = start({"access": {"deny": ["127.0.0.1"]}})
    server.register(who)
    assert refused_before_reading(server)
    assert who.calls == 0


def test_the_most_specific_entry_decides(start: Start) -> None:
    server = start({"access": {"allow": ["127.0.0.1"], "deny": ["127.0.0.0/8"]}})
    server.register(Who())
    assert get(server, "/who")[2] == "127.0.0.1"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize(
    ("rules", "allowed"), [({"allow": ["::1"]}, True), ({"deny": ["::/0"]}, False)]
)
def test_ipv6_clients(start: Start, rules: dict[str, list[str]], allowed: bool) -> None:
    server = start({"access": rules}, host="::1")
    server.register(Who())
    if allowed:
        assert get(server, "/who")[2] == "::1"
    else:
        assert refused_before_reading(server)


# --- trusted proxies ------------------------------------------------------------------


def test_a_trusted_proxy_reports_the_client(start: Start) -> None:
    server = start({"proxies": {"trusted": ["127.0.0.1"]}})
    server.register(Who())
    status, _, text = get(server, "/who", {"X-Forwarded-For": "1.2.3.4, 198.51.100.7"})
    assert (status, text) == (200, "198.51.100.7")
    assert get(server, "/who")[2] == "127.0.0.1"  # no header: the proxy itself


def test_forged_forwarding_from_an_untrusted_peer_is_ignored(start: Start) -> None:
    server = start({"proxies": {"trusted": ["192.0.2.1"]}})
    server.register(Who())
    assert get(server, "/who", {"X-Forwarded-For": "198.51.100.7"})[2] == "127.0.0.1"
    assert get(server, "/who", {"Forwarded": "for=198.51.100.7"})[2] == "127.0.0.1"


def test_only_the_configured_header_is_honoured(start: Start) -> None:
    server = start({"proxies": {"trusted": ["127.0.0.1"], "header": "Forwarded"}})
    server.register(Who())
    headers = {"Forwarded": 'for="[2001:db8::7]:4711"', "X-Forwarded-For": "203.0.113.9"}
    assert get(server, "/who", headers)[2] == "2001:db8::7"
    assert get(server, "/who", {"X-Forwarded-For": "203.0.113.9"})[2] == "127.0.0.1"


def test_garbage_forwarding_falls_back_to_the_peer(start: Start) -> None:
    server = start({"proxies": {"trusted": ["127.0.0.1"]}})
    server.register(Who())
    assert get(server, "/who", {"X-Forwarded-For": "<script>"})[2] == "127.0.0.1"


def test_the_access_list_checks_the_forwarded_client(start: Start) -> None:
    who = Who()
    config = {
        "proxies": {"trusted": ["127.0.0.1"]},
        "access": {"allow": ["198.51.100.0/24"]},
    }
    server = start(config)
    server.register(who)
    # The proxy may connect although the access list does not name it ...
    assert get(server, "/who", {"X-Forwarded-For": "198.51.100.7"})[:1] == (200,)
    # ... but whom it forwards for is checked per request.
    status, _, text = get(server, "/who", {"X-Forwarded-For": "203.0.113.9"})
    assert status == 403
    assert "your address may not use this service" in text
    assert who.calls == 1


def test_the_access_log_shows_the_forwarded_client(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = start({"proxies": {"trusted": ["127.0.0.1"]}}, access_log=True)
    server.register(Who())
    with caplog.at_level(logging.INFO, "dibble.access"):
        get(server, "/who", {"X-Forwarded-For": "198.51.100.7"})
        deadline = time.monotonic() + 5
        while not any(r.name == "dibble.access" for r in caplog.records):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "dibble.access"]
    assert line.startswith("198.51.100.7 - - [")


# --- virtual hosts ----------------------------------------------------------------------


VHOSTS: dict[str, Any] = {
    "server": {"default_service": "home"},
    "vhosts": {
        "hosts": {
            "docs.localhost": {
                "default_service": "docs",
                "services": ["docs", "static"],
                "aliases": ["manual.localhost"],
            },
            "all.localhost": {},
        }
    },
}


def vhost_server(start: Start, unknown: str = "default") -> dibble.HTTPServer:
    config = {**VHOSTS, "vhosts": {**VHOSTS["vhosts"], "unknown_host": unknown}}
    return start(config, ("home", Who()), ("docs", Docs), ("static", Asset()))


def test_the_host_chooses_the_default_service(start: Start) -> None:
    server = vhost_server(start)
    assert get(server, "/", {"Host": "docs.localhost"})[2] == "docs /"
    assert get(server, "/", {"Host": "DOCS.Localhost:8080"})[2] == "docs /"
    assert get(server, "/", {"Host": "docs.localhost."})[2] == "docs /"
    assert get(server, "/", {"Host": "manual.localhost"})[2] == "docs /"
    assert get(server, "/", {"Host": "all.localhost"})[2] == "home 127.0.0.1"


def test_the_host_limits_the_services(start: Start) -> None:
    server = vhost_server(start)
    assert get(server, "/docs/", {"Host": "docs.localhost"})[2] == "docs /docs/"
    assert get(server, "/static/logo", {"Host": "docs.localhost"})[2] == "logo"
    status, _, text = get(server, "/home/who", {"Host": "docs.localhost"})
    assert status == 404
    assert "this host does not serve that page" in text
    assert get(server, "/home/who", {"Host": "all.localhost"})[0] == 200


def test_unknown_hosts_get_the_default(start: Start) -> None:
    server = vhost_server(start)
    assert get(server, "/", {"Host": "elsewhere.example"})[2] == "home 127.0.0.1"
    assert get(server, "/docs", {"Host": "elsewhere.example"})[2] == "docs /docs"
    assert get(server, "/", {"Host": "bad host!"})[2] == "home 127.0.0.1"


def test_unknown_hosts_can_be_refused(start: Start) -> None:
    server = vhost_server(start, unknown="404")
    status, _, text = get(server, "/", {"Host": "elsewhere.example"})
    assert status == 404
    assert "no site is served under this host name" in text
    assert get(server, "/", {"Host": "docs.localhost"})[2] == "docs /"


def test_http10_without_host_is_an_unknown_host(start: Start) -> None:
    server = vhost_server(start, unknown="404")
    with socket.create_connection(server.addresses[0], timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404 ")


def test_many_host_names_do_not_grow_memory(start: Start) -> None:
    server = vhost_server(start)
    conn = http.client.HTTPConnection(*server.addresses[0], timeout=5)
    try:
        for i in range(1200):
            conn.request("GET", "/", headers={"Host": f"h{i}.example"})
            assert conn.getresponse().read() == b"home 127.0.0.1"
    finally:
        conn.close()
    assert server._dispatcher is not None
    assert len(server._dispatcher._host_cache) <= 1024  # type: ignore[attr-defined]


# --- maintenance mode ------------------------------------------------------------------


def wait_for(server: dibble.HTTPServer, path: str, status: int) -> tuple[int, dict[str, str], str]:
    deadline = time.monotonic() + 3
    while True:
        answer = get(server, path)
        if answer[0] == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def maintenance_server(start: Start, root: Path) -> dibble.HTTPServer:
    config = {
        "paths": {"root": str(root)},
        "maintenance": {"retry_after": 120, "exempt": ["/static/"]},
    }
    return start(config, ("static", Asset()), ("docs", Docs))


def test_maintenance_file_starts_and_ends_maintenance(start: Start, tmp_path: Path) -> None:
    server = maintenance_server(start, tmp_path)
    server.register(Who())
    assert get(server, "/who")[0] == 200
    started = time.monotonic()
    (tmp_path / "maintenance").write_text("Upgrading <db>.\nBack at 14:00.\n")
    status, headers, text = wait_for(server, "/who", 503)
    assert status == 503
    assert time.monotonic() - started < 2.5  # "within a second", plus slack
    assert headers["retry-after"] == "120"
    assert headers["cache-control"] == "no-store"
    assert "Upgrading &lt;db&gt;.\nBack at 14:00." in text
    assert get(server, "/docs")[0] == 503
    assert get(server, "/static/logo")[2] == "logo"  # exempt
    (tmp_path / "maintenance").unlink()
    assert wait_for(server, "/who", 200)[0] == 200


def test_maintenance_redirect(start: Start, tmp_path: Path) -> None:
    (tmp_path / "maintenance").write_text("301 https://new.example.org/\n")
    server = maintenance_server(start, tmp_path)
    status, headers, text = get(server, "/docs")
    assert status == 301
    assert headers["location"] == "https://new.example.org/"
    assert "retry-after" not in headers
    assert "https://new.example.org/" in text


def test_malformed_redirect_is_a_plain_503_with_a_warning(
    start: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "maintenance").write_text("301 somewhere else\n")
    with caplog.at_level(logging.WARNING, "dibble.error"):
        server = maintenance_server(start, tmp_path)
        status, headers, text = get(server, "/docs")
    assert status == 503
    assert "location" not in headers
    assert "The service is down for maintenance." in text
    assert "somewhere" not in text
    assert any("malformed redirect line" in r.getMessage() for r in caplog.records)


def test_unreadable_maintenance_file_is_a_plain_503(start: Start, tmp_path: Path) -> None:
    (tmp_path / "maintenance").mkdir()  # exists, cannot be read as a file
    server = maintenance_server(start, tmp_path)
    status, _, text = get(server, "/docs")
    assert status == 503
    assert "The service is down for maintenance." in text


def test_empty_maintenance_file_is_no_maintenance(start: Start, tmp_path: Path) -> None:
    (tmp_path / "maintenance").write_text("")
    server = maintenance_server(start, tmp_path)
    assert get(server, "/docs")[0] == 200


def test_maintenance_answers_head_and_posts(start: Start, tmp_path: Path) -> None:
    (tmp_path / "maintenance").write_text("down")
    server = maintenance_server(start, tmp_path)
    conn = http.client.HTTPConnection(*server.addresses[0], timeout=5)
    try:
        conn.request("HEAD", "/docs")
        response = conn.getresponse()
        assert (response.status, response.read()) == (503, b"")
        conn.request("POST", "/docs", body=b"x" * 100_000)
        response = conn.getresponse()
        assert response.status == 503
        response.read()
        conn.request("GET", "/docs")  # the connection is still usable
        assert conn.getresponse().status == 503
    finally:
        conn.close()


def test_maintenance_is_off_without_a_root(start: Start, tmp_path: Path) -> None:
    server = start({}, ("docs", Docs))
    assert server._dispatcher is not None
    assert type(server._dispatcher).__name__ == "SiteDispatcher"  # nothing gated
    assert get(server, "/docs")[0] == 200
