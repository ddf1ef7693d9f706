"""The login and logout pages, CSRF, failed-login limits and protected methlets and pages."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dibble
import dibble.config
from dibble.auth import (
    Auth,
    LoginPages,
    RateLimiter,
    current_user,
    login_required,
    require,
    safe_next,
)
from dibble.sessions import MemoryStore, SessionPool
from dibble.testing import TestClient, TestResponse
from dibble.users import WRITE, ScryptParams, UserStore

HTML = {"Accept": "text/html,application/xhtml+xml"}


class Notes(dibble.Plugin):
    def onHome(self) -> str:
        user = current_user()
        return f"home of {user.name if user else 'nobody'}"

    @login_required
    def onNotes(self) -> str:
        user = current_user()
        assert user is not None
        self.session["visits"] = self.session.get("visits", 0) + 1
        return f"notes of {user.name}"

    @require(privilege=WRITE, project="lofar")
    def onEdit(self) -> str:
        return "editing lofar"

    @require(project=lambda request: request.get("project"))
    def onProject(self, project: str = "") -> str:
        return f"in {project}"

    @require(admin=True)
    def onAdmin(self) -> str:
        return "admin"

    @login_required
    async def onLater(self) -> str:
        user = current_user()
        return f"async {user.name if user else '?'}"

    def onRemember(self) -> str:
        self.session["before"] = "login"
        return "remembered"

    def onRecall(self) -> str:
        return str(self.session.get("before"))


@login_required
class Secret(dibble.Page):
    def get_html(self) -> str:
        user = current_user()
        return f"secret page for {user.name if user else '?'}"


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "dibble.sqlite3", params=ScryptParams(ln=4))
    store.add("alice", "alice pw", projects={"lofar": WRITE})
    store.add("bob", "bob pw", projects={"euclid": 1})
    store.add("root", "root pw", admin=True)
    yield store
    store.close()


@pytest.fixture
def client(users: UserStore) -> Iterator[TestClient]:
    pool = SessionPool(MemoryStore(), cleanup_interval=None)
    auth = Auth(users, rate_limit=RateLimiter(3, 60))
    server = dibble.HTTPServer(
        ("127.0.0.1", 0),
        dibble.Context(),
        sessions=pool,
        auth=auth,
        test_mode=True,
        access_log=False,
    )
    server.register(Notes(), LoginPages())
    server.register_service("secret", Secret)
    with TestClient(server, cookies=True) as made:
        yield made


def token_of(page: TestResponse) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return html.unescape(match[1])


def log_in(
    client: TestClient, user: str, password: str, next_url: str = "", token: str | None = None
) -> TestResponse:
    form = client.get("/login")
    data = {
        "user": user,
        "password": password,
        "next": next_url,
        "csrf_token": token_of(form) if token is None else token,
    }
    return client.post("/login", data=data)


def text(response: TestResponse) -> str:
    return html.unescape(response.text)


def test_the_login_form(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'name="password" type="password"' in page.text
    (cookie,) = [v for k, v in page.header_list if k == "set-cookie" and "csrf" in v]
    assert cookie.startswith("dibble_csrf=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert re.fullmatch(r"\d+\.[A-Za-z0-9_-]{22}", token_of(page))


def test_a_login_rotates_the_session_and_goes_next(client: TestClient) -> None:
    client.get("/remember")
    assert client.cookies is not None
    before = client.cookies["dibble_session"]
    response = log_in(client, "alice", "alice pw", next_url="/notes?x=1")
    assert response.status == 303
    assert response.headers["location"] == "/notes?x=1"
    after = client.cookies["dibble_session"]
    assert after != before  # no session fixation
    assert client.get("/recall").text == "login"  # the data moved with it
    assert client.get("/notes").text == "notes of alice"
    # The id from before the login is worth nothing now.
    stale = client.get("/notes", headers={"Cookie": f"dibble_session={before}"})
    assert stale.status == 401


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", ""],
)
def test_no_open_redirects(client: TestClient, target: str) -> None:
    response = log_in(client, "alice", "alice pw", next_url=target)
    assert response.headers["location"] == "/"
    assert safe_next(target, "/x") == "/x"


def test_a_login_without_its_csrf_token_is_403(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"user": "alice", "password": "alice pw"})
    assert response.status == 403
    assert "without its CSRF token" in text(response)
    assert client.get("/notes").status == 401


@pytest.mark.parametrize(
    "token",
    [
        "1700000000.AAAAAAAAAAAAAAAAAAAAAA",  # well formed, forged
        "garbage",
        f"{int(time.time())}.",  # truncated
    ],
)
def test_a_forged_csrf_token_is_403(client: TestClient, token: str) -> None:
    response = log_in(client, "alice", "alice pw", token=token)
    assert response.status == 403
    assert "CSRF token" in text(response)


def test_a_csrf_token_from_another_browser_is_403(users: UserStore, client: TestClient) -> None:
    theirs = token_of(client.get("/login"))
    assert client.cookies is not None
    client.cookies["dibble_csrf"] = "B" * 22  # this browser's own cookie
    response = client.post(
        "/login", data={"user": "alice", "password": "alice pw", "csrf_token": theirs}
    )
    assert response.status == 403
    assert "does not match this browser" in text(response)


def test_an_old_csrf_token_is_403(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = token_of(client.get("/login"))
    later = time.time() + 13 * 3600
    monkeypatch.setattr("dibble.auth._csrf.time.time", lambda: later)
    response = client.post(
        "/login", data={"user": "alice", "password": "alice pw", "csrf_token": token}
    )
    assert response.status == 403
    assert "expired" in text(response)


def test_a_wrong_password_shows_the_form_again(client: TestClient) -> None:
    response = log_in(client, "alice", "wrong")
    assert response.status == 401
    assert "The user name or password is wrong." in response.text
    assert response.headers["www-authenticate"].startswith("Cookie ")
    assert 'value="alice"' in response.text
    assert log_in(client, "nobody", "x").status == 401
    assert log_in(client, "alice", "").status == 400


def test_failed_logins_are_limited_per_address(client: TestClient) -> None:
    for _ in range(3):
        assert log_in(client, "alice", "wrong").status == 401
    refused = log_in(client, "alice", "alice pw")
    assert refused.status == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Too many failed logins" in text(refused)


def test_anonymous_browsers_are_sent_to_the_login_page(client: TestClient) -> None:
    response = client.get("/notes?a=1", headers=HTML)
    assert response.status == 303
    assert response.headers["location"] == "/login?next=%2Fnotes%3Fa%3D1"
    form = client.get(response.headers["location"])
    assert "Please log in." in form.text
    assert 'name="next" value="/notes?a=1"' in form.text


def test_anonymous_api_requests_get_401(client: TestClient) -> None:
    response = client.get("/notes")
    assert response.status == 401
    assert "Please log in." in response.text
    assert response.headers["www-authenticate"] == 'Cookie realm="dibble", form-action="/login"'
    assert client.post("/notes", headers=HTML).status == 401


@pytest.mark.parametrize(
    "cookie",
    ["dibble_session=" + "A" * 32, "dibble_session=short", "dibble_session=" + "A" * 31 + "!"],
)
def test_a_forged_or_truncated_session_is_refused_with_a_reason(
    client: TestClient, cookie: str
) -> None:
    response = client.get("/notes", headers={"Cookie": cookie})
    assert response.status == 401
    assert "Your session has expired or is not valid" in text(response)


def test_privileges(client: TestClient) -> None:
    log_in(client, "alice", "alice pw")
    assert client.get("/edit").text == "editing lofar"
    assert client.get("/project?project=lofar").text == "in lofar"
    denied = client.get("/project?project=euclid")
    assert denied.status == 403
    assert "privilege 1 in project 'euclid'" in text(denied)
    admin = client.get("/admin")
    assert admin.status == 403
    assert "administrators" in text(admin)


def test_another_users_privileges(client: TestClient) -> None:
    log_in(client, "bob", "bob pw")
    denied = client.get("/edit")
    assert denied.status == 403
    assert "needs privilege 2 in project 'lofar'; bob lacks it" in text(denied)
    assert client.get("/project?project=euclid").status == 200


def test_admins(client: TestClient) -> None:
    log_in(client, "root", "root pw")
    assert client.get("/admin").text == "admin"
    assert client.get("/edit").text == "editing lofar"


def test_a_privilege_change_rotates_the_session(client: TestClient, users: UserStore) -> None:
    log_in(client, "bob", "bob pw")
    assert client.cookies is not None
    before = client.cookies["dibble_session"]
    assert client.get("/edit").status == 403
    users.grant("bob", "lofar", WRITE)
    assert client.get("/edit").text == "editing lofar"
    assert client.cookies["dibble_session"] != before
    users.revoke("bob", "lofar")
    assert client.get("/edit").status == 403


def test_a_removed_user_is_logged_out(client: TestClient, users: UserStore) -> None:
    log_in(client, "bob", "bob pw")
    assert client.get("/notes").status == 200
    users.remove("bob")
    response = client.get("/notes")
    assert response.status == 401
    assert "no longer exists" in response.text


def test_logout(client: TestClient) -> None:
    log_in(client, "alice", "alice pw")
    assert client.get("/notes").status == 200
    assert client.cookies is not None
    old = client.cookies["dibble_session"]
    page = client.get("/logout")
    assert "You are logged in as <strong>alice</strong>" in page.text
    assert client.post("/logout", data={}).status == 403  # no CSRF token
    response = client.post("/logout", data={"csrf_token": token_of(page)})
    assert response.status == 303
    assert response.headers["location"] == "/login"
    assert client.cookies is not None
    assert "dibble_session" not in client.cookies
    assert client.get("/notes").status == 401
    assert "You are not logged in" in client.get("/logout").text
    # The session id from before the logout, replayed, is refused.
    replayed = client.get("/notes", headers={"Cookie": f"dibble_session={old}"})
    assert replayed.status == 401
    assert "Your session has expired or is not valid" in text(replayed)


def test_a_protected_page_class_and_an_async_methlet(client: TestClient) -> None:
    assert client.get("/secret").status == 401
    assert client.get("/later").status == 401
    log_in(client, "alice", "alice pw")
    assert client.get("/secret").text == "secret page for alice"
    assert client.get("/later").text == "async alice"


def test_the_login_page_shows_who_is_logged_in(client: TestClient) -> None:
    log_in(client, "alice", "alice pw")
    assert "You are logged in as <strong>alice</strong>" in client.get("/login").text
    assert client.get("/").text == "home of alice"


def test_the_default_auth_uses_the_configured_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    users = UserStore(data / "dibble.sqlite3", params=ScryptParams(ln=4))
    users.add("dora", "dora pw")
    users.close()
    config = dibble.config.parse_config(
        {"server": {"name": "site"}, "paths": {"data_dir": str(data)}}
    )
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    server.register(Notes(), LoginPages())
    with TestClient(server, cookies=True) as client:
        form = client.get("/login")
        assert client.cookies is not None and "site_csrf" in client.cookies
        response = client.post(
            "/login", data={"user": "dora", "password": "dora pw", "csrf_token": token_of(form)}
        )
        assert response.status == 303
        assert "site_session" in client.cookies
        assert client.get("/notes").text == "notes of dora"
        assert server.auth is not None and server.auth.made_by_default
    assert server.auth is None  # closed with the server
