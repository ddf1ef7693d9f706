"""PUT and DELETE on a writable static mount: off by default, authorised, atomic."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.testing import TestClient


def allow_all(request: dibble.Request, method: str, path: str) -> bool:
    return True


def make_client(root: Path, **options: Any) -> TestClient:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.static("/files", root, **options)
    return TestClient(server)


@pytest.fixture
def client(tree: Path) -> Iterator[TestClient]:
    with make_client(tree, writable=True, authorize=allow_all) as c:
        yield c


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_put_creates_then_replaces(client: TestClient, tree: Path) -> None:
    response = client.put("/files/new.txt", body=b"first")
    assert response.status == 201
    assert response.headers["location"] == "/files/new.txt"
    assert (tree / "new.txt").read_bytes() == b"first"
    assert oct((tree / "new.txt").stat().st_mode & 0o777) == oct(0o644)
    response = client.put("/files/new.txt", body=b"second, longer")
    assert response.status == 204
    assert (tree / "new.txt").read_bytes() == b"second, longer"
    assert client.get("/files/new.txt").body == b"second, longer"
    assert response.headers["etag"] == client.get("/files/new.txt").headers["etag"]
    assert leftovers(tree) == []


def test_put_empty_body_and_subdirectory(client: TestClient, tree: Path) -> None:
    assert client.put("/files/sub/empty.txt", body=b"").status == 201
    assert (tree / "sub" / "empty.txt").read_bytes() == b""
    assert leftovers(tree / "sub") == []


def test_put_refusals(client: TestClient, tree: Path) -> None:
    assert client.put("/files/missing-dir/x.txt", body=b"x").status == 409
    assert client.put("/files/sub", body=b"x").status == 409
    assert client.put("/files/sub/", body=b"x").status == 409
    assert client.put("/files/../escape.txt", body=b"x").status == 404
    assert client.put("/files/.hidden", body=b"x").status == 404
    assert client.put("/files/%2e%2e/escape.txt", body=b"x").status == 404
    assert not (tree.parent / "escape.txt").exists()
    assert (tree / ".hidden").read_text() == "hidden"
    assert leftovers(tree) == []


def test_put_preconditions(client: TestClient, tree: Path) -> None:
    etag = client.get("/files/hello.txt").headers["etag"]
    # If-None-Match: * never overwrites.
    assert client.put("/files/hello.txt", body=b"x", headers={"If-None-Match": "*"}).status == 412
    assert client.put("/files/fresh.txt", body=b"x", headers={"If-None-Match": "*"}).status == 201
    assert client.put("/files/hello.txt", body=b"x", headers={"If-Match": '"old"'}).status == 412
    assert (tree / "hello.txt").read_text() == "hello\n"
    assert client.put("/files/hello.txt", body=b"new", headers={"If-Match": etag}).status == 204
    assert (tree / "hello.txt").read_text() == "new"
    assert client.put("/files/nope.txt", body=b"x", headers={"If-Match": "*"}).status == 412
    assert not (tree / "nope.txt").exists()


def test_delete(client: TestClient, tree: Path) -> None:
    assert client.delete("/files/sub/note.txt").status == 204
    assert not (tree / "sub" / "note.txt").exists()
    assert client.delete("/files/sub/note.txt").status == 404
    assert client.delete("/files/sub").status == 409
    assert client.delete("/files/sub/").status == 409
    assert client.delete("/files/../secret.txt").status == 404
    assert (tree.parent / "secret.txt").exists()
    assert client.delete("/files/hello.txt", headers={"If-Match": '"old"'}).status == 412
    assert (tree / "hello.txt").exists()


def test_off_by_default_and_authorisation_required(tree: Path) -> None:
    with make_client(tree) as client:
        assert client.put("/files/x.txt", body=b"x").status == 413  # no body accepted at all
        assert client.delete("/files/hello.txt").status == 405
    with make_client(tree, writable=True) as client:  # no authorize hook: nobody may
        assert client.put("/files/x.txt", body=b"x").status == 403
        assert client.delete("/files/hello.txt").status == 403
    calls: list[tuple[str, str]] = []

    def only_uploads(request: dibble.Request, method: str, path: str) -> bool:
        calls.append((method, path))
        return path.startswith("uploads/") or "yes"  # type: ignore[return-value]

    (tree / "uploads").mkdir()
    with make_client(tree, writable=True, authorize=only_uploads) as client:
        assert client.put("/files/uploads/a.txt", body=b"a").status == 201
        assert client.put("/files/b.txt", body=b"b").status == 403  # truthy is not True
        assert client.delete("/files/uploads/a.txt").status == 204
    assert calls == [("PUT", "uploads/a.txt"), ("PUT", "b.txt"), ("DELETE", "uploads/a.txt")]
    assert not (tree / "x.txt").exists()
    assert (tree / "hello.txt").exists()


def test_put_size_limit(tree: Path) -> None:
    with make_client(tree, writable=True, authorize=allow_all, max_put_size=10) as client:
        assert client.put("/files/small.txt", body=b"0123456789").status == 201
        assert client.put("/files/big.txt", body=b"0123456789A").status == 413
    assert not (tree / "big.txt").exists()
    assert leftovers(tree) == []


def test_put_and_delete_with_curl(
    serve: Callable[..., dibble.HTTPServer], tree: Path, tmp_path: Path, curl: str
) -> None:
    big = tmp_path / "upload.bin"
    big.write_bytes(os.urandom(3 << 20))
    server = serve(lambda s: s.static("/files", tree, writable=True, authorize=allow_all))
    url = f"http://127.0.0.1:{server.addresses[0][1]}/files/up.bin"

    def run(*args: str) -> str:
        result = subprocess.run(
            [curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", *args, url],
            capture_output=True,
            check=True,
            timeout=20,
        )
        return result.stdout.decode()

    assert run("-T", str(big)) == "201"
    assert (tree / "up.bin").read_bytes() == big.read_bytes()
    assert run("-T", str(big)) == "204"
    assert run("-X", "DELETE") == "204"
    assert not (tree / "up.bin").exists()
    assert leftovers(tree) == []
