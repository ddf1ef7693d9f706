"""Who gets into the admin area: administrators and allowed networks; 401 or 403 for the rest."""

from __future__ import annotations

import html
from collections.abc import Callable

import pytest

import dibble
from dibble.admin import AdminAccess, mount_admin
from dibble.sessions import MemoryStore, SessionPool
from dibble.testing import TestClient, TestResponse
from dibble.users import User

HTML = {"Accept": "text/html,application/xhtml+xml"}
PAGES = [
    "/admin",
    "/admin/config",
    "/admin/statistics",
    "/admin/statistics.json",
    "/admin/sessions",
    "/admin/database",
    "/admin/projects",
    "/admin/housekeeping",
    "/admin/no-such-page",
]

Login = Callable[[TestClient, str, str], TestResponse]


@pytest.mark.parametrize("path", PAGES)
def test_a_browser_that_is_not_logged_in_is_sent_to_the_login_form(
    client: TestClient, path: str
) -> None:
    response = client.get(path + "?x=1", headers=HTML)
    assert response.status == 303
    assert response.headers["location"] == f"/admin/login?next={path.replace('/', '%2F')}%3Fx%3D1"


@pytest.mark.parametrize("path", PAGES)
def test_other_clients_that_are_not_logged_in_get_401(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status == 401
    assert response.headers["www-authenticate"] == (
        'Cookie realm="site", form-action="/admin/login"'
    )
    assert "Please log in." in response.text


def test_the_login_form_comes_back_to_the_page(
    client: TestClient, login: Login, csrf: Callable[[TestResponse], str]
) -> None:
    form = client.get("/admin/login?next=/admin/sessions")
    assert form.status == 200
    assert 'name="password"' in form.text
    response = client.post(
        "/admin/login",
        data={
            "user": "root",
            "password": "root pw",
            "next": "/admin/sessions",
            "csrf_token": csrf(form),
        },
    )
    assert response.status == 303
    assert response.headers["location"] == "/admin/sessions"
    page = client.get("/admin/sessions")
    assert page.status == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Log out root" in page.text


def test_a_wrong_password_is_not_let_in(client: TestClient, csrf: Callable[..., str]) -> None:
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"user": "root", "password": "wrong", "csrf_token": csrf(form)},
    )
    assert response.status == 401
    assert client.get("/admin").status == 401


@pytest.mark.parametrize("path", PAGES)
def test_a_user_who_is_not_an_administrator_gets_403(
    client: TestClient, login: Login, path: str
) -> None:
    login(client, "alice", "alice pw")
    response = client.get(path, headers=HTML)
    assert response.status == 403
    assert "The admin area is for administrators; alice is not one." in html.unescape(
        response.text
    )


def test_a_privilege_in_the_admin_project_lets_in(
    make_client: Callable[..., TestClient], login: Login
) -> None:
    client = make_client(admin={"project": "operations"})
    login(client, "ops", "ops pw")
    assert client.get("/admin").status == 200
    other = make_client()  # without the project, ops is nobody special
    login(other, "ops", "ops pw")
    assert other.get("/admin").status == 403
    bob = make_client(admin={"project": "euclid"})
    login(bob, "bob", "bob pw")  # privilege 2 there: less than ADMIN
    assert bob.get("/admin").status == 403


def test_an_allowed_network_needs_no_login(make_client: Callable[..., TestClient]) -> None:
    client = make_client(admin={"networks": ["127.0.0.0/8"]})  # the test client's address
    assert client.get("/admin").status == 200
    assert client.get("/admin/projects").status == 200
    elsewhere = make_client(admin={"networks": ["10.0.0.0/8", "::1"]})
    assert elsewhere.get("/admin").status == 401


def test_a_required_network_refuses_administrators_elsewhere(
    make_client: Callable[..., TestClient], login: Login
) -> None:
    client = make_client(admin={"networks": ["10.0.0.0/8"], "network_required": True})
    login(client, "root", "root pw")
    response = client.get("/admin")
    assert response.status == 403
    assert "cannot be used from your address (127.0.0.1)" in response.text
    inside = make_client(admin={"networks": ["127.0.0.1"], "network_required": True})
    assert inside.get("/admin").status == 401  # the network alone is not enough
    login(inside, "root", "root pw")
    assert inside.get("/admin").status == 200


def test_an_unknown_admin_page_is_404_for_an_administrator(admin: TestClient) -> None:
    assert admin.get("/admin/no-such-page").status == 404


def test_admin_users_and_the_project_rule() -> None:
    rules = AdminAccess(project="ops")
    assert rules.is_admin(User("root", admin=True))
    assert rules.is_admin(User("o", projects={"ops": 3}))
    assert rules.is_admin(User("o", projects={"ops": 9}))
    assert not rules.is_admin(User("o", projects={"ops": 2}))
    assert not rules.is_admin(User("o", projects={"other": 9}))
    assert not AdminAccess().is_admin(User("o", projects={"ops": 9}))


def test_the_area_mounted_in_code_with_its_own_rules() -> None:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0),
        dibble.Context(),
        sessions=SessionPool(MemoryStore(), cleanup_interval=None),
        test_mode=True,
        access_log=False,
    )
    area = mount_admin(server, "/ops/", AdminAccess(networks=("127.0.0.1",)))
    assert area.prefix == "/ops"
    with TestClient(server) as client:
        page = client.get("/ops")
        assert page.status == 200
        assert 'href="/ops/statistics"' in page.text
        assert client.get("/admin").status == 404
