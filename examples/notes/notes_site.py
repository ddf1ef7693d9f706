"""Notes: a guestbook anyone can read and logged-in users sign, and private notes.

Shows what dibble's sessions and logins give an application:

* ``/`` lists the guestbook (kept in SQLite in the data directory); the
  form to sign it is there only for a logged-in user, and carries a CSRF
  token;
* ``/notes`` is protected (``@login_required``): a browser that is not
  logged in goes to ``/login`` and comes back; the notes live in the
  user's session, a counter counts visits (``session.increment``), and a
  one-time "saved" message passes from the POST to the page after it;
* ``/login`` and ``/logout`` are dibble's ``LoginPages``.

Run it as ``notes.toml`` says.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import dibble
from dibble.app import server_of
from dibble.auth import LoginPages, auth_of, current_user, login_required
from dibble.templates import Template

TEMPLATE = Template.from_file(os.path.join(os.path.dirname(__file__), "templates", "page.html"))


class Guestbook:
    """The signatures, in ``guestbook.sqlite3`` in the data directory."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS entries (at REAL, author TEXT, text TEXT)")
        self._lock = threading.Lock()

    def sign(self, author: str, text: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO entries VALUES (?, ?, ?)", (time.time(), author, text[:500])
            )

    def entries(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT author, text FROM entries ORDER BY at DESC LIMIT 50"
            ).fetchall()
        return [(author, text) for author, text in rows]

    def close(self) -> None:
        self._db.close()


class Notes(dibble.Plugin):
    """The guestbook and the notes pages."""

    session_service = "notes"

    def __init__(self) -> None:
        self._guestbook: Guestbook | None = None

    def guestbook(self) -> Guestbook:
        if self._guestbook is None:
            server = server_of(self.request)
            data_dir = server.site.settings.paths.data_dir if server else ""
            self._guestbook = Guestbook(os.path.join(data_dir or ".", "guestbook.sqlite3"))
        return self._guestbook

    def _page(
        self, title: str, items: list[dict[str, str]], visits: int | None = None, **form: str
    ) -> str:
        user = current_user()
        flash = self.session.pop("flash", None) if user else None
        return TEMPLATE.render(
            TITLE=title,
            USER={"NAME": user.name} if user else None,
            ANONYMOUS=user is None,
            FLASH={"TEXT": flash} if flash else None,
            ITEM=items,
            FORM=dict(form, CSRF_TOKEN=auth_of(self.request).csrf.token(self.request))
            if form and user
            else None,
            VISITS={"COUNT": visits} if visits is not None else None,
        )

    def onHome(self) -> str:
        items = [
            {"TEXT": text, "WHO": f"— {author}"} for author, text in self.guestbook().entries()
        ]
        return self._page("Guestbook", items, ACTION="/sign", BUTTON="Sign the guestbook")

    @login_required
    def onSign(self, text: str = "", csrf_token: str = "") -> dibble.Response:
        user = current_user()
        assert user is not None
        auth_of(self.request).csrf.check(self.request, csrf_token)
        if text.strip():
            self.guestbook().sign(user.name, text.strip())
        return dibble.Response.redirect("/")

    @login_required
    def onNotes(self) -> str:
        visits = self.session.increment("visits")
        items = [{"TEXT": note, "WHO": ""} for note in self.session.get("notes", [])]
        return self._page("My notes", items, visits, ACTION="/add", BUTTON="Add a note")

    @login_required
    def onAdd(self, text: str = "", csrf_token: str = "") -> dibble.Response:
        auth_of(self.request).csrf.check(self.request, csrf_token)
        if text.strip():
            # Changed in place: the session sees it and saves the list.
            self.session.setdefault("notes", []).append(text.strip()[:500])
            self.session["flash"] = "Saved."
        return dibble.Response.redirect("/notes")


notes = Notes()
login_pages = LoginPages(title="Log in to Notes")
