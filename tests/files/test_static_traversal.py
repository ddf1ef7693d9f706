"""Path traversal, over real sockets: every way out of the root answers 404.

The table is sent byte for byte on a raw socket (no client normalises it),
and a few entries again with curl ``--path-as-is``.  Hypothesis then throws
paths built from the same dangerous pieces at the resolver and the server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dibble
from dibble.files import resolve, split_url_path

GetRaw = Callable[[int, str], tuple[int, bytes]]
LEAKS = (b"SECRET", b"SIBLING", b"hidden", b"[core]")

ESCAPES = [
    "/static/../secret.txt",
    "/static/../../etc/passwd",
    "/static/sub/../../secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/.%2e/secret.txt",
    "/static/%2e./secret.txt",
    "/static/..%5csecret.txt",
    "/static/..%5Csecret.txt",
    "/static/%5c..%5csecret.txt",
    "/static/%252e%252e/secret.txt",
    "/static/%252e%252e%252fsecret.txt",
    "/static/..%252fsecret.txt",
    "/static/%25%32%65%25%32%65/secret.txt",
    "/static/%c0%ae%c0%ae/secret.txt",
    "/static/%e0%80%ae%e0%80%ae/secret.txt",
    "/static/hello.txt%00.html",
    "/static/%00",
    "/static/%00/../secret.txt",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/%2F..%2Fsecret.txt",
    "/static///secret.txt",
    "/static/outside-link.txt",
    "/static/outside-dir/other.txt",
    "/static/outside-dir/",
    "/static/../www2/other.txt",
    "/static/..%2fwww2/other.txt",
    "/static/%2e%2e/www2/other.txt",
    "/static/.hidden",
    "/static/%2ehidden",
    "/static/.git/config",
    "/static/.git/",
    "/static/sub/../.hidden",
    "/static/link-to-hidden",
    "/static/broken-link",
    "/static/./hello.txt",
    "/static/hello.txt/",
    "/static/hello.txt/.",
    "/static/..;/secret.txt",
    "/static/sub/..",
    "/static/nonexistent.txt",
    "http://t/static/../secret.txt",
    "http://t/static/%2e%2e/secret.txt",
]

ALLOWED = [
    ("/static/hello.txt", b"hello\n"),
    ("/static/inside-link.txt", b"hello\n"),
    ("/static/space%20name.txt", b"spaced"),
    ("/static/%C3%BCn%C3%AF.txt", b"unicode"),
    ("/static/sub/note.txt", b"note"),
    ("/static/sub/deeper/x.bin", bytes(range(256)) * 4),
    ("http://t/static/hello.txt", b"hello\n"),
]


@pytest.fixture
def port(serve: Callable[..., dibble.HTTPServer], tree: Path) -> int:
    server = serve(lambda s: s.static("/static", tree, listing=True))
    return server.addresses[0][1]


@pytest.mark.parametrize("target", ESCAPES)
def test_escape_attempts_are_404(port: int, get_raw: GetRaw, target: str) -> None:
    status, body = get_raw(port, target)
    assert status == 404, (target, status, body[:200])
    assert not any(leak in body for leak in LEAKS)


@pytest.mark.parametrize(("target", "expected"), ALLOWED)
def test_files_inside_are_served(port: int, get_raw: GetRaw, target: str, expected: bytes) -> None:
    assert get_raw(port, target) == (200, expected)


def test_backslash_in_the_raw_target(port: int, get_raw: GetRaw) -> None:
    # llhttp may refuse the byte itself (400); if it passes it on, it is a 404.
    status, body = get_raw(port, "/static/..\\secret.txt")
    assert status in (400, 404)
    assert b"SECRET" not in body


@pytest.mark.parametrize(
    "target", ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/outside-link.txt"]
)
def test_escapes_with_curl_path_as_is(port: int, curl: str, target: str) -> None:
    result = subprocess.run(
        [
            curl,
            "-s",
            "--path-as-is",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            f"http://127.0.0.1:{port}{target}",
        ],
        capture_output=True,
        timeout=10,
        check=True,
    )
    body, _, code = result.stdout.rpartition(b"\n")
    assert code == b"404"
    assert b"SECRET" not in body


def test_listing_never_shows_hidden_or_outside_entries(port: int, get_raw: GetRaw) -> None:
    status, body = get_raw(port, "/static/")
    assert status == 200
    for name in (b"hello.txt", b"sub/", b"inside-link.txt"):
        assert name in body
    for name in (
        b".hidden",
        b".git",
        b"outside-link",
        b"outside-dir",
        b"broken-link",
        b"link-to-hidden",
    ):
        assert name not in body


# --- property-based -------------------------------------------------------------

PIECES = [
    "..",
    ".",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%25",
    "%252e",
    "/",
    "//",
    "a",
    "sub",
    "hello.txt",
    "secret.txt",
    "www2",
    ".hidden",
    "%c0%ae",
    "~",
    ";",
]
paths = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map(lambda p: "/" + "".join(p))


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=paths)
def test_resolve_never_leaves_the_root(tree: Path, raw: str) -> None:
    root = str(tree.resolve())
    target = resolve(root, raw)
    if target is None:
        return
    assert target.path == root or target.path.startswith(root + "/")
    assert not any(part.startswith(".") for part in target.relative.split("/") if part)
    assert "secret" not in target.path.rsplit("/", 1)[-1] or target.path.startswith(root + "/")


def resolve_by_realpath(root: str, raw: str) -> tuple[str, str] | None:
    """The reference: realpath of the whole path, commonpath, relpath, no hidden parts."""
    split = split_url_path(raw)
    if split is None:
        return None
    path = os.path.realpath(os.path.join(root, *split[0]))
    if os.path.commonpath([root, path]) != root:
        return None
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    relative = "" if relative == "." else relative
    if any(part.startswith(".") for part in relative.split("/")):
        return None
    return path, relative


WALK_PIECES = [
    "sub",
    "deeper",
    "x.bin",
    "hello.txt",
    "missing",
    "inside-link.txt",
    "outside-link.txt",
    "outside-dir",
    "other.txt",
    "link-to-hidden",
    "broken-link",
    "dir-link",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(WALK_PIECES), min_size=1, max_size=4), slash=st.booleans())
def test_resolve_agrees_with_realpath(tree: Path, parts: list[str], slash: bool) -> None:
    # resolve() walks down with one lstat per segment and only calls realpath
    # when it meets a link: the answer must be the same as realpath's.
    if not (tree / "dir-link").is_symlink():
        os.symlink(tree / "sub", tree / "dir-link")
    root = str(tree.resolve())
    raw = "/" + "/".join(parts) + ("/" if slash else "")
    target = resolve(root, raw)
    expected = resolve_by_realpath(root, raw)
    assert (None if target is None else (target.path, target.relative)) == expected
    if target is not None:
        assert target.trailing_slash is slash


@settings(max_examples=400)
@given(raw=st.text(max_size=40).map(lambda s: "/" + s))
def test_split_never_yields_a_dangerous_segment(raw: str) -> None:
    split = split_url_path(raw)
    if split is None:
        return
    segments, _ = split
    for segment in segments:
        assert segment not in ("", ".", "..")
        assert "/" not in segment
        assert "\\" not in segment
        assert "\x00" not in segment
        assert not segment.startswith(".")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=paths)
def test_server_never_leaks_outside_files(port: int, get_raw: GetRaw, raw: str) -> None:
    status, body = get_raw(port, "/static" + raw)
    assert status in (200, 301, 400, 404)
    assert not any(leak in body for leak in LEAKS)
