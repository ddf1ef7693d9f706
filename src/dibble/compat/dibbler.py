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

HTTP authentication works as in Dibbler: a subclass of ``HTTPServer``
overrides ``requestAuthenticationMode`` (asked on every request) and the
hooks ``isValidUser``, ``getPasswordForUser``, ``getRealm`` and
``getCancelMessage``; dibble's ``HTTPAuth`` does the protocol (Digest now
offers SHA-256 after Dibbler's MD5, with expiring, replay-proof nonces).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, ClassVar

from .. import app
from ..auth import HTTPAuth
from ..auth._http import Scheme
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
    """Dibbler's server: ``HTTPServer(port, context=None)``, all interfaces.

    Override ``requestAuthenticationMode`` and the other hooks below to ask
    for HTTP authentication, as in Dibbler.
    """

    NO_AUTHENTICATION = "None"
    BASIC_AUTHENTICATION = "Basic"
    DIGEST_AUTHENTICATION = "Digest"

    def __init__(
        self, port: int | tuple[str, int], context: Context | None = None, **settings: Any
    ) -> None:
        address = port if isinstance(port, tuple) else ("", port)
        super().__init__(address, context, **settings)
        # Only a server that asks for authentication pays for the check.
        if type(self).requestAuthenticationMode is not HTTPServer.requestAuthenticationMode:
            self.http_auth = _DibblerAuth(self)

    def requestAuthenticationMode(self) -> str:
        """Override: ``NO_AUTHENTICATION``, ``BASIC_AUTHENTICATION`` or
        ``DIGEST_AUTHENTICATION``, asked on every request."""
        return self.NO_AUTHENTICATION

    def isValidUser(self, name: str, password: str) -> bool:
        """Override: whether ``name`` may log in with ``password`` (Basic)."""
        return True

    def getPasswordForUser(self, name: str) -> str:
        """Override: the password of ``name`` (Digest)."""
        return ""

    def getRealm(self) -> str:
        """Override: the authentication realm."""
        return "Dibbler application server"

    def getCancelMessage(self) -> str:
        """Override: the page shown when the user cancels the login dialog."""
        return "You must log in."


class _DibblerAuth(HTTPAuth):
    """dibble's HTTP authentication asking a Dibbler server's hooks."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        # MD5 first: Dibbler offered nothing else, and its clients (Python's
        # urllib among them) answer the first challenge only.
        super().__init__(("digest", "basic"), realm="dibbler", algorithms=("MD5", "SHA-256"))

    def schemes_for(self, request: app.Request) -> tuple[Scheme, ...]:
        mode = self.server.requestAuthenticationMode()
        if mode == HTTPServer.DIGEST_AUTHENTICATION:
            return ("digest",)
        if mode == HTTPServer.BASIC_AUTHENTICATION:
            return ("basic",)
        return ()

    def is_valid_user(self, name: str, password: str) -> bool:
        return bool(self.server.isValidUser(name, password))

    def get_password_for_user(self, name: str) -> str | None:
        return self.server.getPasswordForUser(name)

    def get_realm(self, request: app.Request) -> str:
        return self.server.getRealm()

    def get_cancel_message(self, request: app.Request) -> str:
        return self.server.getCancelMessage()


def run(launchBrowser: bool = False, context: Context | None = None) -> None:
    """Serve until stopped; ``launchBrowser`` opens the first server's page."""
    _run(context, launch_browser=launchBrowser)
