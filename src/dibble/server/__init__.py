"""The asyncio layer: connections, listeners, contexts and their event loops."""

from ._access import escape_log_text, log_access
from ._config import ServerConfig
from ._context import Context, Site, default_context, new_event_loop, run
from ._listener import Listener
from ._protocol import (
    Application,
    BodySink,
    ClientDisconnected,
    HTTPProtocol,
    ResponseObserver,
)

__all__ = [
    "Application",
    "BodySink",
    "ClientDisconnected",
    "Context",
    "HTTPProtocol",
    "Listener",
    "ResponseObserver",
    "ServerConfig",
    "Site",
    "default_context",
    "escape_log_text",
    "log_access",
    "new_event_loop",
    "run",
]
