"""Calling methlets and turning what they return into response bytes.

``Dispatcher`` is the application the server layer talks to.  The hot path
is a sync methlet that returns at once: it is called inline on the event
loop, with no task, no thread and no copy of the context; its result becomes
one ``bytes`` object and one ``transport.write``.  ``async def`` methlets get
a task; methlets marked blocking run in a bounded thread pool.

Whatever a methlet raises becomes an error page: ``HTTPError`` its own
status, anything else a 500 (with the traceback only in test mode, always in
the ``dibble.error`` log).  ``SystemExit`` ends the server once the response
is out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import sys
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from time import perf_counter
from typing import Any, Final

from ..http import RequestHead, status_line
from ..server import BodySink, ClientDisconnected, HTTPProtocol, ServerConfig
from ..uploads import Uploads
from ._errors import HTTPError
from ._pages import error_page
from ._plugin import current_request
from ._render import (
    CLOSE_FIELD,
    HTML_FIELD,
    JSON_FIELD,
    KEEP_ALIVE_FIELD,
    SERVER_FIELD,
    connection_field,
    content_type_field,
    encode_extra_fields,
    has_field,
    render_head,
)
from ._request import Request
from ._response import Response, encode_json
from ._routing import ASYNC, INLINE, PREPARED, Route, Router
from ._writer import run_head_hooks, run_hooks_on

error_log: Final = logging.getLogger("dibble.error")

_OK_HEAD: Final = status_line(200) + b"%bContent-Length: %d\r\n%b%b" + SERVER_FIELD + b"\r\n"
_OK_RESPONSE: Final = _OK_HEAD + b"%b"
_NO_BODY_STATUSES: Final = frozenset({204, 304})


#: Results whose response is complete once rendered (a type's ``hasattr``
#: that fails costs an exception, so the common ones are known here).
_COMPLETE: Final = frozenset({str, bytes, dict, list, Response, type(None)})


class Dispatcher:
    """The application object behind an ``HTTPServer``."""

    def __init__(
        self,
        router: Router,
        config: ServerConfig,
        on_exit: Callable[[], None],
    ) -> None:
        self.router = router
        self.config = config
        self.test_mode = config.test_mode
        self._on_exit = on_exit
        self._slow_threshold = config.slow_callback_threshold
        self._executor: ThreadPoolExecutor | None = None
        self._warned_slow: set[str] = set()
        self._filters: list[Callable[[socket.socket], bool]] = []
        #: Which request bodies stream to files, with what limits (set by HTTPServer).
        self.uploads = Uploads()
        self.refresh()

    def refresh(self) -> None:
        """Recompute what depends on the registered plugins."""
        self._routes = self.router.cache
        self._filters = [
            p.on_incoming_connection for p in self.router.plugins if p._vetoes_connections()
        ]

    # --- the server's Application interface ----------------------------------

    def new_head(self) -> RequestHead:
        return Request()

    def body_limit(self, head: RequestHead) -> int:
        assert isinstance(head, Request)
        target = head.target
        if target[:1] == b"/":
            end = target.find(b"?")
            key = target if end < 0 else target[:end]
        else:
            key = head.raw_path.encode("latin-1")
        route = self._routes.get(key) or self.router.resolve(key)
        head.route = route
        return route.max_body

    def body_sink(self, head: RequestHead, conn: HTTPProtocol) -> BodySink | None:
        # Forms and file uploads stream to temporary files; other bodies are
        # buffered.  The sink stays with the request, which frees its files.
        assert isinstance(head, Request)
        route = head.route
        sink = self.uploads.sink_for(
            head, conn, route.func if route else None, route.plugin if route else None
        )
        head.form = sink
        return sink

    @property
    def filters_connections(self) -> bool:
        return bool(self._filters)

    def allows_connection(self, sock: socket.socket) -> bool:
        return all(f(sock) is not False for f in self._filters)

    def dispatch(self, head: RequestHead, body: bytes, conn: HTTPProtocol) -> None:
        request: Request = head  # type: ignore[assignment]
        request.body = body
        request.conn = conn
        if request.client is None:  # else the forwarded client (GatedDispatcher) is kept
            request.client = conn.client
        request.tls = conn.tls
        route = request.route
        assert route is not None
        if route.mode == INLINE:
            token = current_request.set(request)
            try:
                result = self._call_inline(request, route)
            except BaseException as exc:
                self._fail(request, exc)
                return
            finally:
                current_request.reset(token)
            self._respond(request, result)
        elif route.mode == PREPARED and route.prepared_mode == INLINE:
            self._run_prepared_inline(request, route)
        elif route.mode == ASYNC or route.mode == PREPARED:
            run = self._run_async if route.mode == ASYNC else self._run_prepared
            token = current_request.set(request)
            try:
                # The request keeps its task alive (the loop holds tasks weakly).
                request.task = _start_task(conn.loop, run(request, route))
            finally:
                current_request.reset(token)
        else:
            self._run_in_thread(request, route)

    # --- the three ways of calling ---------------------------------------------

    async def _run_async(self, request: Request, route: Route) -> None:
        try:
            args, kwargs = _bind(request, route)
            coro: Coroutine[Any, Any, Any] = route.func(*args, **kwargs)
            result = await coro
        except BaseException as exc:
            self._fail(request, exc)
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                raise
            return
        self._respond(request, result)

    async def _run_prepared(self, request: Request, route: Route) -> None:
        preparation = route.preparation
        assert preparation is not None
        try:
            waiting = preparation.before(request)
            if waiting is not None:
                await waiting
            args, kwargs = _bind(request, route)
            result = route.func(*args, **kwargs)
            if route.prepared_mode == ASYNC or route.drive:
                result = await result
            waiting = preparation.after(request)
            if waiting is not None:
                await waiting
        except BaseException as exc:
            self._fail(request, exc)
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                raise
            return
        self._respond(request, result)

    def _call_inline(self, request: Request, route: Route) -> Any:
        """Run a sync (or never-suspending) methlet to its result, on the loop.

        The caller sets the request's context and handles what it raises.
        """
        start = perf_counter()
        if route.binder.needs_params or route.segments:
            args, kwargs = _bind(request, route)
            result = route.func(*args, **kwargs)
        else:
            result = route.func()
        if route.drive:
            result = _drive(result)
        elapsed = perf_counter() - start
        if elapsed > self._slow_threshold:
            self._warn_slow(route, elapsed)
        return result

    def _run_prepared_inline(self, request: Request, route: Route) -> None:
        # A sync (or never-suspending) methlet between two steps that may
        # wait for a batch: callbacks, not a task.
        preparation = route.preparation
        assert preparation is not None
        try:
            waiting = preparation.before(request)
        except BaseException as exc:
            self._fail(request, exc)
            return
        if waiting is None:
            self._call_prepared(request, route, None)
        else:
            waiting.then(partial(self._call_prepared, request, route))

    def _call_prepared(self, request: Request, route: Route, error: BaseException | None) -> None:
        if error is not None:
            self._fail(request, error)
            return
        conn = request.conn
        if conn is not None and conn.closed:  # the client left while the request waited
            self._fail(request, ClientDisconnected("the client closed the connection"))
            return
        preparation = route.preparation
        assert preparation is not None
        token = current_request.set(request)
        try:
            result = self._call_inline(request, route)
            waiting = preparation.after(request)
        except BaseException as exc:
            self._fail(request, exc)
            return
        finally:
            current_request.reset(token)
        if waiting is None:
            self._respond(request, result)
        else:
            waiting.then(partial(self._prepared_done, request, result))

    def _prepared_done(self, request: Request, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._fail(request, error)
        else:
            self._respond(request, result)

    def _run_in_thread(self, request: Request, route: Route) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.config.blocking_threads, thread_name_prefix="dibble-blocking"
            )
        context = contextvars.copy_context()
        context.run(current_request.set, request)

        def call() -> Any:
            args, kwargs = _bind(request, route)
            result = route.func(*args, **kwargs)
            if request.head_hooks is not None:
                # In this thread, so that a session store's I/O stays off the loop.
                result = run_head_hooks(request, result)
            return result

        future = self._executor.submit(context.run, call)
        loop = request.conn.loop if request.conn else asyncio.get_running_loop()

        def done(f: Future[Any]) -> None:
            loop.call_soon_threadsafe(self._thread_done, request, f)

        future.add_done_callback(done)

    def _thread_done(self, request: Request, future: Future[Any]) -> None:
        try:
            result = future.result()
        except BaseException as exc:
            self._fail(request, exc)
            return
        self._respond(request, result)

    def close(self) -> None:
        """Release the thread pool (waiting for running methlets)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    # --- responses -----------------------------------------------------------------

    def _respond(self, request: Request, result: Any) -> None:
        """Send ``result``; anything that cannot be rendered becomes a 500."""
        try:
            self._render(request, result)
        except Exception as exc:
            # Rendering fails before anything is written (encoding, JSON,
            # header checks all come first), so an error page can still go out.
            self._fail(request, exc)
        if request.form is not None:
            request.form.close()  # the request's temporary upload files go now
        if (request.writer is not None or request.session_state is not None) and (
            type(result) in _COMPLETE or not hasattr(type(result), "__dibble_send__")
        ):
            # The response is complete (a file may still be on its way: not
            # then).  The writer and the sessions refer back to the request;
            # letting go of them here frees it at once, not in the cyclic
            # garbage collector's next round.
            state = request.session_state
            if state is not None:
                state.finished()
            request.writer = None

    def _render(self, request: Request, result: Any) -> None:
        conn = request.conn
        assert conn is not None
        keep_alive = request.keep_alive and not conn.closing
        writer = request.writer
        extra = b""
        if request.head_hooks is not None:
            # Sessions save here and add their fields (Set-Cookie, Vary).
            kind = type(result)
            if (writer is None or not writer.started) and (
                kind is str
                or kind is bytes
                or kind is dict
                or kind is list
                or (kind is Response and result.status == 200 and not result.headers)
            ):
                # The common answers stay on the quick way below, with the
                # hooks' fields added to the head.
                fields: list[tuple[str, str]] = []
                run_hooks_on(request, fields)
                if fields:
                    extra = encode_extra_fields(fields)
            else:
                result = run_head_hooks(request, result)
        if writer is not None and writer.started:
            if result is not None:
                raise TypeError(
                    f"{request.route.name if request.route else 'methlet'} both wrote a "
                    "response and returned a value; do one or the other"
                )
            data, keep_alive = writer.finish_bytes(conn, keep_alive)
            conn.write(data)
            conn.finish(writer.status, writer.sent_bytes, keep_alive)
            return
        kind = type(result)
        if kind is str:
            route = request.route
            assert route is not None
            body = result.encode("utf-8")
            self._send_ok(request, conn, route.str_type + extra, body, keep_alive)
        elif kind is bytes:
            route = request.route
            assert route is not None
            self._send_ok(request, conn, route.bytes_type + extra, result, keep_alive)
        elif kind is dict or kind is list:
            self._send_ok(request, conn, JSON_FIELD + extra, encode_json(result), keep_alive)
        elif kind is Response and result.status == 200 and not result.headers:
            content_type = result.content_type
            if content_type is None:
                route = request.route
                assert route is not None
                type_field = route.bytes_type
            else:
                type_field = _TYPE_FIELDS.get(content_type) or _type_field(content_type)
            self._send_ok(request, conn, type_field + extra, result.body, keep_alive)
        elif isinstance(result, Response):
            self._send_response(request, conn, result, keep_alive)
        elif result is None:
            self._send_response(request, conn, Response(b"", 204), keep_alive)
        elif hasattr(kind, "__dibble_send__"):
            # A response that sends itself (a file: ranges, sendfile, streaming).
            result.__dibble_send__(request, conn, keep_alive)
        else:
            raise TypeError(
                f"a methlet returned {type(result).__name__}; return str, bytes, "
                "dict, list, a Response, or None after writing"
            )

    def _send_ok(
        self, request: Request, conn: HTTPProtocol, type_field: bytes, body: bytes, keep: bool
    ) -> None:
        # The common case, rendered with one formatting operation: every piece
        # is a constant or was validated when it was first made.
        if keep:
            connection = b"" if request.version == "1.1" else KEEP_ALIVE_FIELD
        else:
            connection = CLOSE_FIELD
        size = len(body)
        if request.method == "HEAD":
            data = _OK_HEAD % (type_field, size, connection, conn.date_field)
        else:
            data = _OK_RESPONSE % (type_field, size, connection, conn.date_field, body)
        out = conn.out
        if out is not None:
            out.append(data)
        else:
            conn.write(data)
        conn.finish(200, size, keep)

    def _send_response(
        self, request: Request, conn: HTTPProtocol, response: Response, keep: bool
    ) -> None:
        send_response(request, conn, response, keep)

    # --- failures -------------------------------------------------------------------

    def _fail(self, request: Request, exc: BaseException) -> None:
        conn = request.conn
        assert conn is not None
        writer = request.writer
        if request.form is not None:
            request.form.close()
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            # A "shutdown" page: send what it wrote, then stop the server.
            conn.closing = True
            if writer is not None and writer.started:
                self._respond(request, None)
            else:
                self._send_error(request, conn, Response(b"", 204))
            self._on_exit()
            return
        if isinstance(exc, asyncio.CancelledError | GeneratorExit | ClientDisconnected):
            conn.abort()
            return
        if writer is not None and writer.streaming:
            error_log.error(
                "error after the response head was sent for %s; dropping the connection",
                _describe(request),
                exc_info=exc,
            )
            conn.abort()
            return
        if isinstance(exc, HTTPError):
            page = error_page(exc.status, exc.message)
            response = Response(_safe(page), exc.status, exc.headers, _HTML)
        else:
            error_log.error("error in %s", _describe(request), exc_info=exc)
            detail = "".join(traceback.format_exception(exc)) if self.test_mode else None
            page = error_page(500, "The server hit an internal error.", detail)
            response = Response(_safe(page), 500, content_type=_HTML)
        request.writer = None
        request.head_hooks = None  # (a methlet that failed runs none)
        self._send_error(request, conn, response)

    def _send_error(self, request: Request, conn: HTTPProtocol, response: Response) -> None:
        keep = request.keep_alive and not conn.closing
        try:
            self._send_response(request, conn, response, keep)
        except Exception:
            # Only a bad header given to HTTPError could land here.
            error_log.exception("cannot send the error page for %s", _describe(request))
            fallback = Response(error_page(500), 500)
            self._send_response(request, conn, fallback, keep)

    def _warn_slow(self, route: Route, elapsed: float) -> None:
        if route.name in self._warned_slow:
            return
        self._warned_slow.add(route.name)
        error_log.warning(
            "%s blocked the event loop for %.3f s; mark it @dibble.blocking "
            "(or make it async) so other requests are not held up",
            route.name,
            elapsed,
        )


def send_response(request: Request, conn: HTTPProtocol, response: Response, keep: bool) -> None:
    """Write ``response`` to ``conn`` and finish the request.

    Raises (before writing anything) for a header with CR or LF, which
    would split the response.
    """
    status = response.status
    body = response.body
    if status in _NO_BODY_STATUSES or status < 200:
        body = b""
    if response.content_type is not None:
        type_field = content_type_field(response.content_type)
    elif not body or has_field(response.headers, "content-type"):
        type_field = b""
    else:
        route = request.route
        type_field = route.bytes_type if route is not None else HTML_FIELD
    head = render_head(
        status,
        type_field,
        response.headers,
        len(body),
        connection_field(keep, request.version),
        conn.date_field,
    )
    if request.method == "HEAD":
        body = b""
    conn.write(head + body if len(body) < 65536 else head)
    if len(body) >= 65536:
        conn.write(body)
    conn.finish(status, len(body), keep)


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that cannot suspend (``never_suspends``) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a methlet judged never to suspend did suspend")


def _start_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """Run ``coro`` as a task; from Python 3.12 on, its first step runs at once."""
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    return loop.create_task(coro)


# An async methlet that returns without awaiting then costs no loop iteration.
_EAGER: Final = sys.version_info >= (3, 12)

_TYPE_FIELDS: dict[str, bytes] = {}


def _type_field(content_type: str) -> bytes:
    """The Content-Type line for ``content_type``, validated once and cached."""
    field = content_type_field(content_type)
    if len(_TYPE_FIELDS) < 512:
        _TYPE_FIELDS[content_type] = field
    return field


_HTML: Final = "text/html; charset=utf-8"


def _safe(page: str) -> bytes:
    # An error page may quote text that is not valid Unicode (a lone
    # surrogate from a methlet); it must render all the same.
    return page.encode("utf-8", errors="replace")


def _bind(request: Request, route: Route) -> tuple[list[Any], dict[str, Any]]:
    if route.unknown:
        return [request.path, request.params], {}
    binder = route.binder
    fields = request.params if binder.needs_params else {}
    if request.form is not None and request.form.files and binder.needs_params:
        # Uploaded files bind like fields: ``Upload`` parameters and ``**params``.
        fields = {**fields, **request.form.files}  # type: ignore[dict-item]
    return binder.bind(route.segments, fields)


def _describe(request: Request) -> str:
    route = request.route
    where = route.name if route is not None else "?"
    return f"{where} ({request.method} {request.target.decode('latin-1')})"
