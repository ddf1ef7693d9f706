"""Serving files: types, validators, conditional requests, ranges, HEAD, listings, streaming."""

from __future__ import annotations

import contextlib
import hashlib
import html
import http.client
import os
import re
import shutil
import socket
import subprocess
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.files import ListingEntry, StaticFiles, send_file
from dibble.http import http_date
from dibble.testing import TestClient, TestResponse


def make_client(root: Path, **options: Any) -> TestClient:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.static("/static", root, **options)
    return TestClient(server)


@pytest.fixture
def client(tree: Path) -> Iterator[TestClient]:
    with make_client(tree, listing=True) as c:
        yield c


def etag_of(client: TestClient, path: str) -> str:
    return client.get(path).headers["etag"]


# --- types and validators ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/hello.txt", "text/plain; charset=utf-8"),
        ("/static/page.html", "text/html; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/static/data.json", "application/json"),
        ("/static/sub/deeper/x.bin", "application/octet-stream"),
    ],
)
def test_content_types(client: TestClient, path: str, content_type: str) -> None:
    response = client.get(path)
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"


def test_content_types_option_and_charset(tree: Path) -> None:
    (tree / "app.log").write_text("log")
    with make_client(tree, content_types={".log": "text/x-log"}, charset="latin-1") as client:
        assert (
            client.get("/static/app.log").headers["content-type"] == "text/x-log; charset=latin-1"
        )


def test_validators(client: TestClient, tree: Path) -> None:
    response = client.get("/static/hello.txt")
    stat = (tree / "hello.txt").stat()
    assert response.headers["etag"] == f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    assert response.headers["last-modified"] == http_date(int(stat.st_mtime))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cache-control"] == "no-cache"
    assert response.body == b"hello\n"


def test_etag_changes_with_the_file(client: TestClient, tree: Path) -> None:
    before = etag_of(client, "/static/hello.txt")
    os.utime(tree / "hello.txt", ns=(1, 2_000_000_000))
    assert etag_of(client, "/static/hello.txt") != before


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("public, max-age=3600", "public, max-age=3600")]
)
def test_cache_control_option(tree: Path, value: str | None, expected: str | None) -> None:
    with make_client(tree, cache_control=value) as client:
        assert client.get("/static/hello.txt").headers.get("cache-control") == expected


def test_cache_control_hook(tree: Path) -> None:
    class Assets(StaticFiles):
        def cache_control_for(self, relative_path: str, status: os.stat_result) -> str | None:
            return "max-age=31536000, immutable" if relative_path.endswith(".css") else None

    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.register(Assets(tree, prefix="/a"), prefix="/a")
    with TestClient(server) as client:
        assert client.get("/a/style.css").headers["cache-control"] == "max-age=31536000, immutable"
        assert "cache-control" not in client.get("/a/hello.txt").headers


def test_head(client: TestClient) -> None:
    response = client.head("/static/hello.txt")
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == "6"
    assert response.headers["etag"] == etag_of(client, "/static/hello.txt")


def test_head_of_a_large_file(client: TestClient, tree: Path) -> None:
    (tree / "large.bin").write_bytes(b"x" * 300_000)
    response = client.head("/static/large.bin")
    assert (response.status, response.body) == (200, b"")
    assert response.headers["content-length"] == "300000"


# --- conditional requests (RFC 9110 §13.2.2) ------------------------------------


def conditional(client: TestClient, **fields: str) -> TestResponse:
    headers = {name.replace("_", "-"): value for name, value in fields.items()}
    return client.get("/static/hello.txt", headers=headers)


def test_if_none_match(client: TestClient) -> None:
    etag = etag_of(client, "/static/hello.txt")
    response = conditional(client, If_None_Match=etag)
    assert response.status == 304
    assert response.body == b""
    assert response.headers["etag"] == etag
    assert "content-length" not in response.headers
    assert conditional(client, If_None_Match=f'"x", W/{etag}').status == 304  # weak comparison
    assert conditional(client, If_None_Match="*").status == 304
    assert conditional(client, If_None_Match='"other"').status == 200


def test_if_modified_since(client: TestClient) -> None:
    future = http_date(time.time() + 3600)
    past = http_date(0)
    assert conditional(client, If_Modified_Since=future).status == 304
    assert conditional(client, If_Modified_Since=past).status == 200
    assert conditional(client, If_Modified_Since="not a date").status == 200


def test_if_none_match_takes_precedence_over_if_modified_since(client: TestClient) -> None:
    future = http_date(time.time() + 3600)
    assert conditional(client, If_None_Match='"other"', If_Modified_Since=future).status == 200


def test_if_match_and_if_unmodified_since(client: TestClient) -> None:
    etag = etag_of(client, "/static/hello.txt")
    past = http_date(0)
    assert conditional(client, If_Match='"other"').status == 412
    assert conditional(client, If_Match=f"W/{etag}").status == 412  # strong comparison
    assert conditional(client, If_Match=etag).status == 200
    assert conditional(client, If_Match="*").status == 200
    assert conditional(client, If_Unmodified_Since=past).status == 412
    assert conditional(client, If_Unmodified_Since=http_date(time.time() + 60)).status == 200
    # If-Match present: If-Unmodified-Since is not evaluated.
    assert conditional(client, If_Match=etag, If_Unmodified_Since=past).status == 200
    # 412 comes before 304.
    assert conditional(client, If_Match='"other"', If_None_Match=etag).status == 412


# --- ranges ------------------------------------------------------------------------

BIN = bytes(range(256)) * 4  # sub/deeper/x.bin


def ranged(client: TestClient, value: str, **extra: str) -> TestResponse:
    return client.get("/static/sub/deeper/x.bin", headers={"Range": value, **extra})


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-10", 1014, 1023),
        ("bytes=1020-5000", 1020, 1023),
        ("bytes=0-0", 0, 0),
        ("bytes=-5000", 0, 1023),
        ("BYTES = 5-6", 5, 6),
        ("bytes=2000-,5-6", 5, 6),
    ],
)
def test_single_range(client: TestClient, value: str, first: int, last: int) -> None:
    response = ranged(client, value)
    assert response.status == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/1024"
    assert response.body == BIN[first : last + 1]
    assert response.headers["content-type"] == "application/octet-stream"


def parse_byteranges(response: TestResponse) -> list[tuple[str, bytes]]:
    """(Content-Range, data) of each part, checking the framing byte for byte."""
    boundary = response.headers["content-type"].split("boundary=", 1)[1].encode()
    chunks = (b"\r\n" + response.body).split(b"\r\n--" + boundary)
    assert chunks[0] == b""
    assert chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n") if line)
        assert fields[b"Content-Type"] == b"application/octet-stream"
        parts.append((fields[b"Content-Range"].decode(), data))
    return parts


def test_multiple_ranges(client: TestClient) -> None:
    response = ranged(client, "bytes=0-9, 100-109, -4")
    assert response.status == 206
    assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(response.headers["content-length"]) == len(response.body)
    assert parse_byteranges(response) == [
        ("bytes 0-9/1024", BIN[0:10]),
        ("bytes 100-109/1024", BIN[100:110]),
        ("bytes 1020-1023/1024", BIN[1020:]),
    ]


@pytest.mark.parametrize(
    "value", ["bytes=5000-", "bytes=1024-2000", "bytes=-0", "bytes=2000-,3000-"]
)
def test_unsatisfiable(client: TestClient, value: str) -> None:
    response = ranged(client, value)
    assert response.status == 416
    assert response.headers["content-range"] == "bytes */1024"


@pytest.mark.parametrize(
    "value",
    [
        ",".join(f"{i}-{i}" for i in range(17)),  # more than 16 ranges
        "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(17)),
        "bytes=0-100,50-150",  # overlapping
        "bytes=0-,0-",
        "bytes=10-5",  # invalid
        "bytes=abc",
        "items=0-5",
        "bytes=0-5;6-7",
        "bytes=" + "9" * 30 + "-",
    ],
)
def test_ignored_ranges_give_the_whole_file(client: TestClient, value: str) -> None:
    response = ranged(client, value)
    assert response.status == 200
    assert response.body == BIN


def test_sixteen_ranges_are_fine(client: TestClient) -> None:
    response = ranged(client, "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(16)))
    assert response.status == 206
    assert len(parse_byteranges(response)) == 16


def test_if_range(client: TestClient) -> None:
    response = client.get("/static/sub/deeper/x.bin")
    etag, modified = response.headers["etag"], response.headers["last-modified"]
    assert ranged(client, "bytes=0-1", **{"If-Range": etag}).status == 206
    assert ranged(client, "bytes=0-1", **{"If-Range": modified}).status == 206
    assert ranged(client, "bytes=0-1", **{"If-Range": '"stale"'}).status == 200
    assert ranged(client, "bytes=0-1", **{"If-Range": f"W/{etag}"}).status == 200
    assert ranged(client, "bytes=0-1", **{"If-Range": http_date(0)}).status == 200


def test_range_is_ignored_for_head(client: TestClient) -> None:
    response = client.request("HEAD", "/static/sub/deeper/x.bin", headers={"Range": "bytes=0-1"})
    assert response.status == 200
    assert response.headers["content-length"] == "1024"


def test_empty_file(client: TestClient, tree: Path) -> None:
    (tree / "empty.txt").write_bytes(b"")
    assert client.get("/static/empty.txt").body == b""
    assert client.get("/static/empty.txt", headers={"Range": "bytes=0-"}).status == 416


# --- methods ------------------------------------------------------------------------


def test_other_methods(client: TestClient) -> None:
    response = client.post("/static/hello.txt")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.request("OPTIONS", "/static/hello.txt").headers["allow"] == "GET, HEAD, OPTIONS"
    # Read-only mounts take no body at all: refused before it is read.
    assert client.put("/static/hello.txt", body=b"x").status == 413
    assert client.delete("/static/hello.txt").status == 405


# --- directories ------------------------------------------------------------------------


def test_directory_redirects_to_its_slash(client: TestClient) -> None:
    response = client.get("/static/sub?sort=size")
    assert response.status == 301
    assert response.headers["location"] == "/static/sub/?sort=size"
    assert client.get("/static").headers["location"] == "/static/"


def test_index_file(client: TestClient, tree: Path) -> None:
    (tree / "sub" / "index.html").write_text("<h1>index</h1>")
    response = client.get("/static/sub/")
    assert response.text == "<h1>index</h1>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_listing_is_off_by_default(tree: Path) -> None:
    with make_client(tree) as client:
        assert client.get("/static/").status == 404
        assert client.get("/static/sub/").status == 404
        assert client.get("/static/hello.txt").status == 200


def names_in(page: str) -> list[str]:
    found = re.findall(r'<td class="name"><a href="[^"]*">([^<]*)</a>', page)
    return [html.unescape(name) for name in found if name != "../"]


def test_listing_sorts(client: TestClient, tree: Path) -> None:
    os.utime(tree / "hello.txt", (1, 1))
    page = client.get("/static/").text
    assert "Index of /static/" in page
    assert names_in(page)[0] == "sub/"  # directories first
    files = [n for n in names_in(page) if not n.endswith("/")]
    assert files == sorted(files, key=str.lower)
    by_size = [
        n for n in names_in(client.get("/static/?sort=size&order=desc").text) if "/" not in n
    ]
    sizes = [(tree / n).stat().st_size for n in by_size]
    assert sizes == sorted(sizes, reverse=True)
    by_date = [n for n in names_in(client.get("/static/?sort=modified").text) if "/" not in n]
    assert by_date[0] == "hello.txt"
    assert "1.0 KB" in client.get("/static/sub/deeper/").text
    assert "../" in client.get("/static/sub/").text
    assert client.get("/static/?sort=bogus").status == 200


def test_listing_escapes_names(client: TestClient, tree: Path) -> None:
    (tree / "<b>x&y.txt").write_text("x")
    page = client.get("/static/").text
    assert "&lt;b&gt;x&amp;y.txt" in page
    assert "<b>x" not in page
    assert 'href="%3Cb%3Ex%26y.txt"' in page


def test_listing_hooks(tree: Path) -> None:
    class Filtered(StaticFiles):
        def allow_listing(self, relative_dir: str) -> bool:
            return relative_dir != "sub"

        def exclude(self, entry: ListingEntry) -> bool:
            return entry.name.endswith(".css")

        def list_files(self, relative_dir: str, entries: list[ListingEntry]) -> list[ListingEntry]:
            return [e for e in entries if e.name != "page.html"]

    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.register(Filtered(tree, prefix="/f"), prefix="/f")
    with TestClient(server) as client:
        names = names_in(client.get("/f/").text)
        assert "hello.txt" in names
        assert "style.css" not in names
        assert "page.html" not in names
        assert client.get("/f/style.css").status == 200  # excluded from the list, still served
        assert client.get("/f/sub/").status == 404
        assert client.get("/f/sub/deeper/").status == 200


def test_url_list_of_a_directory(client: TestClient) -> None:
    response = client.get("/static/sub/deeper/?download=urls.txt")
    assert response.headers["content-disposition"] == 'attachment; filename="urls.txt"'
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "http://testserver/static/sub/deeper/x.bin\n"


def test_send_file_from_a_methlet(tree: Path) -> None:
    class Reports(dibble.Plugin):
        def onReport(self) -> Any:
            return send_file(tree / "sub" / "note.txt", download_name="note.txt")

        def onMissing(self) -> Any:
            return send_file(tree / "nope.txt")

    with TestClient(Reports()) as client:
        response = client.get("/report")
        assert response.text == "note"
        assert response.headers["content-disposition"] == 'attachment; filename="note.txt"'
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        etag = response.headers["etag"]
        assert client.get("/report", headers={"If-None-Match": etag}).status == 304
        assert client.get("/report", headers={"Range": "bytes=1-2"}).body == b"ot"
        assert client.get("/missing").status == 404


# --- large files over real sockets --------------------------------------------------------


@pytest.fixture
def big_file(tree: Path) -> bytes:
    data = os.urandom(1 << 20) * 24  # 24 MiB, more than the socket buffers hold
    (tree / "big.bin").write_bytes(data)
    return data


@pytest.mark.parametrize("sendfile", [True, False])
def test_large_file_over_a_socket(
    serve: Callable[..., dibble.HTTPServer], tree: Path, big_file: bytes, sendfile: bool
) -> None:
    server = serve(lambda s: s.static("/static", tree, sendfile=sendfile))
    connection = http.client.HTTPConnection("127.0.0.1", server.addresses[0][1], timeout=10)
    try:
        for _ in range(2):  # the connection stays usable
            connection.request("GET", "/static/big.bin")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert hashlib.sha256(body).digest() == hashlib.sha256(big_file).digest()
        connection.request(
            "GET", "/static/big.bin", headers={"Range": "bytes=1000-4000999,-70000"}
        )
        response = connection.getresponse()
        body = response.read()
        assert response.status == 206
        assert big_file[1000:4001000] in body
        assert big_file[-70000:] in body
        connection.request("GET", "/static/hello.txt")
        assert connection.getresponse().read() == b"hello\n"
    finally:
        connection.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> list[str]:
    """What this process's descriptors refer to: paths, or "socket"."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        targets.append("socket" if target.startswith("socket:") else target)
    return targets


@pytest.mark.parametrize("sendfile", [True, False])
def test_slow_reader_holds_constant_memory_and_disconnect_frees_all(
    serve: Callable[..., dibble.HTTPServer],
    tree: Path,
    big_file: bytes,
    sendfile: bool,
    get_raw: Callable[[int, str], tuple[int, bytes]],
) -> None:
    server = serve(lambda s: s.static("/static", tree, sendfile=sendfile))
    port = server.addresses[0][1]
    baseline = open_fds()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.3)  # the server fills what the socket takes, then waits
        (conn,) = server.listeners[0].connections
        assert conn.transport is not None
        # Whatever the kernel will not take waits in the transport: a chunk at most.
        assert conn.transport.get_write_buffer_size() <= 320 * 1024
    deadline = time.monotonic() + 5
    while open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= baseline  # the file and any duplicate socket are closed
    assert get_raw(port, "/static/hello.txt") == (200, b"hello\n")  # still serving


@pytest.mark.parametrize("sendfile", [True, False])
def test_slow_reader_gets_every_byte(
    serve: Callable[..., dibble.HTTPServer], tree: Path, big_file: bytes, sendfile: bool
) -> None:
    # The server fills the socket, waits until the client reads, and goes on:
    # many waits for a full socket, and not one byte lost or repeated.
    server = serve(lambda s: s.static("/static", tree, sendfile=sendfile))
    with socket.create_connection(("127.0.0.1", server.addresses[0][1]), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = bytearray()
        reads = 0
        while chunk := sock.recv(256 * 1024):
            data += chunk
            reads += 1
            if reads % 16 == 0:
                time.sleep(0.002)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert hashlib.sha256(body).digest() == hashlib.sha256(big_file).digest()


@pytest.mark.parametrize("sendfile", [True, False])
def test_a_client_that_stops_reading_is_dropped_after_send_timeout(
    serve: Callable[..., dibble.HTTPServer], tree: Path, big_file: bytes, sendfile: bool
) -> None:
    server = serve(lambda s: s.static("/static", tree, sendfile=sendfile, send_timeout=0.5))
    baseline = open_fds()
    with socket.create_connection(("127.0.0.1", server.addresses[0][1]), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        deadline = time.monotonic() + 5
        while server.listeners[0].connections and time.monotonic() < deadline:
            time.sleep(0.05)  # not reading: the server must give up on us
        assert not server.listeners[0].connections
        received = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 20):  # what was in flight, then the end
                received += len(chunk)
        assert received < len(big_file)
    while open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= baseline  # the file and any duplicate socket are closed


@pytest.mark.parametrize("sendfile", [True, False])
def test_pipelined_small_then_large_keeps_the_order(
    serve: Callable[..., dibble.HTTPServer], tree: Path, big_file: bytes, sendfile: bool
) -> None:
    # Both requests arrive in one read: the small answers wait in the
    # connection's output while the large file goes to the socket directly.
    # They must still leave first.
    server = serve(lambda s: s.static("/static", tree, sendfile=sendfile))
    requests = (
        b"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /static/missing.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.addresses[0][1]), timeout=10) as sock:
        sock.sendall(requests)
        data = bytearray()
        while chunk := sock.recv(1 << 20):
            data += chunk
    first, _, rest = bytes(data).partition(b"\r\n\r\nhello\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest.startswith(b"HTTP/1.1 404 Not Found")
    big = rest.index(b"HTTP/1.1 200 OK")
    assert rest[big:].partition(b"\r\n\r\n")[2] == big_file


def test_head_and_part_headers_go_out_with_the_file_bytes(
    serve: Callable[..., dibble.HTTPServer],
    tree: Path,
    big_file: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A head sent as a packet of its own slows the receiver's window growth
    # (see _Sender._send_bytes): every bytes piece followed by a file range is
    # sent with MSG_MORE, and only the last piece without.
    from dibble.files import _send

    sent: list[tuple[bytes, bool]] = []
    original = _send._Sender._send_bytes

    def spy(self: Any, data: bytes, *, more: bool) -> int:
        sent.append((data[:20], more))
        return original(self, data, more=more)

    monkeypatch.setattr(_send._Sender, "_send_bytes", spy)
    server = serve(lambda s: s.static("/static", tree))
    request = (
        "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        "Range: bytes=0-99999,200000-299999\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.addresses[0][1]), timeout=10) as sock:
        sock.sendall(request.encode())
        data = bytearray()
        while chunk := sock.recv(1 << 20):
            data += chunk
    response = bytes(data)
    assert big_file[:100000] in response and big_file[200000:300000] in response
    assert sent[0] == (b"HTTP/1.1 206 Partial", True)
    assert [more for _, more in sent] == [True, True, False]  # head+part 1, part 2, end
    assert sent[-1][0].startswith(b"\r\n--")


def test_without_a_socket_the_head_is_written_with_the_first_chunk(tree: Path) -> None:
    # The in-memory transport stands for TLS: no descriptor to sendfile to.
    data = os.urandom(600 * 1024)
    (tree / "mid.bin").write_bytes(data)
    with make_client(tree) as client:
        writes: list[bytes] = []
        transport = client.connect()
        recorded = transport.on_write

        def record(chunk: bytes) -> None:
            writes.append(chunk)
            recorded(chunk)

        transport.on_write = record
        response = client.get("/static/mid.bin")
        assert response.body == data
        assert writes[0].startswith(b"HTTP/1.1 200 OK")
        assert writes[0].endswith(data[: 256 * 1024])  # head and first chunk, one write
        writes.clear()
        response = client.get("/static/mid.bin", headers={"Range": "bytes=0-9,-100000"})
        assert response.status == 206
        assert data[:10] in response.body and data[-100000:] in response.body
        assert writes[0].startswith(b"HTTP/1.1 206") and data[:10] in writes[0]


def test_send_bytes_borrows_the_descriptor_and_leaves_it_open() -> None:
    from dibble.files import _send

    left, right = socket.socketpair()
    read_end, write_end = os.pipe()
    try:
        sender: Any = types.SimpleNamespace(sock_fd=left.fileno())
        assert _send._Sender._send_bytes(sender, b"head", more=True) == 4
        assert _send._Sender._send_bytes(sender, b"tail", more=False) == 4
        left.sendall(b"!")  # still open: the borrowed socket object was detached
        assert right.recv(16) == b"headtail!"
        # A descriptor that is not a socket takes no flags: plain write().
        sender.sock_fd = write_end
        assert _send._Sender._send_bytes(sender, b"pipe", more=True) == 4
        assert os.read(read_end, 16) == b"pipe"
    finally:
        left.close()
        right.close()
        os.close(read_end)
        os.close(write_end)


# --- real clients -------------------------------------------------------------------


@pytest.fixture(scope="session")
def wget() -> str:
    path = shutil.which("wget")
    if path is None:
        message = "wget is not installed; the download-list test needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_wget_fetches_a_url_list(
    serve: Callable[..., dibble.HTTPServer], tree: Path, tmp_path: Path, wget: str, curl: str
) -> None:
    server = serve(lambda s: s.static("/static", tree, listing=True))
    base = f"http://127.0.0.1:{server.addresses[0][1]}/static"
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [curl, "-s", "-f", "-O", "-J", f"{base}/sub/?download=urls.txt"],
        cwd=out,
        check=True,
        timeout=10,
    )
    assert (out / "urls.txt").read_text() == f"{base}/sub/note.txt\n"
    subprocess.run([wget, "-q", "-i", "urls.txt"], cwd=out, check=True, timeout=20)
    assert (out / "note.txt").read_text() == "note"


def test_curl_resumes_a_download(
    serve: Callable[..., dibble.HTTPServer], tree: Path, tmp_path: Path, curl: str, big_file: bytes
) -> None:
    server = serve(lambda s: s.static("/static", tree))
    url = f"http://127.0.0.1:{server.addresses[0][1]}/static/big.bin"
    partial = tmp_path / "big.bin"
    partial.write_bytes(big_file[:5_000_000])
    subprocess.run([curl, "-s", "-f", "-C", "-", "-o", str(partial), url], check=True, timeout=30)
    assert partial.read_bytes() == big_file


def test_static_at_the_root_beside_methlets(tree: Path) -> None:
    class App(dibble.Plugin):
        def onHome(self) -> str:
            return "home page"

        def onHelloTxt(self) -> str:
            return "methlet wins"

    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.static("", tree)
    server.register(App())
    with TestClient(server) as client:
        assert client.get("/").text == "home page"
        assert client.get("/hello.txt").text == "methlet wins"
        assert client.get("/page.html").text == "<p>page</p>"
        assert client.get("/sub/note.txt").text == "note"
        assert client.get("/nothing.txt").status == 404


def test_pipelined_large_and_small_files_stay_in_order(
    serve: Callable[..., dibble.HTTPServer], tree: Path, big_file: bytes
) -> None:
    server = serve(lambda s: s.static("/static", tree))
    requests = (
        b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n"
        b"GET /static/hello.txt HTTP/1.0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.addresses[0][1]), timeout=10) as sock:
        sock.sendall(requests)
        data = bytearray()
        while chunk := sock.recv(1 << 20):
            data += chunk
    first_head, _, rest = bytes(data).partition(b"\r\n\r\n")
    assert b"Content-Length: 25165824" in first_head
    assert rest[: len(big_file)] == big_file
    rest = rest[len(big_file) :]
    assert rest.startswith(b"HTTP/1.1 200 OK") and b"\r\n\r\nhello\n" in rest
    rest = rest.split(b"\r\n\r\nhello\n", 1)[1]
    assert rest.startswith(b"HTTP/1.1 206 Partial Content")
    _, _, rest = rest.partition(b"\r\n\r\n")
    assert rest[:5] == big_file[-5:]
    assert rest[5:].startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in rest[5:]
    assert rest.endswith(b"\r\n\r\nhello\n")


@pytest.mark.parametrize("sendfile", [True, False])
def test_shutdown_drops_a_stalled_download(tree: Path, big_file: bytes, sendfile: bool) -> None:
    context = dibble.Context()
    server = dibble.HTTPServer(("127.0.0.1", 0), context, access_log=False, graceful_timeout=0.3)
    server.static("/static", tree, sendfile=sendfile)
    context.start_in_thread()
    sockets_before = fd_targets().count("socket")  # the listening socket among them
    with socket.create_connection(server.addresses[0]) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.2)
        started = time.monotonic()
        context.join(5)
        assert time.monotonic() - started < 3
        targets = fd_targets()
        # Left: our client socket.  Gone: the listening socket, the server's
        # side of the connection, any duplicate of it, and the file.
        assert targets.count("socket") == sockets_before
        assert str(tree / "big.bin") not in targets
