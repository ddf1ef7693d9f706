"""Methlet naming, prefixes, positional segments and unknown URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import dibble
from dibble.app import methlet_name
from dibble.testing import TestClient


@pytest.mark.parametrize(
    ("segment", "name"),
    [
        ("", "onHome"),
        ("spam", "onSpam"),
        ("eggs.gif", "onEggsGif"),
        ("spam-eggs", "onSpamEggs"),
        ("spam_eggs", "onSpamEggs"),
        ("fooBar", "onFooBar"),
        ("v2", "onV2"),
        ("2fast", None),
        ("a b", None),
        ("caf\u00e9", None),
        ("..", None),
        ("%2e", None),
    ],
)
def test_methlet_names(segment: str, name: str | None) -> None:
    assert methlet_name(segment) == name


class Site(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    def onSpam(self) -> str:
        return "spam"

    def onEggsGif(self) -> bytes:
        return b"GIF89a"

    def onUser(self, uid: int, tab: str = "profile") -> str:
        return f"user {uid} {tab}"

    def onFiles(self, *parts: str) -> str:
        return "/".join(parts)

    def onStyleCss(self) -> str:
        return "body{}"

    def helper(self) -> str:
        return "not exposed"

    def on_lower(self) -> str:
        return "not exposed"

    onNotCallable = "text"


class Second(dibble.Plugin):
    def onSpam(self) -> str:
        return "second spam"

    def onOnlyHere(self) -> str:
        return "second only"


@pytest.fixture
def client() -> Any:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), test_mode=True, access_log=False
    )
    server.register(Site(), Second())
    with TestClient(server) as c:
        yield c


def test_naming(client: TestClient) -> None:
    assert client.get("/").text == "home"
    assert client.get("/spam").text == "spam"
    assert client.get("/spam/").text == "spam"
    assert client.get("/eggs.gif").body == b"GIF89a"


def test_plugins_searched_in_order(client: TestClient) -> None:
    assert client.get("/spam").text == "spam"
    assert client.get("/only-here").text == "second only"


def test_content_type_from_extension(client: TestClient) -> None:
    assert client.get("/eggs.gif").headers["content-type"] == "image/gif"
    assert client.get("/style.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/spam").headers["content-type"] == "text/html; charset=utf-8"


def test_positional_segments(client: TestClient) -> None:
    assert client.get("/user/42").text == "user 42 profile"
    assert client.get("/user/42/posts").text == "user 42 posts"
    assert client.get("/user?uid=7").text == "user 7 profile"
    assert client.get("/files/a/b%2Fc/d").text == "a/b/c/d"


def test_too_many_segments_is_404(client: TestClient) -> None:
    assert client.get("/user/1/2/3").status == 404
    assert client.get("/spam/extra").status == 404


def test_bad_positional_value_is_400_naming_it(client: TestClient) -> None:
    response = client.get("/user/abc")
    assert response.status == 400
    assert "uid" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/helper",
        "/on_lower",
        "/lower",
        "/not-callable",
        "/on-unknown",
        "/incoming-connection",
        "/write",
        "/request",
        "/Write",
        "/..",
        "/%2e%2e/etc",
    ],
)
def test_only_on_methods_are_exposed(client: TestClient, path: str) -> None:
    assert client.get(path).status == 404


class Admin(dibble.Plugin):
    def onHome(self) -> str:
        return "admin home"

    def onUsers(self) -> str:
        return "admin users"


def test_prefix_mounting() -> None:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), access_log=False)
    server.register(Site())
    server.register(Admin(), prefix="/admin/")
    with TestClient(server) as client:
        assert client.get("/admin").text == "admin home"
        assert client.get("/admin/").text == "admin home"
        assert client.get("/admin/users").text == "admin users"
        assert client.get("/administrator").status == 404
        assert client.get("/spam").text == "spam"
        assert client.get("/admin/spam").status == 404


class Custom404(dibble.Plugin):
    def onHome(self) -> str:
        return "home"

    def on_unknown(self, path: str, params: Mapping[str, list[str]]) -> dibble.Response:
        return dibble.Response(f"nothing at {path} {dict(params)}", 404)


def test_on_unknown_override() -> None:
    with TestClient(Custom404()) as client:
        response = client.get("/missing/page?a=1")
        assert response.status == 404
        assert response.text == "nothing at /missing/page {'a': ['1']}"


def test_unknown_routes_are_cached_apart_and_dropped_on_registration() -> None:
    from dibble.app._routing import Router

    class Late(dibble.Plugin):
        def onMissing(self) -> str:
            return "here now"

    router = Router(1024)
    router.register(Custom404())
    first = router.resolve(b"/missing/page")
    assert first.unknown
    assert router.resolve(b"/missing/page") is first  # resolved once
    assert b"/missing/page" not in router.cache  # methlet routes keep their cache
    router.register(Late())
    assert not router.resolve(b"/missing").unknown
    assert router.resolve(b"/missing/page") is not first


def test_default_404_page(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status == 404
    assert "/nowhere" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_register_refuses_non_plugins() -> None:
    server = dibble.HTTPServer(0, dibble.Context())
    with pytest.raises(TypeError, match=r"not a dibble\.Plugin"):
        server.register(object())  # type: ignore[arg-type]


def test_bad_annotation_fails_at_registration() -> None:
    class Bad(dibble.Plugin):
        def onX(self, value: dict[str, int]) -> str:
            return ""

    server = dibble.HTTPServer(0, dibble.Context())
    with pytest.raises(TypeError, match=r"onX\(value\)"):
        server.register(Bad())
