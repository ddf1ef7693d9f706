"""``StaticOptions``: everything about one static directory that can be configured."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ..app import Request

#: ``authorize(request, method, relative_path)``: True (exactly) allows a PUT or DELETE.
Authorizer = Callable[["Request", str, str], bool]


@dataclass(frozen=True, slots=True)
class StaticOptions:
    """How a ``StaticFiles`` mount serves its directory.

    ``listing``
        show a directory listing for directories without an index file
        (off by default; ``StaticFiles.allow_listing`` decides per directory).
    ``index``
        file names served for a directory, first found wins; ``()`` for none.
    ``show_hidden``
        serve (and list) names starting with a dot; off by default.
    ``cache_control``
        the ``Cache-Control`` value for files, None for none.  The default,
        ``no-cache``, lets browsers keep files but revalidate them each time
        (cheap: a 304 from the ETag).
    ``content_types``
        extra extension → type mappings (``{".log": "text/plain"}``), before
        the ``mimetypes`` guesses.
    ``charset``
        added to text types (``text/*``, JavaScript).
    ``sendfile``
        zero-copy sending on plain TCP connections; False always copies.
    ``send_timeout``
        seconds a client may stop reading a response before it is dropped.
    ``writable``
        allow PUT and DELETE, each subject to ``authorize``.
    ``authorize``
        ``(request, method, relative_path) -> bool``; only ``True`` allows.
        Without it (the default) every PUT and DELETE is 403.
    ``max_put_size``
        the largest PUT body; None is the server's body limit.
    """

    listing: bool = False
    index: tuple[str, ...] = ("index.html",)
    show_hidden: bool = False
    cache_control: str | None = "no-cache"
    content_types: Mapping[str, str] = field(default_factory=dict)
    charset: str = "utf-8"
    sendfile: bool = True
    send_timeout: float = 60.0
    writable: bool = False
    authorize: Authorizer | None = None
    max_put_size: int | None = None

    def __post_init__(self) -> None:
        if isinstance(cast(object, self.index), str):
            raise TypeError("StaticOptions.index is a tuple of names, not one string")
        for name in self.index:
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise ValueError(f"StaticOptions.index: not a plain file name: {name!r}")
        if self.send_timeout <= 0:
            raise ValueError("StaticOptions.send_timeout must be positive")
        if self.max_put_size is not None and self.max_put_size < 0:
            raise ValueError("StaticOptions.max_put_size must not be negative")
        for extension in self.content_types:
            if not extension.startswith("."):
                raise ValueError(f"StaticOptions.content_types: {extension!r} must start with '.'")
