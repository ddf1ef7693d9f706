"""Validators and conditional requests (RFC 9110 §8.8 and §13).

A file's validators are its ``ETag`` (modification time in nanoseconds and
size: strong, since a change of either means different bytes for any
editor that writes a file whole) and its ``Last-Modified`` time.  The
preconditions are evaluated in the order of RFC 9110 §13.2.2:

1. ``If-Match``; false → 412.
2. Without it, ``If-Unmodified-Since``; false → 412.
3. ``If-None-Match``; false → 304 for GET and HEAD, else 412.
4. Without it, for GET and HEAD, ``If-Modified-Since``; false → 304.
5. ``If-Range`` decides later whether a ``Range`` is honoured.

Malformed dates are ignored, as the RFC asks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Final

_ENTITY_TAG: Final = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


def make_etag(status: os.stat_result) -> str:
    """A strong entity tag from modification time (ns) and size."""
    return f'"{status.st_mtime_ns:x}-{status.st_size:x}"'


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP date (any of the three RFC forms), or None."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None  # RFC 9110 dates are GMT; one without a zone is malformed
    return int(moment.timestamp())


def _tags(value: str) -> list[tuple[bool, str]] | None:
    """``(weak, opaque-tag)`` pairs of an entity-tag list; None if malformed."""
    tags: list[tuple[bool, str]] = []
    position = 0
    value = value.strip()
    while position < len(value):
        match = _ENTITY_TAG.match(value, position)
        if match is None:
            return None
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    return tags


def _matches(header: str, etag: str, *, weak: bool) -> bool:
    if header.strip() == "*":
        return True
    tags = _tags(header)
    if not tags:
        return False
    ours_weak = etag.startswith("W/")
    ours = etag[2:] if ours_weak else etag
    for tag_weak, opaque in tags:
        if opaque == ours and (weak or not (tag_weak or ours_weak)):
            return True
    return False


def evaluate_preconditions(
    method: str,
    headers: Mapping[str, str],
    etag: str | None,
    last_modified: int | None,
) -> int | None:
    """412 or 304 when a precondition says so, else None (go on).

    ``etag`` and ``last_modified`` are None when the resource does not
    exist: then ``If-Match`` (even ``*``) fails, and ``If-None-Match: *``
    succeeds, which is what a PUT that must not overwrite relies on.
    """
    exists = etag is not None
    if_match = headers.get("if-match")
    if if_match is not None:
        if not exists or not _matches(if_match, etag or "", weak=False):
            return 412
    else:
        since = headers.get("if-unmodified-since")
        if since is not None and exists and last_modified is not None:
            date = parse_http_date(since)
            if date is not None and last_modified > date:
                return 412
    if_none_match = headers.get("if-none-match")
    safe = method in ("GET", "HEAD")
    if if_none_match is not None:
        if exists and _matches(if_none_match, etag or "", weak=True):
            return 304 if safe else 412
    elif safe and exists and last_modified is not None:
        since = headers.get("if-modified-since")
        if since is not None:
            date = parse_http_date(since)
            if date is not None and last_modified <= date:
                return 304
    return None


def if_range_allows(value: str, etag: str, last_modified: int) -> bool:
    """Whether ``If-Range: value`` lets a ``Range`` be honoured (RFC 9110 §13.1.5)."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        # Strong comparison: a weak tag never matches.
        return not value.startswith("W/") and value == etag
    date = parse_http_date(value)
    return date is not None and date == last_modified
