"""Uploads through whole requests: methlet parameters, limits, clean-up, progress, curl."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.server import HTTPProtocol
from dibble.testing import MockTransport, TestClient
from dibble.uploads import PROGRESS_COOKIE, Upload, upload_options

B = "XbOuNdArY"


def multipart(*parts: tuple[str, bytes, str | None]) -> tuple[bytes, dict[str, str]]:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{B}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    out += f"--{B}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={B}"}


class Files(dibble.Plugin):
    def __init__(self) -> None:
        self.seen: list[Upload] = []

    def onOne(self, title: str, file: Upload, count: int = 0) -> dict[str, Any]:
        self.seen.append(file)
        return {
            "title": title,
            "count": count,
            "name": file.filename,
            "data": file.read().decode(),
        }

    def onMany(self, files: list[Upload], note: Upload | None = None) -> dict[str, Any]:
        self.seen.extend(files)
        return {"names": [f.filename for f in files], "note": note.filename if note else None}

    def onAll(self, **params: Any) -> dict[str, Any]:
        return {k: (v.filename if isinstance(v, Upload) else v) for k, v in params.items()}

    def onRaw(self, body: Upload) -> dict[str, Any]:
        self.seen.append(body)
        return {"type": body.content_type, "size": body.size, "head": body.read()[1:4].decode()}

    def onPlain(self) -> str:
        return f"{len(self.request.body)} {sorted(self.request.files)}"

    @upload_options(max_parts=2, max_file_size=5)
    def onStrict(self, **params: Any) -> str:
        return "ok"

    async def onLater(self, file: Upload) -> str:
        await asyncio.sleep(0.01)
        self.seen.append(file)
        return file.read().decode()

    @dibble.blocking
    def onThreaded(self, file: Upload) -> str:
        self.seen.append(file)
        return file.read().decode()

    @dibble.max_body_size(64 << 20)
    def onBig(self, file: Upload) -> dict[str, int]:
        return {"size": file.size}


@pytest.fixture
def plugin() -> Files:
    return Files()


@pytest.fixture
def client(plugin: Files) -> Iterator[TestClient]:
    with TestClient(plugin) as c:
        yield c


def test_fields_and_files_reach_parameters(client: TestClient, plugin: Files) -> None:
    body, headers = multipart(
        ("title", b"Hi", None), ("count", b"3", None), ("file", b"data", "d.txt")
    )
    response = client.post("/one?extra=1", body=body, headers=headers)
    assert response.json() == {"title": "Hi", "count": 3, "name": "d.txt", "data": "data"}
    (upload,) = plugin.seen
    assert upload.closed  # freed when the request ended


def test_lists_optionals_and_kwargs(client: TestClient) -> None:
    body, headers = multipart(("files", b"1", "a"), ("files", b"2", "b"), ("x", b"y", None))
    assert client.post("/many", body=body, headers=headers).json() == {
        "names": ["a", "b"],
        "note": None,
    }
    body, headers = multipart(("files", b"1", "a"), ("note", b"n", "n.txt"))
    assert client.post("/many", body=body, headers=headers).json()["note"] == "n.txt"
    body, headers = multipart(("a", b"1", None), ("f", b"2", "f.bin"))
    assert client.post("/all?q=z", body=body, headers=headers).json() == {
        "q": "z",
        "a": "1",
        "f": "f.bin",
    }


def test_bad_parameters_are_400(client: TestClient) -> None:
    body, headers = multipart(("title", b"Hi", None))
    response = client.post("/one", body=body, headers=headers)
    assert response.status == 400
    assert "parameter &#x27;file&#x27;: missing" in response.text
    body, headers = multipart(("title", b"Hi", None), ("file", b"not a file", None))
    response = client.post("/one", body=body, headers=headers)
    assert response.status == 400
    assert "expected an uploaded file" in response.text
    assert client.post("/one?title=a&file=b", body=b"").status == 400


def test_raw_body(client: TestClient, plugin: Files) -> None:
    response = client.post("/raw", body=b"\x89PNG...", headers={"Content-Type": "image/png"})
    assert response.json() == {"type": "image/png", "size": 7, "head": "PNG"}
    assert plugin.seen[0].closed
    # Without a body: the parameter is missing.
    assert client.post("/raw").status == 400


def test_other_bodies_are_still_buffered(client: TestClient) -> None:
    assert (
        client.post("/plain", body=b"12345", headers={"Content-Type": "text/plain"}).text == "5 []"
    )
    body, headers = multipart(("f", b"x", "f"))
    assert client.post("/plain", body=body, headers=headers).text == "0 ['f']"


def test_limits(client: TestClient) -> None:
    body, headers = multipart(("a", b"1", None), ("b", b"2", None), ("c", b"3", None))
    response = client.post("/strict", body=body, headers=headers)
    assert response.status == 413
    assert "segment count" in response.text
    body, headers = multipart(("f", b"123456", "f.txt"))
    response = client.post("/strict", body=body, headers=headers)
    assert response.status == 413
    assert "larger than 5 bytes" in response.text
    body, headers = multipart(("f", b"x" * 100, "f.txt"))
    headers["Content-Type"] = "multipart/form-data"
    response = client.post("/strict", body=body, headers=headers)
    assert (response.status, "boundary" in response.text) == (400, True)


def test_async_and_threaded_methlets(client: TestClient, plugin: Files) -> None:
    body, headers = multipart(("file", b"later", "l.txt"))
    assert client.post("/later", body=body, headers=headers).text == "later"
    body, headers = multipart(("file", b"thread", "t.txt"))
    assert client.post("/threaded", body=body, headers=headers).text == "thread"
    assert all(upload.closed for upload in plugin.seen)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_client_gone_mid_upload_leaves_nothing(client: TestClient) -> None:
    baseline = open_fds()
    transport = client.connect()
    protocol = client.protocol
    assert protocol is not None
    body, headers = multipart(("file", b"x" * 2_000_000, "x.bin"))
    head = (
        f"POST /big HTTP/1.1\r\nHost: t\r\nContent-Type: {headers['Content-Type']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    protocol.data_received(head + body[:1_000_000])
    assert open_fds() == baseline + 1  # the file being received
    transport.close()
    protocol.connection_lost(None)
    assert open_fds() == baseline


# --- progress ---------------------------------------------------------------------------


@pytest.fixture
def progress_client(plugin: Files) -> Iterator[TestClient]:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.register(plugin)
    server.upload_progress()
    with TestClient(server) as c:
        yield c


def token_of(client: TestClient) -> str:
    response = client.get("/_upload_progress?id=x")
    assert response.status == 404
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    return cookie.split(";")[0].split("=", 1)[1]


def test_progress_while_streaming_and_after(progress_client: TestClient) -> None:
    token = token_of(progress_client)
    cookie = {"Cookie": f"{PROGRESS_COOKIE}={token}"}
    body, headers = multipart(("file", b"y" * 100_000, "y.bin"))
    uploader = HTTPProtocol(progress_client.listener)
    uploader.connection_made(MockTransport())
    head = (
        f"POST /big?_upload_id=u1 HTTP/1.1\r\nHost: t\r\nCookie: {cookie['Cookie']}\r\n"
        f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    uploader.data_received(head + body[:40_000])
    during = progress_client.get("/_upload_progress?id=u1", headers=cookie).json()
    assert during == {"received": 40_000, "total": len(body), "done": False, "failed": False}
    # Another client, or none, learns nothing.
    assert progress_client.get("/_upload_progress?id=u1").status == 404
    other = {"Cookie": f"{PROGRESS_COOKIE}={'A' * 22}"}
    assert progress_client.get("/_upload_progress?id=u1", headers=other).status == 404
    uploader.data_received(body[40_000:])
    after = progress_client.get("/_upload_progress?id=u1", headers=cookie).json()
    assert after == {"received": len(body), "total": len(body), "done": True, "failed": False}
    uploader.connection_lost(None)


def test_progress_of_an_aborted_upload(progress_client: TestClient) -> None:
    cookie = {"Cookie": f"{PROGRESS_COOKIE}={token_of(progress_client)}"}
    uploader = HTTPProtocol(progress_client.listener)
    transport = MockTransport()
    uploader.connection_made(transport)
    uploader.data_received(
        f"POST /big?_upload_id=gone HTTP/1.1\r\nHost: t\r\nCookie: {cookie['Cookie']}\r\n"
        f"Content-Type: multipart/form-data; boundary={B}\r\n"
        f"Content-Length: 5000\r\n\r\n--{B}".encode()
    )
    transport.close()
    uploader.connection_lost(None)
    record = progress_client.get("/_upload_progress?id=gone", headers=cookie).json()
    assert (record["done"], record["failed"]) == (True, True)
    assert progress_client.get("/_upload_progress?id=bad%20id", headers=cookie).status == 404


# --- over a real socket ---------------------------------------------------------------


@pytest.fixture
def live(live_server: Callable[..., dibble.HTTPServer], plugin: Files) -> int:
    return live_server(plugin).addresses[0][1]


def test_curl_form_upload(live: int, tmp_path: Path, curl: str) -> None:
    data = os.urandom(5 << 20)
    (tmp_path / "photo.jpg").write_bytes(data)
    result = subprocess.run(
        [curl, "-s", "-F", f"file=@{tmp_path / 'photo.jpg'}", f"http://127.0.0.1:{live}/big"],
        capture_output=True,
        check=True,
        timeout=20,
    )
    assert result.stdout == b'{"size":5242880}'


def test_disconnect_mid_upload_over_a_socket(live: int) -> None:
    baseline = open_fds()
    body, headers = multipart(("file", b"z" * (8 << 20), "z.bin"))
    with socket.create_connection(("127.0.0.1", live)) as sock:
        sock.sendall(
            f"POST /big HTTP/1.1\r\nHost: t\r\nContent-Type: {headers['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        sock.sendall(body[: 3 << 20])
        time.sleep(0.2)
        assert open_fds() >= baseline + 2  # the connection and the temporary file
    deadline = time.monotonic() + 5
    while open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() == baseline


def test_max_rate_pauses_reading(plugin: Files) -> None:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.register(plugin)
    server.configure_uploads(max_rate=1_000_000)
    with TestClient(server) as client:
        transport = client.connect()
        protocol = client.protocol
        assert protocol is not None
        body, headers = multipart(("file", b"r" * 600_000, "r.bin"))
        protocol.data_received(
            f"POST /big HTTP/1.1\r\nHost: t\r\nContent-Type: {headers['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:500_000]
        )
        assert not transport.is_reading()  # half a second ahead of a 1 MB/s schedule
        client.loop.run_until_complete(asyncio.sleep(0.7))
        assert transport.is_reading()
        (response,) = client.send_raw(body[500_000:])
        assert response.json() == {"size": 600_000}
