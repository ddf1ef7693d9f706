"""The Dibbler API on top of dibble, for porting Dibbler programs.

A Dibbler program runs once its ``import Dibbler`` becomes
``from dibble.compat import dibbler as Dibbler`` (and its code is Python 3)::

    class Calendar(Dibbler.HTTPPlugin):
        def onHome(self, year=None):
            self.writeOKHeaders('text/html')
            self.write(...)

    httpServer = Dibbler.HTTPServer(8888)
    httpServer.register(Calendar())
    Dibbler.run(launchBrowser=True)

Differences worth knowing: like Dibbler, ``HTTPServer(port)`` listens on all
interfaces (dibble's own default is 127.0.0.1); methlets run on the event
loop unless marked blocking, exactly as Dibbler's ran in its asyncore loop.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, ClassVar

from .. import app
from ..server import Context
from ..server import run as _run

__all__ = ["Context", "HTTPPlugin", "HTTPServer", "run"]


class HTTPPlugin(app.Plugin):
    """Dibbler's plugin base class, with its camelCase writers."""

    _not_methlets: ClassVar[frozenset[str]] = app.Plugin._not_methlets | {"onIncomingConnection"}

    def writeOKHeaders(
        self, contentType: str, extraHeaders: Mapping[str, str] | None = None
    ) -> None:
        """Start a 200 response of ``contentType``."""
        self.write_ok_headers(contentType, extraHeaders)

    def writeError(self, code: int, message: str) -> None:
        """Answer with an error page."""
        self.write_error(code, message)

    def onIncomingConnection(self, clientSocket: socket.socket) -> bool:
        """Return False to refuse the connection before anything is read."""
        return True

    def on_incoming_connection(self, sock: socket.socket) -> bool:
        return self.onIncomingConnection(sock)

    def _vetoes_connections(self) -> bool:
        return type(self).onIncomingConnection is not HTTPPlugin.onIncomingConnection


class HTTPServer(app.HTTPServer):
    """Dibbler's server: ``HTTPServer(port, context=None)``, all interfaces."""

    def __init__(
        self, port: int | tuple[str, int], context: Context | None = None, **settings: Any
    ) -> None:
        address = port if isinstance(port, tuple) else ("", port)
        super().__init__(address, context, **settings)


def run(launchBrowser: bool = False, context: Context | None = None) -> None:
    """Serve until stopped; ``launchBrowser`` opens the first server's page."""
    _run(context, launch_browser=launchBrowser)
