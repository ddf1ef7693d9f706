"""Body sinks that turn a streaming request body into form fields and ``Upload`` files.

The server asks the application for a sink once a request's head is in
(``Application.body_sink``); ``Uploads.sink_for`` answers it:

* ``multipart/form-data`` bodies go through ``multipart``'s push parser
  (sans-I/O, like our own HTTP parser): text fields are collected in memory
  up to ``max_field_size``, file parts are written to nameless temporary
  files as they arrive;
* other bodies stream to one temporary file when the methlet asks for it
  (a parameter ``body: Upload``) or its options say ``raw``;
* everything else is buffered in memory as before (``request.body``).

Sinks run on the event loop, inside ``data_received``.  Writes go straight
to the page cache with ``os.write``: a thread hand-off per chunk would cost
more than the copy, and backpressure would need the protocol's help.  Under
memory pressure the kernel may make such a write wait; the per-request
``max_rate`` option is the knob for a server that must stay responsive
while the disk is slow.

Why ``multipart`` (the Bottle author's parser) and not python-multipart:
see docs/files.md (faster on small forms, the same on large files, one CVE
against six, and a push parser that fits a body sink without callbacks).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import multipart

from ..http import ProtocolError, RequestHead
from ._options import UploadOptions
from ._progress import ProgressRecord, ProgressStore, progress_owner, upload_id_of
from ._upload import Upload

if TYPE_CHECKING:
    from ..server import HTTPProtocol

_FORM_TYPES: Final = (b"multipart/form-data", b"application/x-www-form-urlencoded")
#: Body bytes gathered before they are parsed and written.
_BATCH: Final = 256 * 1024


class FormSink:
    """A body being received: what it has produced so far, and its clean-up.

    After ``finish`` the request's ``fields`` (text, in order) and ``files``
    (``Upload`` objects by field name) are complete.  ``close`` frees every
    temporary file; it is safe to call more than once.
    """

    def __init__(
        self,
        conn: HTTPProtocol | None,
        options: UploadOptions,
        record: ProgressRecord | None = None,
    ) -> None:
        self.fields: list[tuple[str, str]] = []
        self.files: dict[str, list[Upload]] = {}
        self.options = options
        self.record = record
        self.received = 0
        self._conn = conn
        self._uploads: list[Upload] = []
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._rate = options.max_rate
        self._started = conn.loop.time() if conn is not None and self._rate else 0.0
        self._resume: Any = None

    # --- the BodySink interface ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        record = self.record
        if record is not None:
            record.received = self.received
        if self._rate:
            self._throttle()
        # The HTTP parser hands over bodies in small slices; parsing and
        # writing them in batches halves the cost per byte (one join, far
        # fewer parser rounds and write calls).
        pending = self._pending
        pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._pending_size = 0
            self._consume(data)

    def finish(self) -> None:
        self._flush()
        self._complete()
        if self.record is not None:
            self.record.done = True

    def abort(self) -> None:
        self.close()
        record = self.record
        if record is not None and not record.done:
            record.done = True
            record.failed = True
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None

    # --- for subclasses ---------------------------------------------------------

    def _consume(self, data: bytes) -> None:
        raise NotImplementedError

    def _complete(self) -> None:
        raise NotImplementedError

    def _new_upload(self, name: str, filename: str, content_type: str, headers: Any) -> Upload:
        upload = Upload(name, filename, content_type, headers, directory=self.options.temp_dir)
        self._uploads.append(upload)
        return upload

    def _add_file(self, upload: Upload) -> None:
        self.files.setdefault(upload.name, []).append(upload)

    # --- the rest -------------------------------------------------------------------

    def close(self) -> None:
        """Free every temporary file this body made."""
        self._pending.clear()
        for upload in self._uploads:
            upload.close()

    def _throttle(self) -> None:
        # Read no faster than max_rate: when ahead of schedule, stop reading
        # from the socket until the schedule catches up.
        conn = self._conn
        rate = self._rate
        if conn is None or rate is None or conn.transport is None or self._resume is not None:
            return
        delay = self._started + self.received / rate - conn.loop.time()
        if delay > 0.005 and conn.transport.is_reading():
            conn.transport.pause_reading()
            self._resume = conn.loop.call_later(delay, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume = None
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.resume_reading()


class RawSink(FormSink):
    """The whole body as one ``Upload`` named ``body``."""

    def __init__(
        self,
        head: RequestHead,
        conn: HTTPProtocol | None,
        options: UploadOptions,
        record: ProgressRecord | None = None,
    ) -> None:
        super().__init__(conn, options, record)
        headers = head.headers
        filename = ""
        disposition = headers.get("content-disposition")
        if disposition:
            _, params = multipart.parse_options_header(disposition)
            filename = str(params.get("filename") or "")
        content_type = headers.get("content-type") or "application/octet-stream"
        self.upload = self._new_upload("body", filename, content_type, dict(headers))
        self._limit = options.max_file_size

    def _consume(self, data: bytes) -> None:
        upload = self.upload
        if self._limit is not None and upload.size + len(data) > self._limit:
            raise ProtocolError(f"the upload is larger than {self._limit} bytes", 413)
        upload.append(data)

    def _complete(self) -> None:
        self._add_file(self.upload)


class MultipartSink(FormSink):
    """A ``multipart/form-data`` body: text fields in memory, files on disk."""

    def __init__(
        self,
        boundary: str,
        total: int | None,
        conn: HTTPProtocol | None,
        options: UploadOptions,
        record: ProgressRecord | None = None,
    ) -> None:
        super().__init__(conn, options, record)
        try:
            self._parser = multipart.PushMultipartParser(
                boundary,
                content_length=-1 if total is None else total,
                max_header_size=options.max_part_header_size,
                max_segment_count=options.max_parts,
            )
        except multipart.MultipartError as exc:
            raise ProtocolError(f"bad multipart boundary: {exc}", 400) from None
        self._field: bytearray | None = None
        self._segment: Any = None
        self._upload: Upload | None = None

    def _consume(self, data: bytes) -> None:
        try:
            for event in self._parser.parse(data):
                kind = type(event)
                if kind is bytes or kind is bytearray:
                    self._part_data(event)
                elif event is None:
                    self._end_part()
                else:
                    self._start_part(event)
        except multipart.ParserLimitReached as exc:
            raise ProtocolError(f"multipart form refused: {_lower(exc)}", 413) from None
        except multipart.MultipartError as exc:
            raise ProtocolError(f"malformed multipart body: {_lower(exc)}", 400) from None

    def _complete(self) -> None:
        try:
            self._parser.close()
        except multipart.MultipartError as exc:
            raise ProtocolError(f"malformed multipart body: {_lower(exc)}", 400) from None

    def abort(self) -> None:
        self._parser.close(check_complete=False)
        super().abort()

    def _start_part(self, segment: Any) -> None:
        self._segment = segment
        if segment.filename is None:
            self._field = bytearray()
        else:
            self._field = None
            self._upload = None  # made on the first byte: an empty file input sends none

    def _part_data(self, data: bytes | bytearray) -> None:
        field = self._field
        if field is not None:
            if len(field) + len(data) > self.options.max_field_size:
                raise ProtocolError(
                    f"form field {self._segment.name!r} is larger than "
                    f"{self.options.max_field_size} bytes",
                    413,
                )
            field += data
            return
        upload = self._upload
        if upload is None:
            upload = self._upload = self._open_upload()
        limit = self.options.max_file_size
        if limit is not None and upload.size + len(data) > limit:
            raise ProtocolError(
                f"file {upload.filename!r} of field {upload.name!r} is larger than {limit} bytes",
                413,
            )
        upload.append(data)

    def _end_part(self) -> None:
        segment = self._segment
        field = self._field
        if field is not None:
            charset = segment.charset or "utf-8"
            try:
                text = field.decode(charset)
            except (UnicodeDecodeError, LookupError):
                raise ProtocolError(
                    f"form field {segment.name!r} is not valid {charset}", 400
                ) from None
            self.fields.append((segment.name, text))
            self._field = None
            return
        upload = self._upload
        if upload is None:
            if not segment.filename:
                return  # a file input left empty: no file, as if absent
            upload = self._open_upload()
        self._add_file(upload)
        self._upload = None

    def _open_upload(self) -> Upload:
        segment = self._segment
        headers = {name.lower(): value for name, value in segment.headerlist}
        content_type = headers.get("content-type") or "application/octet-stream"
        return self._new_upload(segment.name, segment.filename, content_type, headers)


def _lower(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text[:1].lower() + text[1:]


class Uploads:
    """Decides, for each request with a body, whether and how it streams.

    ``options`` are the defaults (a plugin's ``upload_options`` attribute or
    ``@upload_options`` on a methlet override them); ``progress`` records
    upload progress for requests with ``_upload_id`` when set.
    """

    def __init__(
        self, options: UploadOptions | None = None, progress: ProgressStore | None = None
    ) -> None:
        self.options = options or UploadOptions()
        self.progress = progress
        self._raw_methlets: dict[Any, bool] = {}

    def sink_for(
        self,
        head: RequestHead,
        conn: HTTPProtocol | None,
        func: Callable[..., Any] | None = None,
        plugin: object = None,
    ) -> FormSink | None:
        """A sink for this request's body, or None to buffer it in memory.

        ``func`` and ``plugin`` are the methlet the request goes to and its
        plugin, for their options and whether the methlet takes a raw body.
        """
        options = (
            getattr(func, "__dibble_uploads__", None)
            or getattr(plugin, "upload_options", None)
            or self.options
        )
        content_type = b""
        for name, value in head.raw_headers:
            if name == b"content-type":
                content_type = value
                break
        media_type = content_type.split(b";", 1)[0].strip().lower()
        total = None if head.chunked else head.content_length
        if options.raw or (media_type not in _FORM_TYPES and self._takes_raw_body(func)):
            return RawSink(head, conn, options, self._record(head, total))
        if media_type == b"multipart/form-data":
            _, params = multipart.parse_options_header(content_type.decode("latin-1"))
            boundary = params.get("boundary")
            if not boundary:
                raise ProtocolError("multipart/form-data without a boundary", 400)
            return MultipartSink(boundary, total, conn, options, self._record(head, total))
        return None

    def _record(self, head: RequestHead, total: int | None) -> ProgressRecord | None:
        store = self.progress
        if store is None:
            return None
        upload_id = upload_id_of(head)
        if upload_id is None:
            return None
        owner = progress_owner(head)
        if owner is None:
            return None  # nobody could read it
        return store.begin(owner, upload_id, total)

    def _takes_raw_body(self, func: Callable[..., Any] | None) -> bool:
        if func is None:
            return False
        key = getattr(func, "__func__", func)
        known = self._raw_methlets.get(key)
        if known is None:
            known = self._raw_methlets[key] = _declares_raw_body(func)
        return known


def _declares_raw_body(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has a parameter ``body`` annotated ``Upload`` (or ``Upload | None``)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return False
    annotation = hints.get("body")
    if annotation is None:
        return False
    return annotation is Upload or Upload in typing.get_args(annotation)
