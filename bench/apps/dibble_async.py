"""The benchmark endpoints as a dibble plugin with ``async def`` methlets.

Served with ``dibble serve bench/apps/dibble_async.py -H 127.0.0.1 -p PORT
--no-access-log``. Async methlets run as coroutines on the event loop.
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
    async def onPlaintext(self) -> dibble.Response:
        return dibble.Response(b"Hello, World!", content_type="text/plain")

    async def onJson(self) -> dict[str, str]:
        return {"message": "Hello, World!"}

    async def onHome(self, year: int = 2003) -> str:
        return PAGE % html.escape(calendar.calendar(year))
