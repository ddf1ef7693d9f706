"""Streaming request bodies: form uploads and raw bodies to temporary files, and their progress.

This package sits between the server layer (which feeds a ``BodySink`` as a
body arrives) and the application layer (which hands ``Upload`` objects to
methlets); it imports neither plugins nor routing.
"""

from ._options import UploadOptions, upload_options
from ._progress import (
    PROGRESS_COOKIE,
    ProgressRecord,
    ProgressStore,
    ProgressTable,
    new_progress_token,
    progress_cookie,
    progress_owner,
    upload_id_of,
    valid_upload_id,
)
from ._sinks import FormSink, MultipartSink, RawSink, Uploads
from ._upload import Upload, safe_filename

__all__ = [
    "PROGRESS_COOKIE",
    "FormSink",
    "MultipartSink",
    "ProgressRecord",
    "ProgressStore",
    "ProgressTable",
    "RawSink",
    "Upload",
    "UploadOptions",
    "Uploads",
    "new_progress_token",
    "progress_cookie",
    "progress_owner",
    "safe_filename",
    "upload_id_of",
    "upload_options",
    "valid_upload_id",
]
