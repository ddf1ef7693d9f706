"""Single sign-on: tokens (forged, expired, truncated, rotated keys) and two servers, one login."""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dibble
from dibble.auth import SSO, Auth, LoginPages, SSOError, current_user, login_required
from dibble.auth._signing import b64decode, b64encode
from dibble.sessions import MemoryStore, SessionPool
from dibble.users import ScryptParams, UserStore

KEY = "shared single sign-on key, 32+ chars"
OLD_KEY = "the previous key, also 32 characters"
NOW = 1_800_000_000.0


def test_a_token_round_trips() -> None:
    sso = SSO(KEY, lifetime=600)
    token = sso.issue("alice", NOW)
    claims = sso.verify(token, NOW + 1)
    assert (claims.user, claims.issued, claims.expires) == ("alice", NOW, NOW + 600)
    assert sso.issue("alice", NOW) != token  # a nonce in each


def test_keys_rotate() -> None:
    old = SSO(OLD_KEY)
    rotated = SSO([KEY, OLD_KEY])
    new_only = SSO(KEY)
    token = old.issue("alice", NOW)
    assert rotated.verify(token, NOW).user == "alice"
    with pytest.raises(SSOError, match="not signed with our key"):
        new_only.verify(token, NOW)
    assert new_only.verify(rotated.issue("bob", NOW), NOW).user == "bob"


def forge_payload(token: str, **change: object) -> str:
    _, body, mac = token.split(".")
    claims = json.loads(b64decode(body))
    claims.update(change)
    return f"v1.{b64encode(json.dumps(claims).encode())}.{mac}"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: forge_payload(t, u="root"), "not signed with our key"),
        (lambda t: forge_payload(t, exp=NOW + 10**6), "not signed with our key"),
        (lambda t: t[:-5], "malformed"),  # truncated
        (lambda t: t.replace("v1.", "v2.", 1), "malformed"),
        (lambda t: "", "malformed"),
        (lambda t: "v1.." + t.split(".")[2], "malformed"),
        (lambda t: t + "x" * 3000, "too long"),
        (lambda t: SSO("another key that is 32 chars long").issue("alice", NOW), "not signed"),
    ],
)
def test_bad_tokens_are_refused_saying_why(mutate: Callable[[str], str], reason: str) -> None:
    sso = SSO(KEY)
    with pytest.raises(SSOError, match=reason):
        sso.verify(mutate(sso.issue("alice", NOW)), NOW)


def test_expired_and_future_tokens() -> None:
    sso = SSO(KEY, lifetime=60)
    with pytest.raises(SSOError, match="expired"):
        sso.verify(sso.issue("alice", NOW), NOW + 61)
    with pytest.raises(SSOError, match="not valid yet"):
        sso.verify(sso.issue("alice", NOW + 3600), NOW)


def test_a_signed_token_with_a_bad_payload_is_malformed() -> None:
    sso = SSO(KEY)
    body = b64encode(b'{"u": 5, "iat": 1, "exp": 2}')
    mac = b64encode(sso._signer.sign("sso", f"v1.{body}".encode()))
    with pytest.raises(SSOError, match="malformed"):
        sso.verify(f"v1.{body}.{mac}", NOW)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        SSO("short")


# --- two servers, one login ------------------------------------------------------------


class Site(dibble.Plugin):
    def __init__(self, name: str) -> None:
        self.name = name

    @login_required
    def onHome(self) -> str:
        user = current_user()
        return f"{self.name}: hello {user.name if user else '?'}"


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[tuple[int, int]]:
    users = UserStore(tmp_path / "dibble.sqlite3", params=ScryptParams(ln=4))
    users.add("alice", "alice pw")
    contexts = []
    ports = []
    for name in ("a", "b"):
        context = dibble.Context()
        sso = SSO([KEY, OLD_KEY], domain="dibble.test")
        server = dibble.HTTPServer(
            ("127.0.0.1", 0),
            context,
            sessions=SessionPool(MemoryStore(), cleanup_interval=None),
            auth=Auth(users, sso=sso),
            access_log=False,
        )
        server.register(Site(name), LoginPages())
        context.start_in_thread()
        contexts.append(context)
        ports.append(server.addresses[0][1])
    yield ports[0], ports[1]
    for context in contexts:
        context.join(5)
    users.close()


class Browser:
    """curl with one cookie jar, resolving a.dibble.test and b.dibble.test to 127.0.0.1."""

    def __init__(self, curl: str, jar: Path, ports: tuple[int, int]) -> None:
        self.curl = curl
        self.jar = jar
        self.ports = ports

    def __call__(self, site: str, path: str, *options: str) -> tuple[int, str]:
        port = self.ports[0 if site == "a" else 1]
        host = f"{site}.dibble.test"
        result = subprocess.run(
            [
                self.curl,
                "-s",
                "--resolve",
                f"{host}:{port}:127.0.0.1",
                "-b",
                str(self.jar),
                "-c",
                str(self.jar),
                "-w",
                "\n%{http_code}",
                *options,
                f"http://{host}:{port}{path}",
            ],
            capture_output=True,
            timeout=20,
            check=False,
        )
        body, _, status = result.stdout.decode("utf-8").rpartition("\n")
        return int(status), body

    def log_in(self, site: str, user: str, password: str) -> int:
        _, form = self("a" if site == "a" else "b", "/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert match is not None
        status, _ = self(
            site,
            "/login",
            "--data-urlencode",
            f"user={user}",
            "--data-urlencode",
            f"password={password}",
            "--data-urlencode",
            f"csrf_token={html.unescape(match[1])}",
        )
        return status

    def log_out(self, site: str) -> int:
        _, form = self(site, "/logout")
        match = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert match is not None
        status, _ = self(
            site, "/logout", "--data-urlencode", f"csrf_token={html.unescape(match[1])}"
        )
        return status

    def cookie(self, name: str) -> list[str]:
        lines = self.jar.read_text().splitlines()
        return [line for line in lines if line.split("\t")[5:6] == [name]]


def test_one_login_serves_both_sites(
    curl: str, tmp_path: Path, two_sites: tuple[int, int]
) -> None:
    browser = Browser(curl, tmp_path / "jar.txt", two_sites)
    assert browser("a", "/")[0] == 401
    assert browser("b", "/")[0] == 401
    assert browser.log_in("a", "alice", "alice pw") == 303
    # The token sits on the parent domain; each site has its own session.
    (sso_line,) = browser.cookie("dibble_sso")
    domain = sso_line.split("\t")[0]
    assert domain.startswith("#HttpOnly_")  # curl's mark for an HttpOnly cookie
    assert domain.removeprefix("#HttpOnly_") in (".dibble.test", "dibble.test")
    assert browser("a", "/") == (200, "a: hello alice")
    assert browser("b", "/") == (200, "b: hello alice")  # never logged in at b
    assert len(browser.cookie("dibble_session")) == 2
    token = sso_line.split("\t")[6]
    # Logging out at a ends the login at b too.
    assert browser.log_out("a") == 303
    status, body = browser("b", "/")
    assert status == 401
    assert "logged out" in html.unescape(body)
    # A copy of the token taken before the logout is refused everywhere.
    thief = Browser(curl, tmp_path / "thief.txt", two_sites)
    status, body = thief("b", "/", "-H", f"Cookie: dibble_sso={token}")
    assert status == 401
    assert "ended with a logout" in html.unescape(body)
    # A new login issues a new token that is honoured again.
    assert browser.log_in("a", "alice", "alice pw") == 303
    assert browser("b", "/") == (200, "b: hello alice")


def test_a_forged_sso_cookie_is_refused(
    curl: str, tmp_path: Path, two_sites: tuple[int, int]
) -> None:
    browser = Browser(curl, tmp_path / "jar.txt", two_sites)
    forged = forge_payload(SSO(KEY).issue("bob", NOW), u="alice")
    status, body = browser("b", "/", "-H", f"Cookie: dibble_sso={forged}")
    assert status == 401
    assert "not signed with our key" in html.unescape(body)
    expired = SSO(KEY, lifetime=1).issue("alice", time.time() - 10)
    status, body = browser("b", "/", "-H", f"Cookie: dibble_sso={expired}")
    assert status == 401
    assert "has expired" in html.unescape(body)
