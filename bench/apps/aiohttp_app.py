"""The benchmark endpoints as an aiohttp application on uvloop.

Run as ``python aiohttp_app.py PORT [KEEP_ALIVE_SECONDS]``; one process,
access log off.
"""

import calendar
import html
import sys

import uvloop
from aiohttp import web

HEAD = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>"
)
TAIL = "</pre></body></html>"


async def plaintext(request: web.Request) -> web.Response:
    return web.Response(text="Hello, World!", content_type="text/plain")


async def json_endpoint(request: web.Request) -> web.Response:
    return web.json_response({"message": "Hello, World!"})


async def home(request: web.Request) -> web.Response:
    year = int(request.query.get("year", "2003"))
    page = HEAD + html.escape(calendar.calendar(year)) + TAIL
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def main() -> None:
    port = int(sys.argv[1])
    keep_alive = float(sys.argv[2]) if len(sys.argv) > 2 else 75.0
    app = web.Application()
    app.router.add_get("/plaintext", plaintext)
    app.router.add_get("/json", json_endpoint)
    app.router.add_get("/", home)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        backlog=4096,
        keepalive_timeout=keep_alive,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
