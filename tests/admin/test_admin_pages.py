"""The admin pages: config and toggles, statistics, sessions, database, projects, housekeeping."""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.admin import toggle_states
from dibble.config import ConfigError, parse_config
from dibble.db import Database, set_sql_logging, sql_logging
from dibble.sessions import Changes, pool_of
from dibble.stats._requestlog import COLUMNS, prepare
from dibble.testing import TestClient, TestResponse

HTML = {"Accept": "text/html,application/xhtml+xml"}
Csrf = Callable[[TestResponse], str]
Login = Callable[[TestClient, str, str], TestResponse]


def text(response: TestResponse) -> str:
    return html.unescape(response.text)


def charts(page: TestResponse) -> list[ET.Element]:
    found = re.findall(r"<svg .*?</svg>", page.text, flags=re.S)
    return [ET.fromstring(svg) for svg in found]  # noqa: S314 - our own markup


def bar_count(chart: ET.Element) -> int:
    return sum(
        1 for e in chart.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "bar"
    )


@pytest.fixture
def toggles_restored() -> Iterator[None]:
    """Put the loggers and the SQL log switch the toggles change back as they were."""
    loggers = [logging.getLogger(n) for n in ("dibble", "dibble.sql", "dibble.performance")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    sql = sql_logging()
    yield
    set_sql_logging(sql)
    for logger, level, handlers, propagate in saved:
        logger.setLevel(level)
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = propagate


# --- index and config ----------------------------------------------------------------------


def test_the_index_links_every_page(admin: TestClient) -> None:
    page = admin.get("/admin")
    assert page.status == 200
    for name in ("config", "statistics", "sessions", "database", "projects", "housekeeping"):
        assert f'href="/admin/{name}"' in page.text
    assert "<script" not in page.text
    assert "site (dibble" in page.text


def test_the_config_page_shows_every_setting_with_secrets_hidden(
    make_client: Callable[..., TestClient], login: Login
) -> None:
    client = make_client(
        auth={"sso_keys": ["k" * 40]},
        housekeeping={"lock": "redis://user:hunter2@127.0.0.1:1/0"},
    )
    login(client, "root", "root pw")
    page = text(client.get("/admin/config"))
    assert "[housekeeping]" in page and "[admin]" in page and "[server]" in page
    assert 'secret_key = "<hidden: 40 characters>"' in page
    assert 'sso_keys = ["<hidden: 40 characters>"]' in page
    assert "s" * 40 not in page and "k" * 40 not in page
    assert "hunter2" not in page
    assert 'lock = "redis://user:***@127.0.0.1:1/0"' in page


def toggle(client: TestClient, csrf: Csrf, name: str, on: bool) -> TestResponse:
    form = client.get("/admin/config")
    return client.post(
        "/admin/toggle",
        data={"name": name, "on": "1" if on else "0", "csrf_token": csrf(form)},
    )


@pytest.mark.usefixtures("toggles_restored")
@pytest.mark.parametrize("name", ["verbose", "sql_log", "performance_log"])
def test_a_toggle_takes_effect_at_once(admin: TestClient, csrf: Csrf, name: str) -> None:
    server = admin.server
    response = toggle(admin, csrf, name, True)
    assert response.status == 303
    assert response.headers["location"] == f"/admin/config?changed={name}"
    assert toggle_states(server)[name] is True
    page = text(admin.get(response.headers["location"]))
    assert "turned on." in page
    toggle(admin, csrf, name, False)
    assert toggle_states(server)[name] is False


@pytest.mark.usefixtures("toggles_restored")
def test_the_verbose_toggle_is_the_error_logs_level(admin: TestClient, csrf: Csrf) -> None:
    logging.getLogger("dibble").setLevel(logging.INFO)
    toggle(admin, csrf, "verbose", True)
    assert logging.getLogger("dibble").level == logging.DEBUG
    toggle(admin, csrf, "verbose", False)
    assert logging.getLogger("dibble").level == logging.INFO  # [logging] level


@pytest.mark.usefixtures("toggles_restored")
def test_a_toggle_without_its_csrf_token_is_403(admin: TestClient) -> None:
    before = toggle_states(admin.server)
    response = admin.post("/admin/toggle", data={"name": "sql_log", "on": "1"})
    assert response.status == 403
    assert "without its CSRF token" in text(response)
    forged = admin.post(
        "/admin/toggle",
        data={"name": "sql_log", "on": "1", "csrf_token": "1700000000.AAAAAAAAAAAAAAAAAAAAAA"},
    )
    assert forged.status == 403
    assert toggle_states(admin.server) == before
    assert admin.get("/admin/config").status == 200  # and the server goes on


@pytest.mark.usefixtures("toggles_restored")
def test_a_toggle_from_someone_who_is_not_an_administrator_is_refused(
    client: TestClient, login: Login, csrf: Csrf
) -> None:
    before = toggle_states(client.server)
    anonymous = client.post("/admin/toggle", data={"name": "sql_log", "on": "1"})
    assert anonymous.status == 401
    login(client, "alice", "alice pw")
    token = csrf(client.get("/admin/login"))  # a valid token, from a non-admin
    response = client.post(
        "/admin/toggle", data={"name": "sql_log", "on": "1", "csrf_token": token}
    )
    assert response.status == 403
    assert toggle_states(client.server) == before
    assert client.get("/admin/login").status == 200


@pytest.mark.usefixtures("toggles_restored")
def test_bad_toggle_requests(admin: TestClient, csrf: Csrf) -> None:
    token = csrf(admin.get("/admin/config"))
    assert admin.get("/admin/toggle?name=sql_log&on=1").status == 405
    unknown = admin.post("/admin/toggle", data={"name": "nope", "on": "1", "csrf_token": token})
    assert unknown.status == 400
    assert "no toggle named 'nope'" in text(unknown)
    bad = admin.post("/admin/toggle", data={"name": "sql_log", "on": "yes", "csrf_token": token})
    assert bad.status == 400


# --- statistics ----------------------------------------------------------------------------


def test_the_statistics_page_draws_the_charts(admin: TestClient, fake_statistics: Any) -> None:
    page = admin.get("/admin/statistics")
    assert page.status == 200
    drawn = charts(page)
    titles = [c.findtext("{http://www.w3.org/2000/svg}title") for c in drawn]
    assert titles == [
        "Requests per day",
        "Bytes sent per day",
        "Responses by status code",
        "Latency per service (ms)",
    ]
    assert [bar_count(c) for c in drawn] == [31, 31, 4, 6]
    assert all(c.get("role") == "img" and c.get("aria-label") for c in drawn)
    body = text(page)
    assert "2024-05-01 to 2024-05-31" in body
    assert "2024-05-04: 0 requests" in body  # the quiet day has its (empty) bar
    assert "2024-05-31: 1,210 requests" in body
    assert "<b>eve</b>" in body and "<b>eve</b>" not in page.text  # escaped
    assert "since counting began" in body and "bots (counted apart)" in body
    assert "<script" not in page.text


def test_the_statistics_as_json(admin: TestClient, fake_statistics: Any) -> None:
    response = admin.get("/admin/statistics.json")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert len(data["days"]) == 31
    assert data["status"]["404"] == 30


def test_statistics_that_are_off(admin: TestClient) -> None:
    page = admin.get("/admin/statistics")
    assert page.status == 200
    assert "Statistics are not collected on this server" in text(page)
    assert charts(page) == []
    assert admin.get("/admin/statistics.json").status == 404


def test_a_statistics_store_that_fails(
    admin: TestClient, fake_statistics: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake_statistics.failing = True
    page = admin.get("/admin/statistics")
    assert page.status == 503
    assert "cannot be read right now" in text(page)
    assert admin.get("/admin/statistics.json").status == 503
    assert "the statistics store is missing" in caplog.text
    fake_statistics.failing = False
    assert admin.get("/admin/statistics").status == 200  # the server kept serving


# --- sessions, database, projects ----------------------------------------------------------


def test_the_sessions_page_counts_live_sessions(
    make_client: Callable[..., TestClient], login: Login
) -> None:
    client = make_client(housekeeping={"enabled": False})
    login(client, "root", "root pw")
    store = pool_of(client.server).store
    now = time.time()
    store.create("a" * 32, now - 3600, now + 3600)
    store.save("a" * 32, "cart", Changes({"items": "[]"}), now, now + 3600)
    store.create("b" * 32, now - 7200, now - 1)  # expired: not counted
    page = text(client.get("/admin/sessions"))
    assert re.search(r"live sessions</th><td>2<", page)
    assert re.search(r"<td>cart</td><td class=\"number\">1<", page)
    assert re.search(r"<td>dibble\.auth</td><td class=\"number\">1<", page)
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(now - 3600)) in page  # the oldest
    assert "SQLite" in page and "sessions.sqlite3" in page
    assert "the session pool's own timer, every 300 s" in page


def test_the_database_page_lists_tables_and_columns(admin: TestClient) -> None:
    page = admin.get("/admin/database")
    assert page.status == 200
    body = text(page)
    assert "dibble_users" in body and "dibble_memberships" in body
    assert "<td>password</td><td>TEXT</td><td>yes</td>" in body
    assert "opened read-only" in body


def test_the_database_page_shows_the_request_log_as_a_view(
    admin: TestClient, site_dir: Path
) -> None:
    db = Database(site_dir / "dibble.sqlite3")
    prepare(db)
    db.close()
    body = admin.get("/admin/database").text
    view = body[body.index('id="table-dibble_request_log"') :]
    assert "dibble_request_log <small>(view)</small>" in view
    view = view[: view.index("</table>")]
    assert re.findall(r"<tr><td>(\w+)</td>", view) == list(COLUMNS)
    assert "dibble_request_log_batch <small>(table)</small>" in body


def test_the_database_page_before_the_database_exists(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(
        database={"url": f"sqlite:///{tmp_path}/missing.sqlite3"},
        admin={"networks": ["127.0.0.1"]},  # no users there yet: the network lets us in
    )
    page = client.get("/admin/database")
    assert page.status == 200
    assert "does not exist yet" in text(page)


def rows(page: TestResponse) -> list[tuple[str, ...]]:
    found = re.findall(
        r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", page.text
    )
    return [tuple(html.unescape(cell) for cell in row) for row in found]


def test_the_projects_page_sorts_by_column(admin: TestClient) -> None:
    by_project = rows(admin.get("/admin/projects"))
    assert [r[0] for r in by_project] == ["empty", "euclid", "euclid", "lofar", "operations"]
    assert by_project[0][2] == "(no members)"
    assert ("lofar", "", "alice", "2 (write)") in by_project
    by_user = rows(admin.get("/admin/projects?sort=user"))
    assert [r[2] for r in by_user] == ["(no members)", "alice", "alice", "bob", "ops"]
    by_privilege = rows(admin.get("/admin/projects?sort=privilege&order=desc"))
    assert [r[3] for r in by_privilege][:2] == ["3 (admin)", "2 (write)"]
    page = text(admin.get("/admin/projects?sort=user&order=asc"))
    assert '<th aria-sort="ascending"><a href="/admin/projects?sort=user&order=desc">' in page
    assert "Administrators</h2>\n<p>root</p>" in page


@pytest.mark.parametrize("query", ["sort=password", "sort=user&order=up"])
def test_a_bad_sort_is_400_naming_the_parameter(admin: TestClient, query: str) -> None:
    response = admin.get("/admin/projects?" + query)
    assert response.status == 400
    assert ("sort:" in response.text) or ("order:" in response.text)


# --- housekeeping --------------------------------------------------------------------------


def test_the_housekeeping_page_and_its_run_now_button(admin: TestClient, csrf: Csrf) -> None:
    page = admin.get("/admin/housekeeping")
    assert page.status == 200
    body = text(page)
    assert "every worker" in body and "not yet" in body
    assert "housekeeping.sqlite3" in body
    refused = admin.post("/admin/run", data={})
    assert refused.status == 403
    response = admin.post("/admin/run", data={"csrf_token": csrf(page)})
    assert response.status == 303
    after = text(admin.get(response.headers["location"]))
    assert "The jobs ran" in after
    assert "expired session record(s) removed" in after
    assert "(holds the lock)" in after


def test_the_housekeeping_page_when_it_is_off(
    make_client: Callable[..., TestClient], login: Login, csrf: Csrf
) -> None:
    client = make_client(housekeeping={"enabled": False})
    login(client, "root", "root pw")
    page = client.get("/admin/housekeeping")
    assert "Housekeeping is turned off" in text(page)
    token = csrf(client.get("/admin/config"))
    assert client.post("/admin/run", data={"csrf_token": token}).status == 409


# --- mounting --------------------------------------------------------------------------------


def test_the_area_is_off_unless_enabled(site_dir: Path) -> None:
    config = parse_config({"paths": {"data_dir": str(site_dir)}})
    server = dibble.HTTPServer.from_config(config, dibble.Context())
    with TestClient(server) as client:
        assert client.get("/admin").status == 404


def test_a_prefix_that_is_taken_is_a_config_error(site_dir: Path) -> None:
    config = parse_config(
        {
            "paths": {"data_dir": str(site_dir)},
            "services": {"admin": "dibble.pages:Info"},
            "admin": {"enabled": True},
        }
    )
    with pytest.raises(ConfigError, match=r"\[admin\] prefix: a service is already served"):
        dibble.HTTPServer.from_config(config, dibble.Context())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"prefix": "admin"}, "must be a path"),
        ({"prefix": "/admin/"}, "must be a path"),
        ({"prefix": "/"}, "must be a path"),
        ({"networks": ["10.0.0.1/8"]}, "host bits"),
        ({"network_required": True}, "needs networks"),
        ({"project": "no spaces"}, "not a project name"),
    ],
)
def test_admin_settings_are_checked(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"admin": table})


def test_the_admin_area_at_another_prefix(
    make_client: Callable[..., TestClient], login: Login
) -> None:
    client = make_client(
        admin={"prefix": "/ops/console", "networks": ["127.0.0.1"]},
        statistics={"enabled": True},
    )
    page = client.get("/ops/console/statistics")
    assert page.status == 200
    assert 'href="/ops/console/config"' in page.text
    assert client.get("/ops/console/statistics.json").status == 200


def test_a_report_without_its_stored_counts_says_so(
    admin: TestClient, fake_statistics: Any
) -> None:
    fake_statistics.report_value = dataclasses.replace(
        fake_statistics.report_value, store_error="database disk image is malformed"
    )
    page = admin.get("/admin/statistics")
    assert page.status == 200
    assert "The stored statistics cannot be read (database disk image is malformed)" in text(page)
    assert len(charts(page)) == 4


def test_the_toggles_are_the_statistics_modules() -> None:
    from dibble.admin import TOGGLES
    from dibble.stats import TOGGLES as STATS_TOGGLES

    assert tuple(TOGGLES) == STATS_TOGGLES


def test_the_real_statistics_on_the_page(
    make_client: Callable[..., TestClient], login: Login
) -> None:
    admin = make_client(statistics={"enabled": True})
    login(admin, "root", "root pw")
    for path in ("/admin/login", "/admin/nothing", "/admin/login"):
        admin.get(path)
    page = admin.get("/admin/statistics")
    assert page.status == 200
    requests, sent, status, latency = charts(page)
    assert bar_count(requests) == 31 and bar_count(sent) == 31
    svg = "{http://www.w3.org/2000/svg}"
    today = [e for e in requests.iter(f"{svg}rect") if e.get("class") == "bar"][-1]
    tip = today.findtext(f"{svg}title") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\d: \d+ requests", tip)
    assert bar_count(status) >= 2  # 200, 303, 404 ...
    assert bar_count(latency) >= 3
    data = admin.get("/admin/statistics.json").json()
    assert len(data["days"]) == 31
    # The login and the pages above, counted as people or as bots.
    assert data["forever"]["requests"] + data["bots"]["requests"] >= 5
