"""``dibble.Page``: one instance per request, arguments, hooks, templates, streaming."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

import dibble
from dibble.config import parse_config
from dibble.cookies import Cookie
from dibble.pages import Page, PageResult
from dibble.templates import Template
from dibble.testing import TestClient


def serve(*services: tuple[str, Any], **config: Any) -> TestClient:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), access_log=False, test_mode=True
    )
    for name, target in services:
        server.register_service(name, target)
    if config:
        server.apply_config(parse_config(config, check_imports=False), explicit_only=True)
    return TestClient(server)


class Args(Page):
    def get_html(self) -> PageResult:
        return repr(
            (
                self.get_arg("a"),
                self.get_arg("a", "dflt"),
                self.get_arg("e", "dflt"),
                self.get_arg("e", "dflt", use_default_for_empty=False),
                self.get_arg("q", unquote=True),
                self.get_args("a"),
                self.has_arg("a"),
                self.has_arg("nope"),
            )
        )


def test_arguments() -> None:
    with serve(("args", Args)) as client:
        text = client.get("/args?a=1&a=2&e=&q=%2541%2542").text
    assert text == repr(("2", "2", "dflt", "", "AB", ["1", "2"], True, False))


def test_form_arguments() -> None:
    with serve(("args", Args)) as client:
        text = client.post("/args", data={"a": "posted"}).text
    assert text.startswith("('posted'")


class Counter(Page):
    instances: ClassVar[list[int]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, request: dibble.Request, **kwargs: Any) -> None:
        super().__init__(request, **kwargs)
        with self.lock:
            Counter.instances.append(id(self))
        self.seen: list[str] = []

    def get_html(self) -> PageResult:
        self.seen.append(self.request.path)  # state on self is this request's own
        return f"{self.url_name} {self.seen}"


def test_one_instance_per_request() -> None:
    Counter.instances.clear()
    with serve(("count", Counter)) as client:
        assert client.get("/count").text == "count ['/count']"
        assert client.get("/count").text == "count ['/count']"
    assert len(Counter.instances) == 2


class Hooks(Page):
    content_type = "text/plain; charset=utf-8"

    def get_html(self) -> PageResult:
        if self.has_arg("teapot"):
            self.status_code = 418
        return "short and stout"

    def additional_headers(self) -> Mapping[str, str]:
        return {"Cache-Control": "no-store", "X-Page": type(self).__name__}

    def cookies(self) -> Iterable[Cookie]:
        return [*super().cookies(), Cookie("plain", "1", http_only=False)]


def test_hooks() -> None:
    with serve(("hooks", Hooks)) as client:
        response = client.get("/hooks?teapot=1")
    assert response.status == 418
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-page"] == "Hooks"
    assert response.headers["set-cookie"] == "plain=1; Path=/; SameSite=Lax"
    assert response.text == "short and stout"


class Returns(Page):
    def get_html(self) -> PageResult:
        kind = self.get_arg("kind")
        if kind == "bytes":
            return b"\x00\x01"
        if kind == "response":
            self.set_cookie("k", "v")
            return dibble.Response("made", 201, {"X-Made": "yes"})
        if kind == "none":
            return None
        if kind == "error":
            raise dibble.HTTPError(409, "conflict <here>")
        return 42  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("bytes", 200, b"\x00\x01"),
        ("response", 201, b"made"),
        ("none", 200, b""),
        ("error", 409, None),
        ("other", 500, None),
    ],
)
def test_what_get_html_returns(kind: str, status: int, body: bytes | None) -> None:
    with serve(("r", Returns)) as client:
        response = client.get(f"/r?kind={kind}")
    assert response.status == status
    if body is not None:
        assert response.body == body
    if kind == "response":
        assert response.headers["x-made"] == "yes"
        assert response.headers["set-cookie"].startswith("dibble_k=v;")
    if kind == "error":
        assert "conflict &lt;here&gt;" in response.text
    if kind == "other":
        assert "returned int" in response.text


class Stream(Page):
    content_type = "text/plain; charset=utf-8"

    def get_html(self) -> PageResult:
        self.set_cookie("step", "1")
        self.write("please wait… ")
        self.flush()
        self.write("done")
        return None


def test_streaming_page() -> None:
    with serve(("stream", Stream)) as client:
        response = client.get("/stream")
    assert response.text == "please wait… done"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["set-cookie"].startswith("dibble_step=1;")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


class AsyncPage(Page):
    async def get_html(self) -> PageResult:
        await asyncio.sleep(0)
        return f"async {self.get_arg('x')}"


class BlockingPage(Page):
    blocking = True

    def get_html(self) -> PageResult:
        return threading.current_thread().name


def test_async_and_blocking_pages() -> None:
    with serve(("a", AsyncPage), ("b", BlockingPage)) as client:
        assert client.get("/a?x=1").text == "async 1"
        assert client.get("/b").text.startswith("dibble-blocking")


class Deep(Page):
    subpaths = True

    def get_html(self) -> PageResult:
        return "/".join(self.segments) or "-"


def test_subpaths() -> None:
    with serve(("deep", Deep), ("args", Args)) as client:
        assert client.get("/deep").text == "-"
        assert client.get("/deep/").text == "-"
        assert client.get("/deep/a/b%2Fc").text == "a/b/c"
        assert client.get("/args/more").status == 404


def test_default_service_serves_root() -> None:
    with serve(("count", Counter), server={"default_service": "count"}) as client:
        assert client.get("/").text == "count ['/']"


class Wrapped(Page):
    title = "Tea & <biscuits>"

    def get_html(self) -> PageResult:
        return self.encapsulate_body_html("<p>body</p>", extra_head="<meta name='x'>")


def test_encapsulate_body_html() -> None:
    with serve(("w", Wrapped)) as client:
        text = client.get("/w").text
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>Tea &amp; &lt;biscuits&gt;</title>" in text
    assert "<meta name='x'></head>" in text
    assert "<main><p>body</p></main>" in text


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "list.html").write_text(
        "<h1>${TITLE}</h1>${_BEGIN_ROW}<li>${NAME}${_BEGIN_TAG}[${TAG}]${_END_TAG}</li>${_END_ROW}"
    )
    return tmp_path


class Listing(Page):
    template = "list.html"

    def fill_template(self, template: Template) -> None:
        template.set_variable("TITLE", "Fruit <&>")
        for name, tags in (("apple", ["red"]), ("pear", ["green", "ripe"])):
            template.begin_block("ROW")
            template.set_block_variable("NAME", name)
            for tag in tags:
                template.insert_block("TAG", {"TAG": tag})
            template.update_block("ROW")


class Rendered(Page):
    def get_html(self) -> PageResult:
        return self.render_template("list.html", TITLE="x", ROW=[{"NAME": "n", "TAG": []}])


def test_template_pages(templates: Path) -> None:
    config = {"paths": {"templates": str(templates)}}
    with serve(("list", Listing), ("r", Rendered), **config) as client:
        assert client.get("/list").text == (
            "<h1>Fruit &lt;&amp;&gt;</h1><li>apple[red]</li><li>pear[green][ripe]</li>"
        )
        assert client.get("/r").text == "<h1>x</h1><li>n</li>"


def test_template_without_a_template_folder_is_a_500() -> None:
    with serve(("list", Listing)) as client:
        response = client.get("/list")
    assert response.status == 500
    assert "no template folder is configured" in response.text


class NoHtml(Page):
    pass


def test_a_page_without_get_html_is_a_500() -> None:
    with serve(("x", NoHtml)) as client:
        response = client.get("/x")
    assert response.status == 500
    assert "must override get_html() or name a template" in response.text


class Remember(Page):
    def get_html(self) -> PageResult:
        return self.get_arg("project", "none")


def test_cookie_attrs_are_remembered() -> None:
    config = {"server": {"name": "obs"}, "cookies": {"attrs": ["project"], "lifetime": 2}}
    with serve(("p", Remember), **config) as client:
        first = client.get("/p?project=Deep%20Field;1")
        assert first.text == "Deep Field;1"
        cookie = first.headers["set-cookie"]
        assert cookie == (
            "obs_project=Deep%20Field%3B1; Max-Age=172800; Path=/; HttpOnly; SameSite=Lax"
        )
        value = cookie.split(";", 1)[0]
        later = client.get("/p", headers={"Cookie": value})
        assert later.text == "Deep Field;1"
        assert "set-cookie" not in later.headers
        assert client.get("/p").text == "none"
        # An argument wins over the remembered value.
        assert client.get("/p?project=other", headers={"Cookie": value}).text == "other"


class Jar(Page):
    def get_html(self) -> PageResult:
        if self.has_arg("forget"):
            self.delete_cookie("flavour")
        else:
            self.set_cookie("flavour", "oat & raisin", days=1)
        return str(self.get_cookie("flavour"))


def test_cookie_helpers_use_the_site_settings() -> None:
    config = {
        "server": {"name": "obs"},
        "cookies": {"domain": "example.org", "secure": True, "same_site": "Strict"},
    }
    with serve(("jar", Jar), **config) as client:
        response = client.get("/jar", headers={"Cookie": "obs_flavour=plain; flavour=wrong"})
        assert response.text == "plain"
        assert response.headers["set-cookie"] == (
            "obs_flavour=oat%20&%20raisin; Max-Age=86400; Domain=example.org; Path=/; "
            "Secure; HttpOnly; SameSite=Strict"
        )
        gone = client.get("/jar?forget=1").headers["set-cookie"]
        assert gone.startswith("obs_flavour=; Max-Age=0; Domain=example.org; Path=/;")


class Signed(Page):
    def get_html(self) -> PageResult:
        if self.has_arg("state"):
            return repr(self.url_decode_object(self.get_arg("state"), purpose="p"))
        return self.url_encode_object({"n": [1, 2]}, purpose="p")


def test_url_objects_in_pages() -> None:
    config = {"server": {"secret_key": "s" * 40}}
    with serve(("s", Signed), **config) as client:
        token = client.get("/s").text
        assert client.get("/s", params={"state": token}).text == "{'n': [1, 2]}"
        bad = client.get("/s", params={"state": token[:-3]})
        assert bad.status == 400
        assert "invalid url object" in bad.text
    assert dibble.url_decode_object(token, "s" * 40, purpose="p") == {"n": [1, 2]}


def test_page_outside_a_server() -> None:
    request = dibble.Request()
    request.target = b"/x?a=1"
    page = Args(request)
    assert page.get_arg("a") == "1"
    assert page.cookie_name("c") == "dibble_c"
    assert page.settings is None


def test_a_name_is_served_once() -> None:
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context())
    server.register_service("x", Args)
    with pytest.raises(ValueError, match="already served at /x"):
        server.register_service("x", Counter)
    with pytest.raises(ValueError, match="already served at /x"):
        server.register(dibble.Plugin(), prefix="/x")
    with pytest.raises(TypeError, match=r"not a dibble\.Page class"):
        server.register_service("y", object())
