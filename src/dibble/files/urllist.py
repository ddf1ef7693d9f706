"""Download lists: ``urls.txt`` for ``wget -i`` (the Astro-WISE ``UrlList`` page).

::

    def onFrames(self, night: str) -> dibble.Response:
        paths = [f"/data/{night}/{name}" for name in frames_of(night)]
        return url_list(absolute_urls(self.request, paths))

The response is ``text/plain`` with one URL per line and
``Content-Disposition: attachment``, so a browser saves it and
``wget -i urls.txt`` (or ``curl -K``-style loops) fetches every file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from ..app import Response

if TYPE_CHECKING:
    from ..app import Request

__all__ = ["absolute_urls", "url_list"]

_FILENAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_BAD_URL: Final = re.compile(r"[\x00-\x20\x7f]")
_HOST: Final = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def url_list(urls: Iterable[str], filename: str = "urls.txt") -> Response:
    """A ``urls.txt`` download: one URL per line, saved by browsers as ``filename``.

    A URL containing whitespace or control characters is a ``ValueError``:
    it would break the one-URL-per-line format (percent-encode it first).
    """
    if not _FILENAME.fullmatch(filename):
        raise ValueError(f"not a plain file name for the download: {filename!r}")
    lines = []
    for url in urls:
        if not url or _BAD_URL.search(url):
            raise ValueError(f"not a URL that fits on one line: {url!r}")
        lines.append(url)
    body = "".join(line + "\n" for line in lines)
    return Response(
        body.encode("utf-8"),
        headers=[("Content-Disposition", f'attachment; filename="{filename}"')],
        content_type="text/plain; charset=utf-8",
    )


def absolute_urls(request: Request, paths: Iterable[str]) -> list[str]:
    """``paths`` (absolute URL paths, not yet percent-encoded) as full URLs of this server.

    The host comes from the request's ``Host`` field (checked to be a host
    name or address, else the server's own address is used).
    """
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host):
        server = request.conn.server if request.conn is not None else None
        host = f"{server[0]}:{server[1]}" if server else "localhost"
        if server and ":" in server[0]:
            host = f"[{server[0]}]:{server[1]}"
    base = f"{request.scheme}://{host}"
    return [base + quote(path, safe="/") for path in paths]
