"""HTTP authentication with real clients over real sockets: curl and urllib.request.

Python's ``urllib.request`` digest handler (3.11) knows MD5 and SHA-1 only,
and answers the first challenge it is sent; a server that must serve it puts
MD5 first (``algorithms=("MD5", "SHA-256")``), as the Dibbler layer does.
curl answers the first challenge too, and does SHA-256.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable

import pytest

import dibble
from dibble.auth import HTTPAuth
from dibble.compat import dibbler as Dibbler

Serve = Callable[..., dibble.HTTPServer]

PASSWORDS = {"alice": "wonder land", "zoë": "pässwörd"}


class Home(dibble.Plugin):
    def onHome(self) -> str:
        return f"hello {self.request.remote_user}"


def url_of(server: dibble.HTTPServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.addresses[0][1]}{path}"


def curl_get(curl: str, url: str, *options: str) -> tuple[int, str]:
    result = subprocess.run(
        [curl, "-s", "-w", "\n%{http_code}", *options, url],
        capture_output=True,
        timeout=20,
        check=False,
    )
    body, _, status = result.stdout.decode("utf-8").rpartition("\n")
    return int(status), body


def serve_auth(live_server: Serve, auth: HTTPAuth) -> dibble.HTTPServer:
    return live_server(Home(), http_auth=auth)


@pytest.mark.parametrize("scheme", ["digest", "basic"])
def test_curl(live_server: Serve, curl: str, scheme: str) -> None:
    auth = HTTPAuth(scheme, realm="curl realm", get_password_for_user=PASSWORDS.get)  # type: ignore[arg-type]
    server = serve_auth(live_server, auth)
    url = url_of(server)
    assert curl_get(curl, url, f"--{scheme}", "-u", "alice:wonder land") == (200, "hello alice")
    assert curl_get(curl, url, f"--{scheme}", "-u", "zoë:pässwörd") == (200, "hello zoë")
    status, body = curl_get(curl, url, f"--{scheme}", "-u", "alice:wrong")
    assert status == 401
    assert "You must log in." in body
    assert curl_get(curl, url)[0] == 401


def test_curl_digest_uses_sha256(live_server: Serve, curl: str) -> None:
    auth = HTTPAuth("digest", get_password_for_user=PASSWORDS.get)
    server = serve_auth(live_server, auth)
    result = subprocess.run(
        [curl, "-s", "-v", "--digest", "-u", "alice:wonder land", url_of(server)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.stdout == b"hello alice"
    assert b"algorithm=SHA-256" in result.stderr


def test_curl_anyauth_with_both_schemes(live_server: Serve, curl: str) -> None:
    auth = HTTPAuth(("digest", "basic"), get_password_for_user=PASSWORDS.get)
    server = serve_auth(live_server, auth)
    url = url_of(server)
    assert curl_get(curl, url, "--anyauth", "-u", "alice:wonder land") == (200, "hello alice")
    assert curl_get(curl, url, "--basic", "-u", "alice:wonder land") == (200, "hello alice")


def urllib_get(url: str, handler: type[urllib.request.BaseHandler], password: str) -> str:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, "alice", password)
    opener = urllib.request.build_opener(handler(manager))  # type: ignore[call-arg]
    with opener.open(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def test_urllib_digest_handler(live_server: Serve) -> None:
    auth = HTTPAuth("digest", get_password_for_user=PASSWORDS.get, algorithms=("MD5", "SHA-256"))
    server = serve_auth(live_server, auth)
    url = url_of(server, "/?x=1")
    assert urllib_get(url, urllib.request.HTTPDigestAuthHandler, "wonder land") == "hello alice"
    # (A wrong password is not tried here: urllib's digest handler then leaves
    # its responses' sockets open, which this suite counts as an error.)


def test_urllib_basic_handler(live_server: Serve) -> None:
    auth = HTTPAuth("basic", get_password_for_user=PASSWORDS.get)
    server = serve_auth(live_server, auth)
    url = url_of(server)
    assert urllib_get(url, urllib.request.HTTPBasicAuthHandler, "wonder land") == "hello alice"


class SpamBayesServer(Dibbler.HTTPServer):
    """A Dibbler program's server, as SpamBayes wrote it (its UserInterfaceServer)."""

    mode = Dibbler.HTTPServer.DIGEST_AUTHENTICATION

    def requestAuthenticationMode(self) -> str:
        return self.mode

    def getRealm(self) -> str:
        return "SpamBayes Web Interface"

    def isValidUser(self, name: str, password: str) -> bool:
        return name == "alice" and password == "wonder land"

    def getPasswordForUser(self, name: str) -> str:
        return "wonder land"

    def getCancelMessage(self) -> str:
        return "You must login to use SpamBayes."


class Ui(Dibbler.HTTPPlugin):
    def onHome(self) -> None:
        self.writeOKHeaders("text/plain")
        self.write(f"ui for {self.request.remote_user}")


def test_dibbler_authentication_hooks(curl: str) -> None:
    context = Dibbler.Context()
    server = SpamBayesServer(("127.0.0.1", 0), context, access_log=False)
    server.register(Ui())
    context.start_in_thread()
    try:
        url = url_of(server)
        status, body = curl_get(curl, url)
        assert status == 401
        assert "You must login to use SpamBayes." in body
        assert curl_get(curl, url, "--digest", "-u", "alice:wonder land") == (
            200,
            "ui for alice",
        )
        # Dibbler's clients knew MD5 only; urllib's digest handler still does.
        assert urllib_get(url, urllib.request.HTTPDigestAuthHandler, "wonder land") == (
            "ui for alice"
        )
        # The mode is asked on every request, as Dibbler did.
        SpamBayesServer.mode = Dibbler.HTTPServer.BASIC_AUTHENTICATION
        assert curl_get(curl, url, "--basic", "-u", "alice:wonder land") == (
            200,
            "ui for alice",
        )
        assert curl_get(curl, url, "--basic", "-u", "alice:wrong")[0] == 401
        SpamBayesServer.mode = Dibbler.HTTPServer.NO_AUTHENTICATION
        assert curl_get(curl, url) == (200, "ui for None")
    finally:
        SpamBayesServer.mode = Dibbler.HTTPServer.DIGEST_AUTHENTICATION
        context.join(5)


def test_a_dibbler_server_without_authentication_has_no_guard() -> None:
    server = Dibbler.HTTPServer(("127.0.0.1", 0), Dibbler.Context())
    assert server.http_auth is None
