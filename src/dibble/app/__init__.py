"""The application layer: plugins, methlets, requests and responses."""

from ._dispatch import Dispatcher
from ._errors import HTTPError, ParameterError
from ._pages import error_page
from ._plugin import Plugin, blocking, current_request, get_request, max_body_size
from ._request import Request
from ._response import Response
from ._routing import Route, Router, methlet_name
from ._server import HTTPServer
from ._writer import ResponseWriter

__all__ = [
    "Dispatcher",
    "HTTPError",
    "HTTPServer",
    "ParameterError",
    "Plugin",
    "Request",
    "Response",
    "ResponseWriter",
    "Route",
    "Router",
    "blocking",
    "current_request",
    "error_page",
    "get_request",
    "max_body_size",
    "methlet_name",
]
