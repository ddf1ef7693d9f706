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
from .config import Config, ConfigError, load_config
from .cookies import Cookie
from .files import StaticFiles, StaticOptions, UploadProgress, send_file, url_list
from .http import Limits
from .pages import ErrorPage, Forward, Info, Page, forward
from .server import ClientDisconnected, Context, ServerConfig, run
from .sessions import Session, SessionPool
from .templates import Template, TemplateError, TemplateLoader, TrustedHTML
from .uploads import Upload, UploadOptions, upload_options
from .urlobject import BadURLObject, url_decode_object, url_encode_object

__all__ = [
    "BadURLObject",
    "ClientDisconnected",
    "Config",
    "ConfigError",
    "Context",
    "Cookie",
    "ErrorPage",
    "Forward",
    "HTTPError",
    "HTTPServer",
    "Info",
    "Limits",
    "Page",
    "ParameterError",
    "Plugin",
    "Request",
    "Response",
    "ServerConfig",
    "Session",
    "SessionPool",
    "StaticFiles",
    "StaticOptions",
    "Template",
    "TemplateError",
    "TemplateLoader",
    "TrustedHTML",
    "Upload",
    "UploadOptions",
    "UploadProgress",
    "__version__",
    "blocking",
    "forward",
    "get_request",
    "load_config",
    "max_body_size",
    "run",
    "send_file",
    "upload_options",
    "url_decode_object",
    "url_encode_object",
    "url_list",
]
