"""Files: static directories, listings, PUT/DELETE, download lists, upload progress.

::

    server = dibble.HTTPServer(8888)
    server.static("/data", "/srv/data", listing=True)
    server.upload_progress()          # GET /_upload_progress?id=...

Uploads themselves (``dibble.Upload`` parameters, limits) live in
``dibble.uploads``; this package is what is built on them.  See
docs/files.md.
"""

from ..app._dispatch import send_response
from ._blocking import BlockingResponse
from ._conditional import evaluate_preconditions, if_range_allows, make_etag, parse_http_date
from ._file import file_response, guess_type, send_file
from ._listing import ListingEntry
from ._options import Authorizer, StaticOptions
from ._paths import Target, is_within, resolve, split_url_path
from ._progress_page import UploadProgress
from ._ranges import MAX_RANGES, parse_ranges
from ._send import FileResponse
from ._static import StaticFiles
from .urllist import absolute_urls, url_list

__all__ = [
    "MAX_RANGES",
    "Authorizer",
    "BlockingResponse",
    "FileResponse",
    "ListingEntry",
    "StaticFiles",
    "StaticOptions",
    "Target",
    "UploadProgress",
    "absolute_urls",
    "evaluate_preconditions",
    "file_response",
    "guess_type",
    "if_range_allows",
    "is_within",
    "make_etag",
    "parse_http_date",
    "parse_ranges",
    "resolve",
    "send_file",
    "send_response",
    "split_url_path",
    "url_list",
]
