"""``BlockingResponse``: do blocking file work in a thread, then answer.

PUT and DELETE end with ``fsync``, which can take as long as the disk
needs; the event loop must not wait for it.  A methlet that returns a
``BlockingResponse`` has its work run in the loop's default thread pool and
its result (a ``Response``, or an ``HTTPError`` raised) sent afterwards.

The request's uploads stay open until the work is done: the response takes
them over from the request, which would otherwise free them as soon as the
methlet returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ..app import HTTPError, Response, error_page
from ..app._dispatch import send_response

if TYPE_CHECKING:
    from ..app import Request
    from ..server import HTTPProtocol

error_log: Final = logging.getLogger("dibble.error")

_HTML: Final = "text/html; charset=utf-8"


class BlockingResponse:
    """The ``Response`` that ``work()`` returns, computed in a worker thread."""

    __slots__ = ("work",)

    def __init__(self, work: Callable[[], Response]) -> None:
        self.work = work

    def __dibble_send__(self, request: Request, conn: HTTPProtocol, keep_alive: bool) -> None:
        form, request.form = request.form, None
        future = conn.loop.run_in_executor(None, self.work)

        def done(finished: asyncio.Future[Response]) -> None:
            if form is not None:
                form.close()
            try:
                response = finished.result()
            except HTTPError as exc:
                page = error_page(exc.status, exc.message).encode("utf-8", "replace")
                response = Response(page, exc.status, exc.headers, _HTML)
            except BaseException as exc:
                error_log.error("error in %s", request.target.decode("latin-1"), exc_info=exc)
                response = Response(error_page(500).encode("utf-8"), 500, content_type=_HTML)
            send_response(request, conn, response, keep_alive)

        future.add_done_callback(done)
