"""A bare ASGI application: no framework, only the three benchmark endpoints.

Served by uvicorn (httptools + uvloop) and by granian, as the floor that any
ASGI framework adds its cost on top of.
"""

import calendar
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEAD = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>"
)
TAIL = "</pre></body></html>"

PLAINTEXT = b"Hello, World!"
TEXT_PLAIN = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


def calendar_page(year: int) -> str:
    return HEAD + html.escape(calendar.calendar(year)) + TAIL


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/plaintext":
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
        await send({"type": "http.response.body", "body": PLAINTEXT})
        return
    status = 200
    if path == "/json":
        body = json.dumps({"message": "Hello, World!"}).encode()
        content_type = b"application/json"
    elif path == "/":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        body = calendar_page(int(query.get("year", ["2003"])[0])).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        status, body, content_type = 404, b"Not Found", b"text/plain"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
