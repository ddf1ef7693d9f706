"""The original Dibbler calendar example, ported by changing its imports only.

``python examples/dibbler_calendar.py`` serves it on port 8888 (all
interfaces, as Dibbler did).
"""

from __future__ import annotations

import calendar

from dibble.compat import dibbler as Dibbler


class Calendar(Dibbler.HTTPPlugin):
    _form = """<html><body><h3>Calendar Server</h3>
               <form action='/'>
               Year: <input type='text' name='year' size='4'>
               <input type='submit' value='Go'></form>
               <pre>%s</pre></body></html>"""

    def onHome(self, year: str | None = None) -> None:
        if year:
            result = calendar.calendar(int(year))
        else:
            result = ""
        self.writeOKHeaders("text/html")
        self.write(self._form % result)


if __name__ == "__main__":
    httpServer = Dibbler.HTTPServer(8888)
    httpServer.register(Calendar())
    Dibbler.run(launchBrowser=False)
