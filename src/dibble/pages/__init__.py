"""Pages: page-generator classes served as services, and the built-in pages.

::

    import dibble

    class Hello(dibble.Page):
        title = "Hello"

        def get_html(self) -> str:
            name = self.get_arg("name", "world")
            return self.encapsulate_body_html(f"<p>Hello, {dibble.html.escape(name)}!</p>")

    server = dibble.HTTPServer(8888)
    server.register_service("hello", Hello)      # /hello?name=you

See ``docs/pages.md``.
"""

from ._builtin import ErrorPage, Forward, Info, error_response, forward
from ._page import PAGE_CSS, Page, PageResult

__all__ = [
    "PAGE_CSS",
    "ErrorPage",
    "Forward",
    "Info",
    "Page",
    "PageResult",
    "error_response",
    "forward",
]
