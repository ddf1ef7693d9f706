"""dibble: a batteries-included Python web application server.

Write plain classes; dibble does HTTP and the operations around it::

    import dibble

    class Hello(dibble.Plugin):
        def onHome(self, name: str = "world") -> str:
            return f"<p>Hello, {name}!</p>"

    server = dibble.HTTPServer(8888)
    server.register(Hello())
    dibble.run()
"""

from ._version import __version__
from .app import (
    HTTPError,
    HTTPServer,
    ParameterError,
    Plugin,
    Request,
    Response,
    blocking,
    get_request,
    max_body_size,
)
from .http import Limits
from .server import ClientDisconnected, Context, ServerConfig, run
from .templates import Template, TemplateError, TemplateLoader, TrustedHTML

__all__ = [
    "ClientDisconnected",
    "Context",
    "HTTPError",
    "HTTPServer",
    "Limits",
    "ParameterError",
    "Plugin",
    "Request",
    "Response",
    "ServerConfig",
    "Template",
    "TemplateError",
    "TemplateLoader",
    "TrustedHTML",
    "__version__",
    "blocking",
    "get_request",
    "max_body_size",
    "run",
]
