"""Request parameters as methlet arguments, converted by annotation."""

from __future__ import annotations

from typing import Any

import pytest

import dibble
from dibble.testing import TestClient


class Params(dibble.Plugin):
    def onText(self, name: str = "world") -> str:
        return f"hello {name}"

    def onUntyped(self, value=None):  # type: ignore[no-untyped-def]
        return repr(value)

    def onNumbers(self, count: int, ratio: float = 1.0) -> dict[str, Any]:
        return {"count": count, "ratio": ratio}

    def onFlag(self, on: bool = False) -> dict[str, bool]:
        return {"on": on}

    def onMany(self, tag: list[str] | None = None, n: list[int] | None = None) -> dict[str, Any]:
        return {"tag": tag, "n": n}

    def onOptional(self, year: int | None = None) -> dict[str, Any]:
        return {"year": year}

    def onAll(self, **params: Any) -> dict[str, Any]:
        return params

    def onKeyword(self, *, key: str) -> str:
        return key


@pytest.fixture
def client() -> Any:
    with TestClient(Params()) as c:
        yield c


def test_strings(client: TestClient) -> None:
    assert client.get("/text").text == "hello world"
    assert client.get("/text?name=Ann%20B").text == "hello Ann B"
    assert client.get("/text?name=").text == "hello "
    assert client.get("/text?name=a&name=b").text == "hello b"  # the last value wins
    assert client.get("/untyped?value=x").text == "'x'"


def test_numbers(client: TestClient) -> None:
    assert client.get("/numbers?count=3&ratio=0.5").json() == {"count": 3, "ratio": 0.5}
    assert client.get("/numbers?count=-3").json() == {"count": -3, "ratio": 1.0}


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("count=abc", "count"),
        ("count=1.5", "count"),
        ("count=1_000", "count"),
        ("count=%D9%A1", "count"),  # an Arabic-Indic digit
        ("count=", "count"),
        ("count=1&ratio=x", "ratio"),
        ("count=1&ratio=nan", "ratio"),
        ("count=1&ratio=inf", "ratio"),
        ("", "count"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(
    client: TestClient, query: str, name: str
) -> None:
    response = client.get(f"/numbers?{query}")
    assert response.status == 400
    assert f"parameter &#x27;{name}&#x27;" in response.text


def test_bool(client: TestClient) -> None:
    for text, expected in [("1", True), ("yes", True), ("On", True), ("0", False), ("off", False)]:
        assert client.get(f"/flag?on={text}").json() == {"on": expected}
    assert client.get("/flag?on=maybe").status == 400


def test_lists(client: TestClient) -> None:
    assert client.get("/many?tag=a&tag=b&n=1&n=2").json() == {"tag": ["a", "b"], "n": [1, 2]}
    assert client.get("/many").json() == {"tag": None, "n": None}
    assert client.get("/many?n=1&n=x").status == 400


def test_optional(client: TestClient) -> None:
    assert client.get("/optional").json() == {"year": None}
    assert client.get("/optional?year=2003").json() == {"year": 2003}


def test_unknown_parameters_are_ignored_unless_var_keyword(client: TestClient) -> None:
    assert client.get("/text?name=x&other=y").text == "hello x"
    assert client.get("/all?a=1&b=2&b=3").json() == {"a": "1", "b": ["2", "3"]}


def test_keyword_only(client: TestClient) -> None:
    assert client.get("/keyword?key=k").text == "k"
    assert client.get("/keyword").status == 400


def test_urlencoded_body(client: TestClient) -> None:
    response = client.post("/numbers?ratio=2", data={"count": "5"})
    assert response.json() == {"count": 5, "ratio": 2.0}


def test_non_utf8_form_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/text",
        body=b"name=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert "UTF-8" in response.text


def test_too_many_fields_is_400(client: TestClient) -> None:
    query = "&".join(f"f{i}=1" for i in range(1001))
    response = client.get(f"/all?{query}")
    assert response.status == 400
    assert "parameters" in response.text


def test_json_body_is_not_parsed_as_a_form(client: TestClient) -> None:
    assert client.post("/text", json_body={"name": "x"}).text == "hello world"


class Custom:
    def __init__(self, value: str) -> None:
        self.value = value

    @classmethod
    def from_param(cls, text: str) -> Custom:
        if not text.startswith("c:"):
            raise ValueError("expected c:...")
        return cls(text[2:])


class UsesCustom(dibble.Plugin):
    def onHome(self, thing: Custom) -> str:
        return thing.value


def test_custom_converter() -> None:
    with TestClient(UsesCustom()) as client:
        assert client.get("/?thing=c:x").text == "x"
        assert client.get("/?thing=x").status == 400
