"""``Page``: the page-generator class (the Astro-WISE ``HtmlBase``).

A page is a class registered as a service (``server.register_service("info",
Info)``, or ``info = "module:Info"`` in the configuration's ``[services]``).
Every request to ``/info`` makes a fresh instance, so per-request state may
live on ``self`` -- unlike a plugin, which serves all requests with one
object.  The instance has the request's arguments, its cookies and the
server; the response comes from overridable hooks:

* ``get_html()`` returns the body (``str``, ``bytes``, or a ``Response``
  for full control), or writes it with ``write``/``flush`` and returns
  None; it may be ``async def``.  By default it renders ``template``.
* ``content_type``, ``status_code``: attributes, set on the class or on
  ``self`` while the page runs.
* ``additional_headers()`` and ``cookies()`` add header fields and cookies.

Pages and plugins share one routing core: a page class becomes an
``Endpoint`` (``as_endpoint``) mounted at its URL name.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Awaitable, Iterable, Mapping
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import unquote as url_unquote

from ..app import (
    ASYNC,
    INLINE,
    THREAD,
    Endpoint,
    Request,
    Response,
    ResponseWriter,
    get_request,
)
from ..cookies import Cookie, quote_value, unquote_value
from ..urlobject import url_decode_object, url_encode_object

if TYPE_CHECKING:
    from ..app import HTTPServer
    from ..config import Config
    from ..sessions import Session
    from ..templates import Template, TemplateLoader

__all__ = ["PAGE_CSS", "Page", "PageResult"]

PageResult = str | bytes | Response | None

#: The style sheet of dibble's own pages (error, forward, info, maintenance).
PAGE_CSS: Final = (
    "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "main{max-width:48em;margin:3em auto;padding:0 1.5em}"
    "h1{font-size:1.5em;margin-bottom:.5em}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;"
    "text-align:left;vertical-align:top}"
    "pre{background:#f0f0f0;padding:1em;overflow:auto}"
    "footer{margin-top:3em;color:#888;font-size:.85em}"
)

_loaders: dict[str, TemplateLoader] = {}
_loaders_lock: Final = threading.Lock()


def _loader_for(directory: str, test_mode: bool) -> TemplateLoader:
    from ..templates import TemplateLoader

    loader = _loaders.get(directory)
    if loader is None:
        with _loaders_lock:
            loader = _loaders.get(directory)
            if loader is None:
                loader = _loaders[directory] = TemplateLoader(
                    directory, warn_on_not_used_vars=test_mode
                )
    return loader


class Page:
    """Subclass this and override ``get_html`` (or name a ``template``).

    Class attributes: ``content_type``, ``status_code`` and ``title`` (all
    may be changed on ``self`` too); ``template``, a file name looked up in
    ``template_dir`` or else the server's ``[paths] templates``;
    ``blocking = True`` to run a sync page in the thread pool;
    ``max_body_size``; ``subpaths = True`` to also answer ``/name/more/...``
    (the extra segments are ``self.segments``).
    """

    content_type: str = "text/html; charset=utf-8"
    status_code: int = 200
    title: str = ""
    template: str | None = None
    template_dir: ClassVar[str | None] = None
    blocking: ClassVar[bool] = False
    max_body_size: ClassVar[int | None] = None
    subpaths: ClassVar[bool] = False
    #: The name this page's session data is kept under (default: module.Class).
    session_service: ClassVar[str | None] = None
    #: How long this page's session data lives unused, in seconds (None: the pool's).
    session_lifetime: ClassVar[float | None] = None

    def __init__(
        self,
        request: Request,
        *,
        server: HTTPServer | None = None,
        url_name: str = "",
        segments: tuple[str, ...] = (),
    ) -> None:
        self.request = request
        self.server = server
        #: The URL name (service name) this page answered.
        self.url_name = url_name
        #: Path segments after the URL name (only with ``subpaths``).
        self.segments = segments
        self._new_cookies: list[Cookie] = []

    # --- becoming a service ---------------------------------------------------------

    @classmethod
    def as_endpoint(cls, url_name: str, server: HTTPServer) -> Endpoint:
        """The routing core's view of this page class, served at ``/url_name``."""
        if inspect.iscoroutinefunction(cls.get_html):

            async def serve_async(*segments: str) -> Any:
                page = cls(get_request(), server=server, url_name=url_name, segments=segments)
                result = page.get_html()
                return page._finish(await result if inspect.isawaitable(result) else result)

            return Endpoint(serve_async, cls.__qualname__, ASYNC, cls.max_body_size, cls.subpaths)

        def serve(*segments: str) -> Any:
            page = cls(get_request(), server=server, url_name=url_name, segments=segments)
            result = page.get_html()
            if inspect.isawaitable(result):
                raise TypeError(
                    f"{cls.__qualname__}.get_html returned an awaitable; use async def"
                )
            return page._finish(result)

        mode = THREAD if cls.blocking else INLINE
        return Endpoint(serve, cls.__qualname__, mode, cls.max_body_size, cls.subpaths)

    def _finish(self, result: PageResult) -> Response | None:
        writer = self.request.writer
        if writer is not None and writer.started:
            if result is not None:
                raise TypeError(
                    f"{type(self).__qualname__} both wrote a response and returned one; "
                    "do one or the other"
                )
            return None
        fields = self._head_fields()
        if isinstance(result, Response):
            if not fields:
                return result
            return Response(
                result.body, result.status, [*result.headers, *fields], result.content_type
            )
        if result is None:
            result = b""
        if not isinstance(result, str | bytes):
            raise TypeError(
                f"{type(self).__qualname__}.get_html returned {type(result).__name__}; "
                "return str, bytes or a Response (or write and return None)"
            )
        return Response(result, self.status_code, fields, self.content_type)

    def _head_fields(self) -> list[tuple[str, str]]:
        extra = self.additional_headers()
        fields = list(extra.items()) if isinstance(extra, Mapping) else list(extra)
        fields.extend(cookie.header() for cookie in self.cookies())
        return fields

    # --- the hooks --------------------------------------------------------------------

    def get_html(self) -> PageResult | Awaitable[PageResult]:
        """The response body; by default ``template`` filled by ``fill_template``."""
        if self.template:
            template = self.get_template()
            self.fill_template(template)
            return template.get_html()
        raise NotImplementedError(
            f"{type(self).__qualname__} must override get_html() or name a template"
        )

    def fill_template(self, template: Template) -> None:
        """Set the variables and blocks of ``template`` before it is rendered."""

    def additional_headers(self) -> Mapping[str, str] | Iterable[tuple[str, str]]:
        """Extra response header fields (``Cache-Control``, say)."""
        return ()

    def cookies(self) -> Iterable[Cookie]:
        """Cookies to set: those given to ``set_cookie`` and the remembered attributes.

        Each name in ``[cookies] attrs`` (``project``, say) that this
        request has as an argument is stored in a cookie for ``[cookies]
        lifetime`` days, and ``get_arg`` falls back to it on later requests.
        """
        cookies = list(self._new_cookies)
        settings = self.settings
        if settings is not None:
            lifetime = round(settings.cookies.lifetime * 86400)
            for attr in settings.cookies.attrs:
                values = self.args.get(attr)
                if values:
                    cookies.append(self.make_cookie(attr, values[-1], max_age=lifetime))
        return cookies

    # --- arguments --------------------------------------------------------------------

    @property
    def args(self) -> dict[str, list[str]]:
        """Query-string and form arguments: name → values in order."""
        return self.request.params

    def get_arg(
        self,
        name: str,
        default: str = "",
        unquote: bool = False,
        use_default_for_empty: bool = True,
    ) -> str:
        """The (last) value of argument ``name``, or ``default``.

        A remembered cookie attribute (``[cookies] attrs``) stands in for a
        missing argument.  ``unquote`` percent-decodes the value once more
        (for values that were encoded twice); with ``use_default_for_empty``
        an empty value counts as missing.
        """
        values = self.args.get(name)
        if values:
            value = values[-1]
        else:
            remembered = self._remembered(name)
            if remembered is None:
                return default
            value = remembered
        if unquote:
            value = url_unquote(value, errors="replace")
        if use_default_for_empty and value == "":
            return default
        return value

    def get_args(self, name: str) -> list[str]:
        """Every value of argument ``name`` (empty when absent)."""
        return list(self.args.get(name, ()))

    def has_arg(self, name: str) -> bool:
        """Whether the request has argument ``name`` (or it is remembered in a cookie)."""
        return name in self.args or self._remembered(name) is not None

    def _remembered(self, name: str) -> str | None:
        settings = self.settings
        if settings is None or name not in settings.cookies.attrs:
            return None
        return self.get_cookie(name)

    # --- cookies ----------------------------------------------------------------------

    @property
    def settings(self) -> Config | None:
        """The server's configuration (None for a page made outside a server)."""
        return self.server.site.settings if self.server is not None else None

    def cookie_name(self, name: str) -> str:
        """``name`` with the server's prefix: ``<server name>_<name>``."""
        settings = self.settings
        prefix = settings.server.name if settings is not None else "dibble"
        return f"{prefix}_{name}"

    def get_cookie(self, name: str, default: str | None = None) -> str | None:
        """The value of this server's cookie ``name`` (prefixed), or ``default``."""
        value = self.request.cookies.get(self.cookie_name(name))
        return default if value is None else unquote_value(value)

    def make_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
        http_only: bool = True,
        path: str = "/",
    ) -> Cookie:
        """A cookie named with the server's prefix, with the site's attributes.

        The value may be any text (it is percent-encoded); ``Domain``,
        ``SameSite`` and ``Secure`` come from ``[cookies]``, and ``Secure`` is
        also set when the request came over TLS.
        """
        settings = self.settings
        domain = settings.cookies.domain if settings is not None else ""
        secure = self.request.tls or (settings is not None and settings.cookies.secure)
        same_site = settings.cookies.same_site if settings is not None else "Lax"
        return Cookie(
            self.cookie_name(name),
            quote_value(value),
            max_age=max_age,
            path=path,
            domain=domain or None,
            secure=secure,
            http_only=http_only,
            same_site=same_site,
        )

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
        days: float | None = None,
        http_only: bool = True,
        path: str = "/",
    ) -> None:
        """Set cookie ``name`` (prefixed) with this response; ``days`` or ``max_age`` seconds."""
        if days is not None:
            max_age = round(days * 86400)
        self._new_cookies.append(
            self.make_cookie(name, value, max_age=max_age, http_only=http_only, path=path)
        )

    def delete_cookie(self, name: str, *, path: str = "/") -> None:
        """Make the browser forget cookie ``name`` (prefixed)."""
        self._new_cookies.append(self.make_cookie(name, "", max_age=0, path=path))

    # --- templates and HTML -------------------------------------------------------------

    def get_template(self, name: str | None = None) -> Template:
        """A fresh ``Template`` for ``name`` (default: ``self.template``).

        Looked up in the class's ``template_dir`` when it has one, else in
        the server's ``[paths] templates`` folder.
        """
        name = name or self.template
        if not name:
            raise RuntimeError(f"{type(self).__qualname__} names no template")
        return self._template_loader().get(name)

    def render_template(self, name: str | None = None, /, **values: object) -> str:
        """Render template ``name`` (default: ``self.template``) with ``values``."""
        return self.get_template(name).render(values)

    def _template_loader(self) -> TemplateLoader:
        test_mode = self.server is not None and self.server.config.test_mode
        if self.template_dir:
            return _loader_for(self.template_dir, test_mode)
        loader = self.server.site.template_loader if self.server is not None else None
        if loader is None:
            raise RuntimeError(
                f"{type(self).__qualname__} uses a template but no template folder is "
                "configured ([paths] templates)"
            )
        return loader

    def encapsulate_body_html(
        self, html: str, title: str | None = None, extra_head: str = ""
    ) -> str:
        """``html`` (trusted markup) as the body of a complete HTML document.

        ``title`` (plain text, escaped) defaults to ``self.title``;
        ``extra_head`` (trusted markup) goes at the end of ``<head>``.
        """
        shown = escape(self.title if title is None else title)
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{shown}</title><style>{PAGE_CSS}</style>{extra_head}</head>"
            f"<body><main>{html}</main></body></html>\n"
        )

    # --- writing, Dibbler style -----------------------------------------------------------

    def _writer(self) -> ResponseWriter:
        writer = ResponseWriter.of(self.request)
        if not writer.started:
            writer.set_head(self.status_code, self.content_type, self._head_fields())
        return writer

    def write(self, content: str | bytes) -> None:
        """Append to the body; the head (status, type, headers, cookies) is fixed now."""
        self._writer().write(content)

    def flush(self) -> Awaitable[None]:
        """Send what was written so far (chunked); await it in an async page."""
        return self._writer().flush()

    # --- helpers ----------------------------------------------------------------------------

    def url_encode_object(self, value: Any, *, purpose: str = "") -> str:
        """``value`` signed with the server's secret key, for a URL or a form."""
        return url_encode_object(value, self._secret(), purpose=purpose)

    def url_decode_object(self, text: str, *, purpose: str = "") -> Any:
        """A value ``url_encode_object`` made; a 400 if it was tampered with."""
        return url_decode_object(text, self._secret(), purpose=purpose)

    def _secret(self) -> bytes | None:
        return self.server.secret_key if self.server is not None else None

    @property
    def session(self) -> Session:
        """This page's data in the client's session: a dict of JSON values.

        Loaded the first time it is read, saved (if changed) when the
        response head goes out; see docs/sessions.md.
        """
        from ..sessions import session_for

        return session_for(self.request, self)

    def get_user_session(self) -> Session:
        """``self.session`` (Astro-WISE ``getUserSession``)."""
        return self.session

    def set_user_session(self, data: Mapping[str, Any]) -> None:
        """Make this page's session data exactly ``data`` (``setUserSession``)."""
        self.session.replace(data)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} /{self.url_name} {self.request.method}>"


def _template_dir_of(module_file: str) -> str:
    """The ``templates`` folder next to a module (for pages that ship templates)."""
    return os.path.join(os.path.dirname(os.path.abspath(module_file)), "templates")
