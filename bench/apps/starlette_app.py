"""The benchmark endpoints as a Starlette application, served by uvicorn."""

import calendar
import html

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

HEAD = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>"
)
TAIL = "</pre></body></html>"


async def plaintext(request: Request) -> Response:
    return PlainTextResponse("Hello, World!")


async def json_endpoint(request: Request) -> Response:
    return JSONResponse({"message": "Hello, World!"})


async def home(request: Request) -> Response:
    year = int(request.query_params.get("year", "2003"))
    return HTMLResponse(HEAD + html.escape(calendar.calendar(year)) + TAIL)


app = Starlette(
    routes=[
        Route("/plaintext", plaintext),
        Route("/json", json_endpoint),
        Route("/", home),
    ]
)
