"""The application layer: plugins, methlets, requests and responses."""

from ._dispatch import Dispatcher
from ._errors import HTTPError, ParameterError
from ._pages import error_page
from ._plugin import Plugin, blocking, current_request, get_request, max_body_size
from ._request import Request
from ._response import Response
from ._routing import (
    ASYNC,
    INLINE,
    PREPARED,
    THREAD,
    Endpoint,
    Guard,
    Pending,
    Preparation,
    Route,
    Router,
    methlet_name,
)
from ._server import HTTPServer
from ._site import Site, server_of
from ._writer import ResponseWriter

__all__ = [
    "ASYNC",
    "INLINE",
    "PREPARED",
    "THREAD",
    "Dispatcher",
    "Endpoint",
    "Guard",
    "HTTPError",
    "HTTPServer",
    "ParameterError",
    "Pending",
    "Plugin",
    "Preparation",
    "Request",
    "Response",
    "ResponseWriter",
    "Route",
    "Router",
    "Site",
    "blocking",
    "current_request",
    "error_page",
    "get_request",
    "max_body_size",
    "methlet_name",
    "server_of",
]
