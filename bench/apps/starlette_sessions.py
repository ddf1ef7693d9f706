"""The session benchmark's Starlette app: /plaintext, and /session with SessionMiddleware.

Starlette's sessions are signed cookies (itsdangerous): the whole session
travels in the cookie and is verified and re-signed on each request.
"""

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def plaintext(request: Request) -> Response:
    return PlainTextResponse("Hello, World!")


async def session(request: Request) -> Response:
    count = request.session.get("count", 0) + 1
    request.session["count"] = count
    return PlainTextResponse(f"count {count}")


app = Starlette(
    routes=[Route("/plaintext", plaintext), Route("/session", session)],
    middleware=[
        Middleware(SessionMiddleware, secret_key="bench-only-secret-key-0123456789abcdef")
    ],
)
