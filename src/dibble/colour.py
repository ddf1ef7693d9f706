"""Colour helpers for pages: split, join, darken and lighten ``#rrggbb`` colours.

Colours are CSS hex strings (``"#1e90ff"``, ``"#abc"``, with or without the
``#``) or ``(red, green, blue)`` tuples of 0 to 255.  Results are always
lower-case ``#rrggbb``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["Colour", "darken", "join_colour", "lighten", "split_colour"]

Colour = str | Sequence[float]
"""A ``#rrggbb``/``#rgb`` string or a ``(red, green, blue)`` sequence."""

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\Z")


def split_colour(colour: str) -> tuple[int, int, int]:
    """``"#1e90ff"`` → ``(30, 144, 255)``; ``"#abc"`` means ``"#aabbcc"``."""
    match = _HEX.match(colour.strip())
    if match is None:
        raise ValueError(f"not a #rrggbb or #rgb colour: {colour!r}")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def join_colour(rgb: Sequence[float]) -> str:
    """``(30, 144, 255)`` → ``"#1e90ff"``; channels are rounded and clamped to 0 to 255."""
    if len(rgb) != 3:
        raise ValueError(f"a colour has three channels, got {len(rgb)}")
    return "#" + "".join(f"{min(255, max(0, round(channel))):02x}" for channel in rgb)


def _channels(colour: Colour) -> tuple[float, float, float]:
    if isinstance(colour, str):
        return split_colour(colour)
    if len(colour) != 3:
        raise ValueError(f"a colour has three channels, got {len(colour)}")
    return colour[0], colour[1], colour[2]


def darken(colour: Colour, factor: float = 0.8) -> str:
    """``colour`` with every channel multiplied by ``factor`` (0 gives black, 1 no change)."""
    if not 0 <= factor <= 1:
        raise ValueError("factor must be between 0 and 1")
    return join_colour([channel * factor for channel in _channels(colour)])


def lighten(colour: Colour, amount: float = 0.2) -> str:
    """``colour`` moved ``amount`` of the way to white (0 no change, 1 gives white)."""
    if not 0 <= amount <= 1:
        raise ValueError("amount must be between 0 and 1")
    return join_colour([channel + (255 - channel) * amount for channel in _channels(colour)])
