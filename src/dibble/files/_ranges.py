"""``Range: bytes=...`` requests (RFC 9110 §14): parsing, checking, multipart framing.

``parse_ranges`` answers one of three things:

* ``None``: ignore the field and send the whole file (200).  That is the
  answer to a unit other than bytes, to bad syntax, and to abuse: more than
  ``MAX_RANGES`` ranges, or ranges that overlap (a client asking for the same
  bytes many times over, RFC 9110 §17.15);
* ``[]``: no range can be satisfied (416, with ``Content-Range: bytes */size``);
* the satisfiable ranges as inclusive ``(first, last)`` pairs, in the order
  asked, the unsatisfiable ones dropped.  One range is sent as a plain 206;
  several as ``multipart/byteranges``.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Final

MAX_RANGES: Final = 16
_MAX_DIGITS: Final = 19  # 2**63 has 19 digits; longer numbers are abuse


def _number(text: str) -> int | None:
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_ranges(value: str, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges of ``Range: value`` for a file of ``size`` bytes (see the module doc)."""
    unit, sep, specs = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [part.strip() for part in specs.split(",")]
    parts = [part for part in parts if part]
    if not parts or len(parts) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for part in parts:
        first_text, dash, last_text = part.partition("-")
        if not dash:
            return None
        first_text, last_text = first_text.strip(), last_text.strip()
        if first_text:
            first = _number(first_text)
            if first is None:
                return None
            if last_text:
                last = _number(last_text)
                if last is None or last < first:
                    return None
            else:
                last = size - 1
            if first >= size:
                continue  # unsatisfiable; others may be fine
            ranges.append((first, min(last, size - 1)))
        else:
            suffix = _number(last_text)
            if suffix is None:
                return None
            if suffix == 0 or size == 0:
                continue
            ranges.append((max(0, size - suffix), size - 1))
    ordered = sorted(ranges)
    for (_, previous_last), (first, _) in itertools.pairwise(ordered):
        if first <= previous_last:
            return None  # overlapping ranges: send the file once instead
    return ranges


def content_range(first: int, last: int, size: int) -> str:
    return f"bytes {first}-{last}/{size}"


def new_boundary() -> str:
    """A multipart boundary that cannot occur in the file by more than chance."""
    return "dibble-" + secrets.token_hex(12)


def multipart_pieces(
    ranges: list[tuple[int, int]], size: int, content_type: str, boundary: str
) -> list[bytes | tuple[int, int]]:
    """The body of a ``multipart/byteranges`` response as bytes and ``(offset, length)`` pieces."""
    pieces: list[bytes | tuple[int, int]] = []
    lead = b""
    for first, last in ranges:
        part_head = (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: {content_range(first, last, size)}\r\n\r\n"
        ).encode("latin-1")
        pieces.append(lead + part_head)
        pieces.append((first, last - first + 1))
        lead = b"\r\n"
    pieces.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return pieces
