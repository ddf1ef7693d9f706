"""From a raw URL path to a file below a root directory, or to nothing at all.

The one rule: a request never reaches a file outside the root.  Every check
runs on the *raw* (still percent-encoded) path first, because a decoded path
has lost the difference between ``/`` and ``%2f``:

* refused outright in the raw path: backslashes, control characters, and the
  encoded forms of NUL, ``/`` and ``\\`` (``%00``, ``%2f``, ``%5c``);
* decoded once, as strict UTF-8; a result that still contains a ``%XX``
  escape was encoded twice and is refused (there is no second decoding that
  could turn ``%252e%252e`` into ``..``, but such names are never legitimate);
* segments ``.``, ``..`` and empty ones (``//``, which could make an absolute
  path) are refused, and so are hidden names (a leading dot) unless allowed;
* the joined path is resolved with ``realpath`` and must still lie below the
  root's real path by ``commonpath``, which, unlike a string prefix test,
  tells ``/srv/www2`` from ``/srv/www`` and catches symlinks that lead out.
  (Only paths that contain a symbolic link need it: one ``lstat`` per segment
  below the root finds out, and a path without links is already real.)

Every refusal is the same ``None``, answered 404: a client learns nothing
about what exists outside, or why.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

_RAW_FORBIDDEN: Final = re.compile(r"[\x00-\x1f\x7f\\]|%(?:00|2[fF]|5[cC])")
_ESCAPE: Final = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL path leads below the root."""

    #: The real (resolved) file system path.
    path: str
    #: The path relative to the root, ``/``-separated, without a leading ``/``.
    relative: str
    #: The URL path ended with ``/`` (a directory was asked for).
    trailing_slash: bool


def split_url_path(raw: str, *, allow_hidden: bool = False) -> tuple[list[str], bool] | None:
    """Decoded, checked segments of ``raw`` (a path below a mount, starting with ``/``).

    Returns ``(segments, trailing_slash)``, or None when the path is refused.
    ``raw`` of ``""`` or ``"/"`` is the root: no segments (``""`` without the
    trailing slash, so that a directory can be redirected to its ``/`` form).
    """
    if _RAW_FORBIDDEN.search(raw):
        return None
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if _ESCAPE.search(decoded) or _CONTROL.search(decoded):
        return None
    if not decoded:
        return [], False  # the mount itself, without its slash
    if decoded[0] != "/":
        return None
    trailing = decoded.endswith("/")
    body = decoded[1:-1] if trailing else decoded[1:]
    if not body:
        return [], True
    segments = body.split("/")
    for segment in segments:
        if not segment or segment in (".", ".."):
            return None
        if segment[0] == "." and not allow_hidden:
            return None
    return segments, trailing


def resolve(root: str, raw: str, *, allow_hidden: bool = False) -> Target | None:
    """The file ``raw`` names below ``root`` (a real path), or None if refused.

    The file need not exist; only where it would be is checked.
    """
    split = split_url_path(raw, allow_hidden=allow_hidden)
    if split is None:
        return None
    segments, trailing = split
    if not segments:
        return Target(root, "", trailing)
    # Walk down from the root with one lstat per segment.  The root is a real
    # path and every segment is a plain name, so while no segment is a
    # symbolic link the joined path is already what realpath would return
    # (and below the root); realpath itself would also lstat each of the
    # root's own components, and costs about five times as much.  A missing
    # segment ends the walk: nothing below it exists either.
    path = "" if root == os.sep else root
    for depth, segment in enumerate(segments, 1):
        path = path + os.sep + segment
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            path = os.sep.join((path, *segments[depth:]))
            break
        if stat.S_ISLNK(mode):
            return _resolve_links(root, segments, trailing, allow_hidden)
    return Target(path, "/".join(segments), trailing)


def _resolve_links(
    root: str, segments: list[str], trailing: bool, allow_hidden: bool
) -> Target | None:
    """``resolve`` for a path with a symbolic link in it: realpath, then the checks."""
    path = os.path.realpath(os.path.join(root, *segments))
    if not is_within(root, path):
        return None
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    if relative == ".":
        relative = ""
    # A symlink inside the root may still point at a hidden file.
    if not allow_hidden and any(part.startswith(".") for part in relative.split("/") if part):
        return None
    return Target(path, relative, trailing)


def is_within(root: str, path: str) -> bool:
    """Whether real path ``path`` is ``root`` or below it (both absolute, resolved)."""
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:  # different drives, or a mix of absolute and relative
        return False
