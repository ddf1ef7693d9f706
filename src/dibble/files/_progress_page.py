"""``UploadProgress``: the JSON endpoint that reports an upload's progress to its owner.

``GET /_upload_progress?id=ID`` answers ``{"received": n, "total": n|null,
"done": bool, "failed": bool}`` for the upload the same client started with
``?_upload_id=ID``, or 404 ``{"error": ...}``.  A client without the progress
cookie gets one with that 404, so a page can ask once before uploading; pages
can also hand it out themselves with ``cookie_headers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..app import Plugin, Request, Response
from ..app._response import encode_json
from ..uploads import (
    ProgressStore,
    new_progress_token,
    progress_cookie,
    progress_owner,
    valid_upload_id,
)

_NO_STORE = ("Cache-Control", "no-store")


def _json(value: object, status: int, headers: list[tuple[str, str]]) -> Response:
    return Response(encode_json(value), status, headers, "application/json")


class UploadProgress(Plugin):
    """Serves the progress records of ``store`` (``server.upload_progress()`` mounts it)."""

    def __init__(self, store: ProgressStore) -> None:
        self.store = store

    def cookie_headers(self, request: Request) -> list[tuple[str, str]]:
        """``Set-Cookie`` for a request without a progress token; empty when it has one."""
        if progress_owner(request) is not None:
            return []
        return [progress_cookie(new_progress_token(), secure=request.tls)]

    def onHome(self, id: str = "") -> Response:
        request = self.request
        owner = progress_owner(request)
        if owner is None:
            headers = [_NO_STORE, *self.cookie_headers(request)]
            return _json({"error": "no progress token"}, 404, headers)
        record = self.store.get(owner, id) if valid_upload_id(id) else None
        if record is None:
            return _json({"error": "no such upload"}, 404, [_NO_STORE])
        return _json(record.as_dict(), 200, [_NO_STORE])

    def on_unknown(self, path: str, params: Mapping[str, list[str]]) -> Any:
        return _json({"error": "not found"}, 404, [_NO_STORE])
