"""The benchmark endpoints as a dibble plugin with plain (sync) methlets.

Served with ``dibble serve bench/apps/dibble_sync.py -H 127.0.0.1 -p PORT
--no-access-log``. Sync methlets run inline on the event loop (the fast path).
"""

import calendar
import html

import dibble

PAGE = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>%s</pre></body></html>"
)


class Bench(dibble.Plugin):
    def onPlaintext(self) -> dibble.Response:
        return dibble.Response(b"Hello, World!", content_type="text/plain")

    def onJson(self) -> dict[str, str]:
        return {"message": "Hello, World!"}

    def onHome(self, year: int = 2003) -> str:
        return PAGE % html.escape(calendar.calendar(year))
