"""``AdminArea``: the admin pages, a plugin mounted under a prefix (``/admin``).

======================  ====================================================
``/admin``              the index: links to every page, facts about the server
``/admin/config``       the effective configuration (secrets hidden) and the
                        runtime toggles, as POST forms to ``/admin/toggle``
``/admin/statistics``   SVG charts and tables of the statistics report;
                        ``/admin/statistics.json`` the same as JSON
``/admin/sessions``     how many live sessions, the oldest, per service
``/admin/database``     tables and columns of the configured database
``/admin/projects``     projects with their users and privileges, sortable
``/admin/housekeeping`` the timer, its lock and jobs; ``/admin/run`` runs them
``/admin/login``        the login form (``dibble.auth.LoginPages``), and
                        ``/admin/logout``
======================  ====================================================

Every page except login and logout is behind ``AdminAccess`` (``_access.py``);
every form carries a CSRF token, checked before anything changes.  Pages
are rendered from the templates beside this module, with no script and no
external style sheet.  The methlets read stores and files, so they run in
the thread pool.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlencode

from .._version import __version__
from ..app import HTTPError, Plugin, Response, server_of
from ..auth import LoginPages, auth_of, current_user
from ..config import dump_toml
from ..housekeeping import Housekeeping
from ..html import TrustedHTML
from ..pages import PAGE_CSS
from ..stats import Counts, StatsReport, statistics_of
from ..templates import TemplateLoader
from ..text import human_size
from ..users import database_path
from ._access import AdminAccess
from ._charts import bar_chart, format_value, grouped_bar_chart
from ._info import SORT_COLUMNS, database_tables, masked_config, membership_rows, privilege_name
from ._toggles import TOGGLES, set_toggle, toggle_states

if TYPE_CHECKING:
    from ..app import HTTPServer

__all__ = ["AdminArea", "mount_admin"]

error_log: Final = logging.getLogger("dibble.error")

F = TypeVar("F", bound=Callable[..., Any])

_TEMPLATES: Final = os.path.join(os.path.dirname(__file__), "templates")
_loader: Final = TemplateLoader(_TEMPLATES)

_STYLE: Final = PAGE_CSS + (
    "main{max-width:64em}header{background:#234;color:#fff;padding:.6em 1.5em}"
    "header nav{display:flex;flex-wrap:wrap;gap:1em;align-items:center;max-width:64em;"
    "margin:0 auto}header a{color:#cde}header a.current{color:#fff;font-weight:bold}"
    ".logout{margin-left:auto}.logout button,form button{font:inherit}"
    ".notice{background:#eef;padding:.5em}.error{color:#a00}"
    "figure{margin:1.5em 0;overflow-x:auto}svg.chart{max-width:100%;height:auto;"
    "font-family:system-ui,sans-serif}td.number{text-align:right;white-space:nowrap}"
    "body>footer{max-width:75.3em;margin:3em auto 1em;padding:0 1.76em}"  # at .85em
    ".wide{overflow-x:auto}tr.group th{background:#eee}"
    ".state-on{color:#060;font-weight:bold}.state-off{color:#888}"
    "th[aria-sort] a{color:inherit}"
)

#: The pages of the index and the navigation bar: (methlet path, label, what it shows).
PAGES: Final = (
    ("config", "Config", "the effective configuration and the runtime toggles"),
    ("statistics", "Statistics", "requests, bytes, status codes and latency, with charts"),
    ("sessions", "Sessions", "live sessions, the oldest, per service"),
    ("database", "Database", "tables and columns of the configured database"),
    ("projects", "Projects", "projects with their users and privileges"),
    ("housekeeping", "Housekeeping", "the periodic timer, its lock and its jobs"),
)

#: The fields of the statistics' ``Counts``, with the column headings they get.
COUNT_FIELDS: Final = (
    ("requests", "requests"),
    ("get", "GET"),
    ("post", "POST"),
    ("head", "HEAD"),
    ("put", "PUT"),
    ("delete", "DELETE"),
    ("invalid", "invalid"),
    ("not_found", "not found"),
    ("bytes_sent", "bytes sent"),
    ("files_served", "files served"),
)

_STATUS_COLORS: Final = {2: "#5a9e4b", 3: "#3b6ea5", 4: "#e08a2c", 5: "#b0413e"}


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _seconds(value: float) -> str:
    if value >= 3600 and value % 3600 == 0:
        return f"{value / 3600:g} h"
    return f"{value:g} s"


def admin_only(func: F) -> F:
    """Let only those ``AdminAccess`` admits call the methlet."""

    @functools.wraps(func)
    def guarded(self: AdminArea, *args: Any, **kwargs: Any) -> Any:
        refusal = self.check_access()
        if refusal is not None:
            return refusal
        return func(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


class AdminArea(Plugin):
    """The admin pages; register with ``mount_admin(server)`` (or
    ``server.register(AdminArea(prefix=p), prefix=p)``).

    ``access`` None takes the rules from the server's ``[admin]`` settings.
    """

    blocking = True
    _NO_STORE: Final = ("Cache-Control", "no-store")

    def __init__(self, access: AdminAccess | None = None, *, prefix: str = "/admin") -> None:
        self.access = access
        self.prefix = "/" + prefix.strip("/")
        self._login = LoginPages(title="Log in to the admin area")
        self._rules: tuple[object, AdminAccess] | None = None

    def __repr__(self) -> str:
        return f"<AdminArea at {self.prefix}>"

    # --- plumbing -----------------------------------------------------------------------

    def url(self, page: str = "") -> str:
        return f"{self.prefix}/{page}" if page else self.prefix

    def server(self) -> HTTPServer:
        server = server_of(self.request)
        if server is None:
            raise RuntimeError("the admin area needs a request answered by a dibble.HTTPServer")
        return server

    def rules(self) -> AdminAccess:
        """The access rules: those given, else the server's ``[admin]`` settings."""
        if self.access is not None:
            return self.access
        section = self.server().site.settings.admin
        cached = self._rules
        if cached is None or cached[0] is not section:
            cached = self._rules = (section, AdminAccess.from_section(section))
        return cached[1]

    def check_access(self) -> Response | None:
        return self.rules().check(self.request, self.url("login"))

    def _csrf_token(self) -> str:
        return auth_of(self.request).csrf.token(self.request)

    def _check_csrf(self, token: str) -> None:
        auth_of(self.request).csrf.check(self.request, token)

    def _post_only(self, what: str) -> None:
        if self.request.method != "POST":
            raise HTTPError(405, f"{what} takes a POST of its form.", [("Allow", "POST")])

    def _page(
        self,
        title: str,
        body: str,
        current: str = "",
        *,
        notice: str = "",
        status: int = 200,
    ) -> Response:
        request = self.request
        user = current_user(request)
        html = _loader.render(
            "layout.html",
            TITLE=title,
            SERVER=self.server().site.settings.server.name,
            STYLE=TrustedHTML(_STYLE),  # our own CSS ("body>footer" must stay as it is)
            NAV=[
                {"HREF": self.url(), "LABEL": "Index", "CLASS": "current" if not current else ""},
                *(
                    {
                        "HREF": self.url(page),
                        "LABEL": label,
                        "CLASS": "current" if page == current else "",
                    }
                    for page, label, _ in PAGES
                ),
            ],
            USER=(
                {
                    "NAME": user.name,
                    "LOGOUT_URL": self.url("logout"),
                    "CSRF_TOKEN": self._csrf_token(),
                }
                if user is not None
                else None
            ),
            NOTICE={"TEXT": notice} if notice else None,
            BODY=TrustedHTML(body),
            VERSION=__version__,
            NOW=_when(time.time()),
        )
        return Response(html, status, [self._NO_STORE])

    # --- login and logout (not guarded) -------------------------------------------------

    def onLogin(
        self, user: str = "", password: str = "", next: str = "", csrf_token: str = ""
    ) -> Response:
        return self._login.onLogin(user, password, next or self.url(), csrf_token)

    def onLogout(self, next: str = "", csrf_token: str = "") -> Response:
        return self._login.onLogout(next or self.url("login"), csrf_token)

    # --- the pages ----------------------------------------------------------------------

    @admin_only
    def onHome(self) -> Response:
        server = self.server()
        settings = server.site.settings
        housekeeping = server.housekeeping
        facts = [
            ("server", f"{settings.server.name} (dibble {__version__})"),
            ("listening on", ", ".join(f"{h}:{p}" for h, p in server.addresses) or "-"),
            ("configuration", settings.source or "(none: settings from code)"),
            ("test mode", "on" if server.config.test_mode else "off"),
            (
                "housekeeping",
                f"every {_seconds(housekeeping.interval)}" if housekeeping else "off",
            ),
            ("statistics", "on" if statistics_of(server) is not None else "off"),
        ]
        body = _loader.render(
            "index.html",
            PAGE=[
                {"HREF": self.url(page), "LABEL": label, "TEXT": text}
                for page, label, text in PAGES
            ],
            FACT=[{"NAME": name, "VALUE": value} for name, value in facts],
        )
        return self._page("Admin", body)

    @admin_only
    def onConfig(self, changed: str = "") -> Response:
        server = self.server()
        settings = server.site.settings
        states = toggle_states(server)
        token = self._csrf_token()
        rows = [
            {
                "LABEL": label,
                "NAME": name,
                "STATE": "on" if states[name] else "off",
                "TURN_ON": "0" if states[name] else "1",
                "BUTTON": "Turn off" if states[name] else "Turn on",
                "ACTION": self.url("toggle"),
                "CSRF_TOKEN": token,
            }
            for name, label in TOGGLES.items()
        ]
        notice = ""
        if changed in TOGGLES:
            state = "on" if states[changed] else "off"
            notice = f"{TOGGLES[changed]}: turned {state}."
        body = _loader.render(
            "config.html",
            TOGGLE=rows,
            SOURCE=f" (read from {settings.source})" if settings.source else "",
            TOML=dump_toml(masked_config(settings)),
        )
        return self._page("Config", body, "config", notice=notice)

    @admin_only
    def onToggle(self, name: str = "", on: str = "", csrf_token: str = "") -> Response:
        self._post_only("Changing a toggle")
        self._check_csrf(csrf_token)
        if name not in TOGGLES:
            raise HTTPError(400, f"name: no toggle named {name!r} (known: {', '.join(TOGGLES)})")
        if on not in ("0", "1"):
            raise HTTPError(400, "on: expected 1 (turn on) or 0 (turn off)")
        set_toggle(self.server(), name, on == "1")
        error_log.info(
            "admin: %s turned %s by %s",
            name,
            "on" if on == "1" else "off",
            self._who(),
        )
        return Response.redirect(f"{self.url('config')}?{urlencode({'changed': name})}")

    def _who(self) -> str:
        user = current_user(self.request)
        return user.name if user is not None else f"a client at {self.request.client_ip}"

    # --- statistics -----------------------------------------------------------------------

    _NOT_COLLECTED: Final = (
        "Statistics are not collected on this server ([statistics] enabled = true turns them on)."
    )

    def _report(self) -> StatsReport:
        """The statistics report; HTTPError 404/503 when there is none to show."""
        statistics = statistics_of(self.server())
        if statistics is None:
            raise HTTPError(404, self._NOT_COLLECTED)
        try:
            return statistics.report(days=31)
        except Exception:
            error_log.exception("admin: the statistics report failed")
            raise HTTPError(
                503, "The statistics cannot be read right now; the error log says why."
            ) from None

    @admin_only
    def onStatistics(self) -> Response:
        try:
            report = self._report()
        except HTTPError as exc:
            # A page that says there is nothing to show is no error of the page.
            status = 200 if exc.message == self._NOT_COLLECTED else exc.status
            return self._page("Statistics", "", "statistics", notice=exc.message, status=status)
        body = _loader.render("statistics.html", REPORT=self._report_values(report))
        problem = getattr(report, "store_error", "")
        notice = (
            f"The stored statistics cannot be read ({problem}); these are only this "
            "process's counts since its last flush."
            if problem
            else ""
        )
        return self._page("Statistics", body, "statistics", notice=notice)

    @admin_only
    def onStatisticsJson(self) -> Response:
        encoded = Response.json(self._report().to_json())
        return Response(encoded.body, headers=[self._NO_STORE], content_type=encoded.content_type)

    def _report_values(self, report: StatsReport) -> dict[str, object]:
        days = report.days
        labels = [day.strftime("%m-%d") for day, _ in days]
        requests = [float(counts.requests) for _, counts in days]
        sent = [float(counts.bytes_sent) for _, counts in days]
        status = report.status
        codes = sorted(status)
        latency = report.latency
        services = sorted(latency)
        return {
            "DAYS": len(days),
            "FIRST": days[0][0].isoformat() if days else "-",
            "LAST": days[-1][0].isoformat() if days else "-",
            "JSON_URL": self.url("statistics.json"),
            "REQUESTS_CHART": bar_chart(
                labels,
                requests,
                title="Requests per day",
                tips=[
                    f"{day.isoformat()}: {format_value(n)} requests"
                    for (day, _), n in zip(days, requests, strict=True)
                ],
            ),
            "BYTES_CHART": bar_chart(
                labels,
                sent,
                title="Bytes sent per day",
                unit="bytes",
                tips=[
                    f"{day.isoformat()}: {human_size(n)}"
                    for (day, _), n in zip(days, sent, strict=True)
                ],
            ),
            "STATUS_CHART": bar_chart(
                [str(code) for code in codes],
                [float(status[code]) for code in codes],
                title="Responses by status code",
                colors=[_STATUS_COLORS.get(code // 100, "#8c8c8c") for code in codes],
            ),
            "LATENCY_CHART": grouped_bar_chart(
                services,
                [
                    (p, [float(latency[s].get(p, 0.0)) for s in services])
                    for p in ("p50", "p90", "p99")
                ],
                title="Latency per service (ms)",
                unit="ms",
            ),
            "SERVICE": [
                {
                    "NAME": service,
                    "COUNT": format_value(latency[service].get("count", 0)),
                    "P50": format_value(latency[service].get("p50", 0.0), "ms"),
                    "P90": format_value(latency[service].get("p90", 0.0), "ms"),
                    "P99": format_value(latency[service].get("p99", 0.0), "ms"),
                }
                for service in services
            ],
            "HEADING": [{"NAME": heading} for _, heading in COUNT_FIELDS],
            "SPAN": len(COUNT_FIELDS) + 1,
            "GROUP": self._count_groups(report, days),
        }

    @staticmethod
    def _count_row(name: str, counts: Counts) -> dict[str, object]:
        cells = []
        for field, _ in COUNT_FIELDS:
            value = getattr(counts, field, 0)
            shown = human_size(value) if field == "bytes_sent" else format_value(value)
            cells.append({"VALUE": shown})
        return {"NAME": name, "CELL": cells}

    def _count_groups(
        self, report: StatsReport, days: Sequence[tuple[datetime.date, Counts]]
    ) -> list[object]:
        period = sum((counts for _, counts in days), Counts())
        totals = [
            self._count_row(f"last {len(days)} days", period),
            self._count_row("since counting began", report.forever),
            self._count_row("bots (counted apart)", report.bots),
        ]
        groups: list[object] = [{"GROUP": "Totals", "ROW": totals}]
        for title, table in (("Per user", report.users), ("Per project", report.projects)):
            if table:
                rows = [self._count_row(name, table[name]) for name in sorted(table)]
                groups.append({"GROUP": title, "ROW": rows})
        return groups

    # --- sessions, database, projects --------------------------------------------------

    @admin_only
    def onSessions(self) -> Response:
        from ..sessions import pool_of

        server = self.server()
        pool = pool_of(server)
        count, oldest, services = pool.call(pool.store.summary, pool.clock())
        housekeeping = server.housekeeping
        if housekeeping is not None and housekeeping.running and pool.cleanup_interval is None:
            cleanup = f"the housekeeping timer, every {_seconds(housekeeping.interval)}"
        elif pool.cleanup_interval is not None:
            cleanup = f"the session pool's own timer, every {_seconds(pool.cleanup_interval)}"
        else:
            cleanup = "nothing (no timer runs)"
        body = _loader.render(
            "sessions.html",
            STORE=pool.store.description,
            COUNT=format_value(count),
            OLDEST=_when(oldest) if oldest is not None else "-",
            LIFETIME=_seconds(pool.lifetime),
            CLEANUP=cleanup,
            SERVICES=bool(services),
            NO_SERVICES=not services,
            SERVICE=[
                {"NAME": name, "COUNT": format_value(n)} for name, n in sorted(services.items())
            ],
        )
        return self._page("Sessions", body, "sessions")

    @admin_only
    def onDatabase(self) -> Response:
        settings = self.server().site.settings
        path = database_path(settings)
        if path is None:
            notice = "No database is configured ([database] url, or [paths] data_dir)."
            return self._page("Database", "", "database", notice=notice)
        try:
            tables = database_tables(path)
        except FileNotFoundError:
            return self._page(
                "Database", "", "database", notice=f"The database {path} does not exist yet."
            )
        except sqlite3.Error as exc:
            error_log.error("admin: cannot read the database %s: %s", path, exc)
            return self._page(
                "Database",
                "",
                "database",
                notice=f"The database {path} cannot be read: {exc}",
                status=503,
            )
        body = _loader.render(
            "database.html",
            DESCRIPTION=f"SQLite {path}: {len(tables)} table(s), opened read-only.",
            TABLE=[
                {
                    "NAME": table.name,
                    "ANCHOR": "table-" + table.name,
                    "KIND": table.kind,
                    "COLUMN": [
                        {
                            "NAME": column.name,
                            "TYPE": column.type,
                            "NOT_NULL": "yes" if column.not_null else "",
                            "DEFAULT": column.default,
                            "PRIMARY_KEY": "yes" if column.primary_key else "",
                        }
                        for column in table.columns
                    ],
                }
                for table in tables
            ],
        )
        return self._page("Database", body, "database")

    @admin_only
    def onProjects(self, sort: str = "project", order: str = "asc") -> Response:
        if sort not in SORT_COLUMNS:
            raise HTTPError(400, f"sort: expected one of {', '.join(SORT_COLUMNS)}")
        if order not in ("asc", "desc"):
            raise HTTPError(400, "order: expected asc or desc")
        users = auth_of(self.request).users
        if users is None:
            notice = "There is no user database ([database] url, or [paths] data_dir)."
            return self._page("Projects", "", "projects", notice=notice)
        rows = membership_rows(users, sort, order == "desc")
        admins = sorted(user.name for user in users.users() if user.admin)
        headings = []
        for column in SORT_COLUMNS:
            active = column == sort
            flip = "desc" if active and order == "asc" else "asc"
            headings.append(
                {
                    "LABEL": column,
                    "HREF": f"{self.url('projects')}?{urlencode({'sort': column, 'order': flip})}",
                    "ARIA": ("ascending" if order == "asc" else "descending")
                    if active
                    else "none",
                    "MARK": (" ▲" if order == "asc" else " ▼") if active else "",
                }
            )
        body = _loader.render(
            "projects.html",
            ADMINS=", ".join(admins) or "none",
            HEADING=headings,
            ROW=[
                {
                    "PROJECT": row.project,
                    "DESCRIPTION": row.description,
                    "USER": row.user or "(no members)",
                    "PRIVILEGE": privilege_name(row.privilege),
                }
                for row in rows
            ],
        )
        return self._page("Projects", body, "projects")

    # --- housekeeping ---------------------------------------------------------------------

    def _housekeeping(self) -> Housekeeping | None:
        return self.server().housekeeping

    @admin_only
    def onHousekeeping(self, ran: str = "") -> Response:
        housekeeping = self._housekeeping()
        if housekeeping is None:
            notice = "Housekeeping is turned off ([housekeeping] enabled = false)."
            return self._page("Housekeeping", "", "housekeeping", notice=notice)
        holder = housekeeping.holder()
        jobs = []
        for job in housekeeping.jobs:
            run = housekeeping.last_runs.get(job.name)
            jobs.append(
                {
                    "NAME": job.name,
                    "WHERE": "the lock holder" if job.exclusive else "every worker",
                    "WHEN": _when(run.started) if run else "not yet",
                    "TOOK": f"{run.duration:.3f} s" if run else "",
                    "OUTCOME": (run.result or "done")
                    if run and run.ok
                    else (run.error if run else ""),
                    "CLASS": "error" if run and not run.ok else "",
                }
            )
        body = _loader.render(
            "housekeeping.html",
            INTERVAL=_seconds(housekeeping.interval),
            STATE="running" if housekeeping.running else "not running in this worker",
            LOCK=housekeeping.lock.description,
            HOLDER=(
                f"{holder.owner} (until {_when(holder.expires)})"
                if holder is not None
                else "nobody"
            ),
            OWNER=f"{housekeeping.owner}{' (holds the lock)' if housekeeping.held else ''}",
            TICKS=housekeeping.ticks,
            LAST_TICK=_when(housekeeping.last_tick),
            RUN_URL=self.url("run"),
            CSRF_TOKEN=self._csrf_token(),
            JOB=jobs,
        )
        notice = "The jobs ran; their outcomes are below." if ran else ""
        return self._page("Housekeeping", body, "housekeeping", notice=notice)

    @admin_only
    def onRun(self, csrf_token: str = "") -> Response:
        self._post_only("Running the housekeeping jobs")
        self._check_csrf(csrf_token)
        housekeeping = self._housekeeping()
        if housekeeping is None:
            raise HTTPError(409, "Housekeeping is turned off ([housekeeping] enabled = false).")
        error_log.info("admin: housekeeping jobs run by %s", self._who())
        housekeeping.run_once()
        return Response.redirect(f"{self.url('housekeeping')}?ran=1")

    # --- everything else --------------------------------------------------------------------

    def on_unknown(self, path: str, params: Mapping[str, list[str]]) -> Any:
        # Nothing about the area, not even which pages exist, to those refused.
        refusal = self.check_access()
        if refusal is not None:
            return refusal
        return super().on_unknown(path, params)


def mount_admin(
    server: HTTPServer, prefix: str = "/admin", access: AdminAccess | None = None
) -> AdminArea:
    """Serve the admin area at ``prefix`` of ``server``; returns the plugin."""
    area = AdminArea(access, prefix=prefix)
    server.register(area, prefix=prefix)
    return area
