"""Putting statistics into a server, and the run-time toggles of its logs.

``install`` is called by ``HTTPServer`` when it starts (``application``):
it makes the ``Statistics`` that ``[statistics]`` asks for (unless one was
set on the server), hands its observer to the dispatcher (the listener
takes it from there), and has the dispatcher time every request (it sets
``Request.started``, which latency and the performance log need).  With
statistics and the request log both off, nothing is added: the hot path
pays one attribute test in ``HTTPProtocol.finish``.

The toggles (``set_toggle``) are what the admin Config page switches,
at once and without a restart:

``verbose``
    the error log at DEBUG level (off: the configured ``[logging] level``);
``sql_log``
    every statement run through ``dibble.db`` to the ``dibble.sql`` logger;
``performance_log``
    the time each request took to the ``dibble.performance`` logger.

Loggers belong to the process, so ``verbose`` and ``sql_log`` apply to every
server in it; ``performance_log`` also needs each server's requests timed,
which ``set_toggle`` arranges for the server it is given.  When
``dibble serve`` configured the log files, a log switched on at run time
gets its file (``sql.log``, ``performance.log`` in ``[logging] directory``)
or the screen, as ``configure_logging`` would have done; a program that
configures logging itself gets the records on the loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from ..db import database_path, set_sql_logging, sql_log, sql_logging
from ..server import HTTPProtocol
from ._bots import BotDetector
from ._collector import write_performance
from ._statistics import Statistics, reverse_dns
from ._stores import open_stats_store

if TYPE_CHECKING:
    from ..app import HTTPServer
    from ..app._dispatch import Dispatcher
    from ..config import Config
    from ..http import RequestHead

__all__ = [
    "TOGGLES",
    "install",
    "set_toggle",
    "statistics_from_config",
    "statistics_of",
    "toggles",
]

error_log: Final = logging.getLogger("dibble.error")
performance_log: Final = logging.getLogger("dibble.performance")

#: The names ``set_toggle`` and ``toggles`` know.
TOGGLES: Final = ("verbose", "sql_log", "performance_log")

_TIMED: Final = "__dibble_timed__"


def statistics_of(server: HTTPServer) -> Statistics | None:
    """The server's ``Statistics``; None when statistics are off (or it is not running)."""
    stats: Statistics | None = getattr(server, "statistics", None)
    if stats is None or not stats.counting or stats.closed:
        return None
    return stats


def statistics_from_config(config: Config) -> Statistics | None:
    """The ``Statistics`` that ``[statistics]`` asks for; None when it asks for none."""
    section = config.statistics
    if not section.enabled and not section.request_log:
        return None
    store = None
    if section.enabled:
        store = open_stats_store(
            section.store, data_dir=config.paths.data_dir, root=config.paths.root
        )
    request_log = None
    if section.request_log:
        path = database_path(config)
        if path is None:
            error_log.warning(
                "the request log is on but there is no database: set [database] url or "
                "[paths] data_dir; requests are not logged"
            )
        else:
            from ..db import Database

            def request_log(path: str = path) -> Database:
                return Database(path)

    rdns = (
        reverse_dns(section.bot_domains, section.reverse_dns_ttl) if section.reverse_dns else None
    )
    return Statistics(
        store,
        counting=section.enabled,
        request_log=request_log,
        request_log_bots=section.request_log_bots,
        request_log_buffer=section.request_log_buffer,
        request_log_days=section.request_log_days,
        masked_args=section.masked_args,
        bots=BotDetector(section.bot_agents, reverse_dns=rdns),
        max_keys=section.max_counters,
        flush_interval=section.flush_interval,
        log_interval=section.request_log_interval,
        project_cookie=f"{config.server.name}_project",
    )


def install(server: HTTPServer, dispatcher: Dispatcher) -> None:
    """Called when ``server`` starts: statistics and timing, as configured."""
    settings = server.site.settings
    if settings.logging.sql_log and not sql_logging():
        set_toggle(server, "sql_log", True)
    stats: Statistics | None = server.statistics
    if stats is not None and stats.closed:
        stats = server.statistics = None
    if stats is None:
        try:
            stats = statistics_from_config(settings)
        except Exception:
            # Statistics are worth a message, not a server that does not start.
            error_log.exception("statistics: cannot start them; serving without")
            stats = None
        if stats is not None:
            stats.made_by_default = True
            server.statistics = stats
    if stats is None:
        return
    stats.bind_loop(_running_loop())
    _time_requests(dispatcher)
    # The dispatcher declares no such attribute: the listener looks it up.
    setattr(dispatcher, "observer", stats.observer)  # noqa: B010
    if performance_log.isEnabledFor(logging.INFO) and not server.config.access_log:
        stats.collector.performance = True


def uninstall(server: HTTPServer) -> None:
    """Called when ``server`` stopped: a last flush, and the statistics it made go."""
    stats: Statistics | None = server.statistics
    if stats is None:
        return
    stats.close()
    if stats.made_by_default:
        server.statistics = None


def _running_loop() -> Any:
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _time_requests(dispatcher: Dispatcher, *, at_dispatch: bool = False) -> None:
    """Have ``dispatcher``'s requests carry ``Request.started`` (once).

    At start-up the parser's head factory sets it, when the request's first
    byte is read: one clock call in a frame that runs anyway.  Parsers made
    before (a toggle switched while serving) keep their factory, so then
    ``dispatch`` sets it instead, when the request reaches the application.
    """
    from ..app import Request
    from ..app._dispatch import Dispatcher as PlainDispatcher

    gate = getattr(dispatcher, "gate", None)
    if (
        getattr(dispatcher.new_head, _TIMED, False)
        or getattr(dispatcher.dispatch, _TIMED, False)
        or getattr(gate, "performance", False)
    ):
        return
    if not at_dispatch and type(dispatcher).new_head is PlainDispatcher.new_head:

        def timed_head(clock: Callable[[], float] = perf_counter) -> RequestHead:
            head = Request()
            head.started = clock()
            return head

        setattr(timed_head, _TIMED, True)
        dispatcher.new_head = timed_head  # type: ignore[method-assign]
        return
    dispatch = dispatcher.dispatch

    def timed_dispatch(
        head: RequestHead,
        body: bytes,
        conn: HTTPProtocol,
        dispatch: Callable[[RequestHead, bytes, HTTPProtocol], None] = dispatch,
        clock: Callable[[], float] = perf_counter,
    ) -> None:
        head.started = clock()  # type: ignore[attr-defined]
        dispatch(head, body, conn)

    setattr(timed_dispatch, _TIMED, True)
    dispatcher.dispatch = timed_dispatch  # type: ignore[method-assign]


# --- the toggles -------------------------------------------------------------------------


def toggles(server: HTTPServer) -> dict[str, bool]:
    """Whether each toggle is on now (for the server's performance log)."""
    error = logging.getLogger("dibble")
    stats = getattr(server, "statistics", None)
    performance = performance_log.isEnabledFor(logging.INFO) and (
        server.config.access_log
        or (stats is not None and stats.collector.performance)
        or _performance_observer(server) is not None
    )
    return {
        "verbose": error.getEffectiveLevel() <= logging.DEBUG,
        "sql_log": sql_logging(),
        "performance_log": bool(performance),
    }


def set_toggle(server: HTTPServer, name: str, on: bool) -> None:
    """Switch toggle ``name`` (one of ``TOGGLES``) on or off, at once."""
    if name == "verbose":
        _set_verbose(server, on)
    elif name == "sql_log":
        if on:
            _ensure_handler(server, sql_log, "sql.log", "%(asctime)s %(message)s")
        set_sql_logging(on)
    elif name == "performance_log":
        _set_performance(server, on)
    else:
        raise ValueError(f"unknown toggle {name!r}; the toggles are {', '.join(TOGGLES)}")


def _set_verbose(server: HTTPServer, on: bool) -> None:
    error = logging.getLogger("dibble")
    if on:
        error.setLevel(logging.DEBUG)
        return
    settings = server.site.settings
    error.setLevel(logging.DEBUG if settings.server.test_mode else settings.logging.level)


def _set_performance(server: HTTPServer, on: bool) -> None:
    if on:
        _ensure_handler(server, performance_log, "performance.log", "%(message)s")
        performance_log.setLevel(logging.INFO)
    else:
        performance_log.setLevel(logging.WARNING)
    dispatcher = getattr(server, "_dispatcher", None)
    if dispatcher is None:
        return  # not started: install() looks at the logger's level then
    if on:
        _time_requests(dispatcher, at_dispatch=bool(server.listeners))
    if server.config.access_log:
        return  # the access log's call writes the performance lines too
    stats: Statistics | None = getattr(server, "statistics", None)
    if stats is not None and not stats.closed:
        stats.collector.performance = on
        return
    observer = _PerformanceObserver() if on else None
    setattr(dispatcher, "observer", observer)  # noqa: B010
    for listener in server.listeners:
        listener.set_observer(observer)


def _performance_observer(server: HTTPServer) -> _PerformanceObserver | None:
    dispatcher = getattr(server, "_dispatcher", None)
    observer = getattr(dispatcher, "observer", None)
    return observer if isinstance(observer, _PerformanceObserver) else None


class _PerformanceObserver:
    """Writes performance lines for a server without statistics or an access log."""

    def response(
        self, client: tuple[str, int] | None, head: RequestHead | None, status: int, size: int
    ) -> None:
        write_performance(client, head, status)

    def invalid(
        self, client: tuple[str, int] | None, head: RequestHead | None, status: int
    ) -> None:
        pass


def _ensure_handler(server: HTTPServer, logger: logging.Logger, file: str, fmt: str) -> None:
    """Give ``logger`` its own file or the screen, if ``dibble serve`` set up the logs."""
    from .. import _logging

    marked = [h for h in logging.getLogger("dibble").handlers if getattr(h, "_dibble", False)]
    if not marked or any(getattr(h, "_dibble", False) for h in logger.handlers):
        return  # logging is the program's business, or the handler is there already
    settings = server.site.settings
    to_files = bool(settings.logging.directory) and not settings.server.test_mode
    try:
        handler = (
            _logging._file_handler(settings.logging, file) if to_files else logging.StreamHandler()
        )
    except OSError as exc:
        error_log.error("cannot open %s: %s", file, exc)
        return
    _logging._attach(logger, handler, fmt)
    logger.propagate = False
