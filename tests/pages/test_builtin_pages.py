"""The built-in pages: Forward, ErrorPage, Info."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import dibble
from dibble.pages import ErrorPage, Forward, Info, PageResult, error_response, forward
from dibble.testing import TestClient


def serve(*services: tuple[str, Any]) -> TestClient:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), access_log=False, test_mode=True
    )
    for name, target in services:
        server.register_service(name, target)
    return TestClient(server)


class ToDocs(Forward):
    url = "https://docs.example.org/start?a=1&b=2"


class Slowly(Forward):
    url = "/next"
    delay = 3
    message = "The page moved <here>."


class Chosen(Forward):
    def target(self) -> str:
        return "/item/" + self.get_arg("id", "0")


def test_forward_page_redirects() -> None:
    with serve(("docs", ToDocs), ("item", Chosen)) as client:
        response = client.get("/docs")
        assert response.status == 303
        assert response.headers["location"] == "https://docs.example.org/start?a=1&b=2"
        assert "href='https://docs.example.org/start?a=1&amp;b=2'" in response.text
        assert client.get("/item?id=7").headers["location"] == "/item/7"


def test_forward_page_with_a_delay() -> None:
    with serve(("slow", Slowly)) as client:
        response = client.get("/slow")
    assert response.status == 200
    assert "<meta http-equiv='refresh' content='3;url=/next'>" in response.text
    assert "The page moved &lt;here&gt;." in response.text


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_forward_helper(status: int) -> None:
    response = forward("/there", status)
    assert response.status == status
    assert ("Location", "/there") in response.headers
    assert dibble.Forward.to("/there", status).headers == response.headers


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "/a\r\nSet-Cookie: x=1", "JAVASCRIPT:x"]
)
def test_forward_refuses_dangerous_urls(url: str) -> None:
    with pytest.raises(ValueError, match="cannot forward"):
        forward(url)


def test_forward_refuses_non_redirect_status() -> None:
    with pytest.raises(ValueError, match="not a redirect status"):
        forward("/x", 200)


class FromUser(Forward):
    def target(self) -> str:
        return self.get_arg("next", "/")


def test_a_forward_to_a_script_from_the_request_is_a_500_not_a_script() -> None:
    with serve(("go", FromUser)) as client:
        response = client.get("/go?next=javascript:alert(1)")
    assert response.status == 500
    assert "javascript:alert(1)" not in response.headers.get("location", "")


class Gone(ErrorPage):
    status = 410
    message: ClassVar[str] = "It is <gone>."


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 404),
        ("?status=503", 503),
        ("?status=418", 418),
        ("?status=200", 404),
        ("?status=x", 404),
    ],
)
def test_error_page(query: str, status: int) -> None:
    with serve(("error", ErrorPage)) as client:
        response = client.get("/error" + query)
    assert response.status == status
    assert f"<h1>{status} " in response.text
    assert "<style>" in response.text


def test_error_page_subclass() -> None:
    with serve(("gone", Gone)) as client:
        response = client.get("/gone")
    assert response.status == 410
    assert "410 Gone" in response.text
    assert "It is &lt;gone&gt;." in response.text


def test_error_response_for_every_status() -> None:
    for status in range(400, 600):
        response = error_response(status, "m")
        assert response.status == status
    with pytest.raises(ValueError, match="not an error status"):
        error_response(302)


class Unknown(dibble.Plugin):
    def on_unknown(self, path: str, params: Any) -> dibble.Response:
        return ErrorPage.response(404, f"nothing at {path}")


def test_error_page_from_on_unknown() -> None:
    with TestClient(Unknown()) as client:
        response = client.get("/missing<x>")
    assert response.status == 404
    assert "nothing at /missing&lt;x&gt;" in response.text


def test_info_page() -> None:
    with serve(("info", Info)) as client:
        response = client.get(
            "/info?b=<script>&a=1&a=2",
            headers={"Cookie": "secret=1", "Authorization": "Basic eA==", "X-Test": "<t>"},
        )
    text = response.text
    assert response.status == 200
    assert "<title>Server information</title>" in text
    assert "<th>service</th><td>/info</td>" in text
    assert "<th>client</th><td>127.0.0.1</td>" in text
    assert "<tr><th>a</th><td><div>1</div><div>2</div></td></tr>" in text
    assert "&lt;script&gt;" in text
    assert "<script>" not in text
    assert "<th>cookie</th><td>(hidden)</td>" in text
    assert "<th>authorization</th><td>(hidden)</td>" in text
    assert "<th>x-test</th><td>&lt;t&gt;</td>" in text
    assert "secret=1" not in text


def test_builtin_pages_are_exported() -> None:
    assert dibble.Forward is Forward
    assert dibble.ErrorPage is ErrorPage
    assert dibble.Info is Info
    assert dibble.forward is forward


class Plain(dibble.Page):
    def get_html(self) -> PageResult:
        return "plain"


def test_page_export() -> None:
    with serve(("p", Plain)) as client:
        assert client.get("/p").text == "plain"
