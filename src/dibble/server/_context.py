"""``Context``: an event loop and the servers it runs, in one thread.

Several contexts can run side by side in different threads, each with its
own loop; ``run`` blocks the calling thread until the context is stopped by
``stop()`` (from any thread), SIGTERM/SIGINT (when run in the main thread),
or a methlet raising ``SystemExit``.  Stopping is graceful: every listener
stops accepting, idle connections close, in-flight requests get the grace
period to finish.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import webbrowser
from collections.abc import Callable
from typing import Final, Protocol

from ._config import ServerConfig
from ._listener import Listener
from ._protocol import Application

error_log: Final = logging.getLogger("dibble.error")
server_log: Final = logging.getLogger("dibble.server")

#: The cyclic collector's first threshold while serving: a young-generation
#: collection after this many more container objects made than freed
#: (CPython's default is 700; 2,000 from 3.13).
GC_THRESHOLD: Final = 10_000

# The thresholds as they were when dibble was imported: a program that sets its
# own after that keeps them.
_imported_thresholds: Final = gc.get_threshold()


def relax_gc() -> None:
    """Raise the collector's first threshold to ``GC_THRESHOLD`` if it is still
    the interpreter's default (not 0: automatic collection off).

    At 700, requests that wait for their store (a Redis session, say) are
    alive at nearly every young collection, which walks them and moves them
    to an older generation: about 5% of the server's CPU with sessions in
    Redis.  With 10,000 most of them are answered and freed before the next
    one (0.3%).  A young collection walks only what is still alive, so its
    pauses grow with what a program keeps, not with what it makes and frees.
    """
    thresholds = gc.get_threshold()
    first, *older = thresholds
    if thresholds == _imported_thresholds and 0 < first < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, *older)


class Site(Protocol):
    """What a context needs from a server object (``dibble.HTTPServer``)."""

    @property
    def config(self) -> ServerConfig: ...

    def application(self, stop: Callable[[], None]) -> Application:
        """The application to serve; ``stop`` ends the whole context."""

    def listening(self, listener: Listener) -> None:
        """Called once the site's socket is bound."""

    def closed(self) -> None:
        """Called after the context stopped serving the site."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Context:
    """A set of servers sharing one event loop and one thread."""

    def __init__(self) -> None:
        self.sites: list[Site] = []
        self.listeners: list[Listener] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, site: Site) -> None:
        if site not in self.sites:
            self.sites.append(site)

    def remove(self, site: Site) -> None:
        if site in self.sites:
            self.sites.remove(site)

    @property
    def running(self) -> bool:
        return self._ready.is_set() and not self._stop_requested

    def run(self, launch_browser: bool = False) -> None:
        """Serve every site until stopped; returns after a clean shutdown."""
        if not self.sites:
            raise RuntimeError("nothing to serve: create an HTTPServer in this context first")
        loop = self.loop = new_event_loop()
        self._stop_requested = False
        try:
            loop.run_until_complete(self._serve(launch_browser))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self.loop = None
                self._ready.clear()

    async def _serve(self, launch_browser: bool) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self.listeners = []
        # Before the first port opens: a SIGTERM sent as soon as it answers (by a
        # process manager, or a script that waits for the port) stops the
        # server cleanly instead of killing it by the signal's default action.
        signals = self._install_signal_handlers(loop)
        try:
            try:
                for site in self.sites:
                    listener = Listener(site.application(self.stop), site.config, loop)
                    await listener.start()
                    self.listeners.append(listener)
                    site.listening(listener)
                    for host, port in listener.addresses:
                        server_log.info("listening on http://%s:%d/", _url_host(host), port)
            except BaseException:
                await self._shutdown()
                raise
            # Everything made so far (modules, plugins, compiled templates) lives
            # as long as the server: move it out of the collector's sight, so a
            # full collection walks only what requests create, not the whole
            # program (a pause of tens of milliseconds otherwise).
            gc.freeze()
            relax_gc()
            self._ready.set()
            if launch_browser and self.listeners:
                host, port = self.listeners[0].addresses[0]
                url = f"http://{_url_host(host)}:{port}/"
                loop.run_in_executor(None, webbrowser.open, url)
            try:
                if not self._stop_requested:
                    await self._stop_event.wait()
            finally:
                await self._shutdown()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def _shutdown(self) -> None:
        await asyncio.gather(*(listener.shutdown() for listener in self.listeners))
        # Methlets still running after the grace period lost their clients;
        # cancel them so none is left pending when the loop closes.
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        for site in self.sites:
            try:
                site.closed()
            except Exception:
                error_log.exception("error while closing %r", site)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        installed: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not POSIX
                continue
            installed.append(sig)
        return installed

    def stop(self) -> None:
        """Ask the context to shut down gracefully; safe from any thread."""
        self._stop_requested = True
        loop = self.loop
        event = self._stop_event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    # --- running in a background thread (tests, embedding) ----------------------

    def start_in_thread(self, timeout: float = 10.0) -> None:
        """Run in a daemon thread; returns once every site is listening."""
        errors: list[BaseException] = []

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:
                errors.append(exc)
                self._ready.set()

        self._thread = threading.Thread(target=target, name="dibble-context", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the server did not start listening in time")
        if errors:
            raise errors[0]

    def join(self, timeout: float | None = None) -> None:
        """Stop a context started with ``start_in_thread`` and wait for it."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - a comparison, not a bind
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


default_context: Final = Context()


def run(context: Context | None = None, launch_browser: bool = False) -> None:
    """Run ``context`` (the default one if None) until it is stopped."""
    (context or default_context).run(launch_browser=launch_browser)
