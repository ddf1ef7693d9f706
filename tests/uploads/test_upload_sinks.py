"""Body sinks fed directly: multipart parsing, raw bodies, limits, clean-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dibble.http import ProtocolError, RequestHead
from dibble.uploads import MultipartSink, RawSink, Upload, UploadOptions, Uploads, safe_filename

B = "b0undary"


def part(name: str, value: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{B}\r\nContent-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{B}--\r\n".encode()


def feed_all(sink: MultipartSink | RawSink, body: bytes, step: int = 7) -> None:
    for i in range(0, len(body), step):
        sink.feed(body[i : i + step])
    sink.finish()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fields_and_files_in_tiny_pieces(tmp_path: Path) -> None:
    body = form(
        part("title", "Grüße".encode()),
        part("file", b"line 1\r\nline 2\r\n--not a boundary", "a.txt", "text/plain"),
        part("file", b"\x00\x01", "b.bin"),
        part("empty", b"", ""),  # an empty file input
        part("zero", b"", "zero.txt"),  # an empty file that was chosen
    )
    sink = MultipartSink(B, len(body), None, UploadOptions(temp_dir=str(tmp_path)))
    feed_all(sink, body, step=3)
    assert sink.fields == [("title", "Grüße")]
    first, second = sink.files["file"]
    assert (first.filename, first.content_type, first.size) == ("a.txt", "text/plain", 32)
    assert first.read() == b"line 1\r\nline 2\r\n--not a boundary"
    assert second.read() == b"\x00\x01"
    assert second.content_type == "application/octet-stream"
    assert "empty" not in sink.files
    assert sink.files["zero"][0].size == 0
    assert list(tmp_path.iterdir()) == []  # nameless temporary files
    sink.close()
    assert first.closed
    with pytest.raises(ValueError, match="closed"):
        first.read()


@pytest.mark.parametrize(
    ("options", "body", "status", "message"),
    [
        (
            UploadOptions(max_parts=2),
            form(part("a", b"1"), part("b", b"2"), part("c", b"3")),
            413,
            "segment count",
        ),
        (UploadOptions(max_field_size=4), form(part("a", b"12345")), 413, "form field 'a'"),
        (UploadOptions(max_file_size=4), form(part("f", b"12345", "f.txt")), 413, "file 'f.txt'"),
        (UploadOptions(max_part_header_size=40), form(part("a" * 60, b"1")), 413, "header"),
        (
            UploadOptions(),
            b"--" + B.encode() + b"\r\nContent-Disposition: form-data; name=a\r\n\r\nno end",
            400,
            "malformed",
        ),
        (UploadOptions(), b"garbage before\r\nand no boundary at all" * 3, 400, "malformed"),
        (UploadOptions(), form(part("a", b"\xff\xfe")), 400, "not valid utf-8"),
        (
            UploadOptions(),
            f"--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--\r\n".encode(),
            400,
            "malformed",
        ),
    ],
)
def test_refusals(
    tmp_path: Path, options: UploadOptions, body: bytes, status: int, message: str
) -> None:
    baseline = open_fds()
    options = UploadOptions(
        **{**{f: getattr(options, f) for f in options.__slots__}, "temp_dir": str(tmp_path)}
    )
    sink = MultipartSink(B, None, None, options)
    with pytest.raises(ProtocolError) as info:
        feed_all(sink, body)
    assert info.value.status_hint == status
    assert message in info.value.message.lower()
    sink.abort()  # what the protocol does with a refused body
    assert open_fds() == baseline
    assert list(tmp_path.iterdir()) == []


def test_abort_midway_frees_the_files(tmp_path: Path) -> None:
    baseline = open_fds()
    sink = MultipartSink(B, None, None, UploadOptions(temp_dir=str(tmp_path)))
    sink.feed(part("f", b"x" * 1_000_000, "f.bin")[:500_000])
    assert open_fds() == baseline + 1  # the file being received
    sink.abort()
    assert open_fds() == baseline


def test_raw_sink(tmp_path: Path) -> None:
    head = RequestHead()
    head.raw_headers = [
        (b"content-type", b"image/png"),
        (b"content-disposition", b'attachment; filename="../../pic.png"'),
    ]
    sink = RawSink(head, None, UploadOptions(temp_dir=str(tmp_path), max_file_size=10))
    feed_all(sink, b"0123456789")
    (upload,) = sink.files["body"]
    assert (upload.name, upload.filename, upload.content_type) == ("body", "pic.png", "image/png")
    assert upload.read() == b"0123456789"
    sink.close()
    sink = RawSink(head, None, UploadOptions(temp_dir=str(tmp_path), max_file_size=10))
    with pytest.raises(ProtocolError) as info:
        feed_all(sink, b"0123456789A")
    assert info.value.status_hint == 413
    sink.abort()


def test_which_bodies_stream() -> None:
    uploads = Uploads()

    def head_with(content_type: bytes) -> RequestHead:
        head = RequestHead()
        head.content_length = 10
        head.raw_headers = [(b"content-type", content_type)]
        return head

    def takes_body(body: Upload) -> None: ...

    def takes_other(file: Upload) -> None: ...

    assert uploads.sink_for(head_with(b"application/json"), None) is None
    assert (
        uploads.sink_for(head_with(b"application/x-www-form-urlencoded"), None, takes_body) is None
    )
    multi = uploads.sink_for(head_with(b"Multipart/Form-Data; boundary=x"), None)
    assert isinstance(multi, MultipartSink)
    multi.abort()
    raw = uploads.sink_for(head_with(b"application/octet-stream"), None, takes_body)
    assert isinstance(raw, RawSink)
    raw.abort()
    assert uploads.sink_for(head_with(b"application/octet-stream"), None, takes_other) is None
    with pytest.raises(ProtocolError, match="boundary"):
        uploads.sink_for(head_with(b"multipart/form-data"), None)


def test_upload_save_open_and_copy(tmp_path: Path) -> None:
    upload = Upload("f", "C:\\Users\\x\\report.pdf", "application/pdf", directory=str(tmp_path))
    assert upload.filename == "report.pdf"
    upload.append(b"%PDF-1.7 content")
    first = upload.save(tmp_path / "one.pdf")
    second = upload.save(tmp_path / "two.pdf", fsync=True)  # linked once, then copied
    assert first.read_bytes() == second.read_bytes() == b"%PDF-1.7 content"
    second.write_bytes(b"changed")  # a copy: the upload is not affected
    assert upload.read() == b"%PDF-1.7 content"
    with upload.open() as reader, upload.open() as other:
        assert reader.read(4) == b"%PDF"
        assert other.read() == b"%PDF-1.7 content"
    upload.save(tmp_path / "two.pdf")  # replaces
    assert (tmp_path / "two.pdf").read_bytes() == b"%PDF-1.7 content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.pdf", "two.pdf"]
    upload.close()
    upload.close()
    with pytest.raises(ValueError, match="closed"):
        upload.open()
    assert Upload.from_param(upload) is upload
    with pytest.raises(ValueError, match="expected an uploaded file"):
        Upload.from_param("text")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a.txt", "a.txt"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\x.txt", "x.txt"),
        ("..", ""),
        ("a\x00b\nc.txt", "abc.txt"),
        ("dir/", ""),
    ],
)
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


def test_options_validate() -> None:
    with pytest.raises(ValueError, match="max_parts"):
        UploadOptions(max_parts=0)
    with pytest.raises(ValueError, match="max_rate"):
        UploadOptions(max_rate=0)
    with pytest.raises(ValueError, match="max_file_size"):
        UploadOptions(max_file_size=-1)
