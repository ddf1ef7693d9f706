"""Fixtures for the files tests: a served directory tree and a server factory."""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble

Setup = Callable[[dibble.HTTPServer], None]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp_path/www`` to serve, a sibling ``www2`` and ``secret.txt`` outside it."""
    www = tmp_path / "www"
    (www / "sub" / "deeper").mkdir(parents=True)
    (www / "hello.txt").write_text("hello\n")
    (www / "page.html").write_text("<p>page</p>")
    (www / "style.css").write_text("p{}")
    (www / "data.json").write_text("{}")
    (www / "sub" / "note.txt").write_text("note")
    (www / "sub" / "deeper" / "x.bin").write_bytes(bytes(range(256)) * 4)
    (www / "space name.txt").write_text("spaced")
    (www / "ünï.txt").write_text("unicode")
    (www / ".hidden").write_text("hidden")
    (www / ".git").mkdir()
    (www / ".git" / "config").write_text("[core]")
    (tmp_path / "secret.txt").write_text("SECRET")
    sibling = tmp_path / "www2"
    sibling.mkdir()
    (sibling / "other.txt").write_text("SIBLING")
    os.symlink(tmp_path / "secret.txt", www / "outside-link.txt")
    os.symlink(sibling, www / "outside-dir")
    os.symlink(www / "hello.txt", www / "inside-link.txt")
    os.symlink(www / ".hidden", www / "link-to-hidden")
    os.symlink(tmp_path / "nowhere", www / "broken-link")
    return www


@pytest.fixture
def serve() -> Iterator[Callable[..., dibble.HTTPServer]]:
    """``serve(setup, **settings)``: a server on 127.0.0.1, configured by ``setup(server)``."""
    contexts: list[dibble.Context] = []

    def start(setup: Setup, **settings: Any) -> dibble.HTTPServer:
        settings.setdefault("test_mode", True)
        settings.setdefault("access_log", False)
        context = dibble.Context()
        server = dibble.HTTPServer(("127.0.0.1", 0), context, **settings)
        setup(server)
        context.start_in_thread()
        contexts.append(context)
        return server

    yield start
    for context in contexts:
        context.join(5)
    gc.collect()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def get_raw() -> Callable[[int, str], tuple[int, bytes]]:
    """``get_raw(port, target)``: GET ``target`` sent byte for byte; (status, body)."""

    def get(port: int, target: str) -> tuple[int, bytes]:
        request = f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(
            "latin-1"
        )
        response = raw_request(port, request)
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    return get
