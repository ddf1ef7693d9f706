"""url_encode_object / url_decode_object: signed, compressed JSON; tampering is a 400."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest

import dibble
from dibble.testing import TestClient
from dibble.urlobject import BadURLObject, _sign, url_decode_object, url_encode_object

KEY = b"k" * 32
OTHER = b"o" * 32


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -12.5,
        "text with ünïcode and / ? & = #",
        [1, 2, [3, {"a": None}]],
        {"query": "select * from x", "ids": list(range(100)), "ok": True},
    ],
)
def test_round_trip(value: Any) -> None:
    text = url_encode_object(value, KEY)
    assert text.replace(".", "").replace("-", "").replace("_", "").isalnum()
    assert url_decode_object(text, KEY) == value


def test_tuples_come_back_as_lists() -> None:
    assert url_decode_object(url_encode_object((1, 2), KEY), KEY) == [1, 2]


def test_values_json_cannot_hold_are_refused() -> None:
    with pytest.raises(TypeError):
        url_encode_object({1, 2}, KEY)
    with pytest.raises(ValueError, match="Out of range float"):
        url_encode_object(float("nan"), KEY)


def test_compression_keeps_repetitive_values_short() -> None:
    assert len(url_encode_object(["same"] * 1000, KEY)) < 200


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        url_encode_object(1, b"short")


def flip(text: str, index: int) -> str:
    char = text[index]
    return text[:index] + ("A" if char != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda t: flip(t, 3), "signature does not match"),  # payload changed
        (lambda t: flip(t, len(t) - 2), "signature does not match"),  # signature changed
        (lambda t: t[:-1], "signature does not match"),  # truncated signature
        (lambda t: t[: t.index(".")], "missing signature"),  # signature cut off
        (lambda t: t[: t.index(".") - 2] + t[t.index(".") :], "signature does not match"),
        (lambda t: "", "missing signature"),
        (lambda t: ".", "missing signature"),
        (lambda t: t.replace(".", ".."), "not base64url"),
        (lambda t: "a+b/c=." + t.split(".")[1], "not base64url"),
        (lambda t: t + "x" * 70_000, "too long"),
    ],
)
def test_tampered_values_are_refused(mangle: Any, problem: str) -> None:
    text = url_encode_object({"user": "alice", "admin": False}, KEY)
    with pytest.raises(BadURLObject, match=problem) as info:
        url_decode_object(mangle(text), KEY)
    assert info.value.status == 400


def test_another_key_is_refused() -> None:
    with pytest.raises(BadURLObject, match="signature"):
        url_decode_object(url_encode_object(1, KEY), OTHER)


def test_purpose_binds_a_value_to_its_use() -> None:
    text = url_encode_object("x", KEY, purpose="delete-form")
    assert url_decode_object(text, KEY, purpose="delete-form") == "x"
    with pytest.raises(BadURLObject):
        url_decode_object(text, KEY, purpose="other-form")
    with pytest.raises(BadURLObject):
        url_decode_object(text, KEY)


def signed(packed: bytes) -> str:
    """A value with a valid signature around arbitrary bytes (what a key leak allows)."""
    payload = base64.urlsafe_b64encode(packed).rstrip(b"=").decode()
    return f"{payload}.{_sign(KEY, '', payload)}"


def test_decompression_is_bounded() -> None:
    bomb = b"\x01" + zlib.compress(b"[" + b"0," * 5_000_000 + b"0]", 9)
    assert len(bomb) < 20_000
    with pytest.raises(BadURLObject, match="expands to more than 1024 bytes"):
        url_decode_object(signed(bomb), KEY, max_size=1024)
    with pytest.raises(BadURLObject, match="expands to more than"):
        url_decode_object(signed(bomb), KEY)


@pytest.mark.parametrize(
    ("packed", "problem"),
    [
        (b"\x02" + zlib.compress(b"1"), "unknown format version"),
        (b"\x01not zlib", "corrupt data"),
        (b"\x01" + zlib.compress(b"[1, 2")[:-6], "truncated data"),
        (b"\x01" + zlib.compress(b"{not json"), "corrupt data"),
        (b"\x01" + zlib.compress(b"\xff\xfe"), "corrupt data"),
    ],
)
def test_signed_but_broken_payloads_are_refused(packed: bytes, problem: str) -> None:
    with pytest.raises(BadURLObject, match=problem):
        url_decode_object(signed(packed), KEY)


def test_nothing_is_ever_unpickled() -> None:
    payload = json.dumps({"__reduce__": "os.system"})
    packed = b"\x01" + zlib.compress(payload.encode())
    assert url_decode_object(signed(packed), KEY) == {"__reduce__": "os.system"}


class Carry(dibble.Plugin):
    def onMake(self) -> str:
        return url_encode_object({"rows": [1, 2, 3]})

    def onUse(self, state: str) -> dict[str, Any]:
        value = url_decode_object(state)
        assert isinstance(value, dict)
        return value


def test_without_a_key_the_servers_secret_is_used() -> None:
    with TestClient(Carry()) as client:
        token = client.get("/make").text
        assert client.get("/use", params={"state": token}).json() == {"rows": [1, 2, 3]}
        response = client.get("/use", params={"state": flip(token, 2)})
        assert response.status == 400
        assert "invalid url object: signature does not match" in response.text


def test_without_a_key_outside_a_request_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="need key="):
        url_encode_object(1)
