"""dibble.colour: split, join, darken, lighten."""

from __future__ import annotations

import pytest

from dibble.colour import darken, join_colour, lighten, split_colour


def test_split() -> None:
    assert split_colour("#1e90ff") == (30, 144, 255)
    assert split_colour("1E90FF") == (30, 144, 255)
    assert split_colour(" #abc ") == (0xAA, 0xBB, 0xCC)


@pytest.mark.parametrize("colour", ["", "#12345", "#ggg", "red", "#1234567", "rgb(1,2,3)"])
def test_split_rejects_what_is_not_hex(colour: str) -> None:
    with pytest.raises(ValueError, match="colour"):
        split_colour(colour)


def test_join_rounds_and_clamps() -> None:
    assert join_colour((30, 144, 255)) == "#1e90ff"
    assert join_colour([-5, 300, 127.6]) == "#00ff80"
    with pytest.raises(ValueError, match="three channels"):
        join_colour((1, 2))


def test_join_inverts_split() -> None:
    assert join_colour(split_colour("#0a0b0c")) == "#0a0b0c"


def test_darken() -> None:
    assert darken("#ffffff") == "#cccccc"
    assert darken("#1e90ff", 0.5) == "#0f4880"
    assert darken((200, 100, 0), 0) == "#000000"
    assert darken("#abc", 1) == "#aabbcc"
    with pytest.raises(ValueError, match="factor"):
        darken("#fff", 1.5)


def test_lighten() -> None:
    assert lighten("#000000", 0.5) == "#808080"
    assert lighten("#123456", 0) == "#123456"
    assert lighten("#123456", 1) == "#ffffff"
    with pytest.raises(ValueError, match="amount"):
        lighten("#fff", -0.1)
    with pytest.raises(ValueError, match="three channels"):
        lighten((1, 2, 3, 4))
