"""The calendar server: dibble's "hello world", after Dibbler's own example.

Run it with ``dibble serve examples/calendar.py`` (or ``python
examples/calendar.py``) and open http://127.0.0.1:8888/?year=2003.
``/shutdown`` ends the server cleanly.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run as a script, this file's folder comes first on sys.path, where this
    # file would shadow the standard library's calendar module.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import calendar  # must follow the sys.path repair above
import html

import dibble

PAGE = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>%s</pre></body></html>"
)


class Calendar(dibble.Plugin):
    """Shows the calendar of the year asked for."""

    def onHome(self, year: int | None = None) -> str:
        if year is not None and not 1 <= year <= 9999:
            raise dibble.HTTPError(400, "year must be between 1 and 9999")
        text = calendar.calendar(year) if year is not None else ""
        return PAGE % html.escape(text)

    def onShutdown(self) -> None:
        self.write_ok_headers("text/html; charset=utf-8")
        self.write("<html><body><p>Shutting down. Goodbye.</p></body></html>")
        raise SystemExit


if __name__ == "__main__":
    server = dibble.HTTPServer(8888)
    server.register(Calendar())
    dibble.run(launch_browser="--open" in sys.argv)
