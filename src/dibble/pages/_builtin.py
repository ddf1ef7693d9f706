"""The built-in pages: Forward, ErrorPage and Info.

* ``Forward`` sends the browser to another URL: with an HTTP redirect, or
  (``delay`` > 0) with a page that says where it is going and follows after
  a few seconds.  ``Forward.to(url)`` is the same as a response helper.
* ``ErrorPage`` renders dibble's styled page for any status; as a service,
  ``/error?status=404`` shows the page for that status.
* ``Info`` is the example of a page filled from a template: the server, the
  request, its arguments and header fields.
"""

from __future__ import annotations

from html import escape
from typing import ClassVar
from urllib.parse import urlsplit

from .._version import __version__
from ..app import Response
from ..http import reason_phrase
from ..templates import Template, TrustedHTML
from ._page import PAGE_CSS, Page, PageResult, _template_dir_of

__all__ = ["ErrorPage", "Forward", "Info", "forward"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Header fields the info page does not show: they carry credentials.
_HIDDEN = frozenset({"cookie", "authorization", "proxy-authorization"})


def _check_url(url: str) -> None:
    if any(c in url for c in "\r\n\0") or urlsplit(url).scheme.lower() not in (
        "",
        "http",
        "https",
    ):
        raise ValueError(f"cannot forward to {url!r}: only http(s) and relative URLs")


def _document(title: str, body: str, extra_head: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{PAGE_CSS}</style>{extra_head}</head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def forward(url: str, status: int = 303, *, delay: int = 0, message: str = "") -> Response:
    """A response that sends the client to ``url``.

    With ``delay`` 0 it is an HTTP redirect (``status``: 303 by default;
    301, 302, 307 or 308) whose body links to ``url`` for clients that do not
    follow.  With ``delay`` > 0 it is a 200 page showing ``message`` that
    follows after ``delay`` seconds.  Only http(s) and relative URLs are
    accepted, so a URL taken from a request cannot become a script.
    """
    _check_url(url)
    link = escape(url)
    text = escape(message) if message else "You are being forwarded."
    body = f"<h1>Forwarding</h1><p>{text}</p><p><a href='{link}'>{link}</a></p>"
    if delay > 0:
        refresh = f"<meta http-equiv='refresh' content='{int(delay)};url={link}'>"
        return Response(_document("Forwarding", body, refresh), 200)
    if status not in _REDIRECTS:
        raise ValueError(f"not a redirect status: {status}")
    return Response(_document("Forwarding", body), status, [("Location", url)])


class Forward(Page):
    """A page that forwards to ``url`` (a class attribute; override ``target()``
    to choose per request).  ``delay`` > 0 shows ``message`` first."""

    url: ClassVar[str] = "/"
    redirect_status: ClassVar[int] = 303
    delay: ClassVar[int] = 0
    message: ClassVar[str] = ""

    def target(self) -> str:
        """Where this request is sent."""
        return self.url

    def get_html(self) -> PageResult:
        return forward(self.target(), self.redirect_status, delay=self.delay, message=self.message)

    @staticmethod
    def to(url: str, status: int = 303, *, delay: int = 0, message: str = "") -> Response:
        """``forward(url, ...)``: the forward page as a response helper."""
        return forward(url, status, delay=delay, message=message)


def error_response(status: int, message: str = "") -> Response:
    """dibble's styled error page for ``status`` (any code from 400 to 599)."""
    if not 400 <= status <= 599:
        raise ValueError(f"not an error status: {status}")
    reason = reason_phrase(status)
    body = f"<h1>{status} {escape(reason)}</h1>"
    if message:
        body += f"<p>{escape(message)}</p>"
    body += "<footer>dibble</footer>"
    return Response(_document(f"{status} {reason}", body), status)


class ErrorPage(Page):
    """The styled error page: ``status`` from the ``status`` argument or the class."""

    status: ClassVar[int] = 404
    message: ClassVar[str] = ""

    def get_html(self) -> PageResult:
        text = self.get_arg("status")
        status = self.status
        if text.isascii() and text.isdigit() and 400 <= int(text) <= 599:
            status = int(text)
        return error_response(status, self.message)

    @staticmethod
    def response(status: int, message: str = "") -> Response:
        """The page for ``status`` as a response (e.g. from ``on_unknown``)."""
        return error_response(status, message)


class Info(Page):
    """What the server knows about this request, from the ``info.html`` template."""

    title = "Server information"
    template = "info.html"
    template_dir = _template_dir_of(__file__)

    def fill_template(self, template: Template) -> None:
        request = self.request
        settings = self.settings
        template.set_variables(
            {
                "TITLE": self.title,
                "STYLE": TrustedHTML(PAGE_CSS),
                "SERVER_NAME": settings.server.name if settings is not None else "dibble",
                "VERSION": __version__,
                "URL_NAME": self.url_name,
                "CLIENT": request.client_ip or "unknown",
                "METHOD": request.method,
                "PATH": request.path,
                "SCHEME": request.scheme,
            }
        )
        for name, values in sorted(self.args.items()):
            template.begin_block("ARG")
            template.set_block_variable("NAME", name)
            for value in values:
                template.insert_block("VALUE", {"TEXT": value})
            template.update_block("ARG")
        for name, value in sorted(request.headers.items()):
            shown = "(hidden)" if name in _HIDDEN else value
            template.insert_block("HEADER", {"NAME": name, "VALUE": shown})
