"""The observatory site: the services named in ``observatory.toml``.

``Home`` is a page filled from a template, remembering the chosen project
in a cookie (``[cookies] attrs``); ``Nights`` is a plugin mounted as a
service; ``Docs`` is the default service of the ``docs.localhost`` virtual
host; ``OldArchive`` forwards to its new place; ``Static`` serves the style
sheet, which stays reachable during maintenance.

Links carry a signed ``state`` (``url_encode_object``) so the detail page
knows which project the list was made for, and can trust it.
"""

from __future__ import annotations

from typing import Any

import dibble
from dibble.pages import PageResult
from dibble.templates import Template, TrustedHTML

PROJECTS = {
    "M31": [("2003-10-01", 42), ("2003-10-02", 17)],
    "Deep Field": [("2004-01-12", 96)],
}

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7fb;color:#222}"
    "main{max-width:46em;margin:2em auto;padding:0 1em}"
    "td,th{padding:.2em 1em;text-align:left}"
)


class Home(dibble.Page):
    """The front page: the nights of the chosen project."""

    title = "Observatory"
    template = "home.html"

    def project(self) -> str:
        chosen = self.get_arg("project", "M31")
        return chosen if chosen in PROJECTS else "M31"

    def fill_template(self, template: Template) -> None:
        project = self.project()
        template.set_variables({"TITLE": self.title, "PROJECT": project})
        for name in PROJECTS:
            selected = TrustedHTML(" selected") if name == project else ""
            template.insert_block("PROJECT", {"NAME": name, "SELECTED": selected})
        for date, frames in PROJECTS[project]:
            state = self.url_encode_object({"project": project}, purpose="night")
            template.insert_block("NIGHT", {"DATE": date, "FRAMES": frames, "STATE": state})


class Nights(dibble.Plugin):
    """``/nights`` lists every night as JSON; ``/nights/night/DATE?state=...`` one night."""

    def onHome(self) -> dict[str, Any]:
        return {name: [date for date, _ in nights] for name, nights in PROJECTS.items()}

    def onNight(self, date: str, state: str) -> dict[str, Any]:
        project = dibble.url_decode_object(state, purpose="night")["project"]
        for night, frames in PROJECTS.get(project, []):
            if night == date:
                return {"project": project, "night": date, "frames": frames}
        raise dibble.HTTPError(404, f"{project} was not observed on {date}")


class Docs(dibble.Page):
    """The documentation site, served at docs.localhost."""

    title = "Observatory documentation"

    def get_html(self) -> PageResult:
        return self.encapsulate_body_html(
            "<h1>Documentation</h1><p>Frames are calibrated nightly.</p>",
            extra_head="<link rel='stylesheet' href='/static/style.css'>",
        )


class OldArchive(dibble.Forward):
    """The archive moved; old bookmarks still work."""

    url = "/nights"
    redirect_status = 301


class Static(dibble.Plugin):
    """The style sheet (exempt from maintenance, so the 503 page may use it)."""

    def onStyleCss(self) -> dibble.Response:
        return dibble.Response(STYLE, content_type="text/css; charset=utf-8")
