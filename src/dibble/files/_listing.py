"""The directory listing page (Astro-WISE ``Dir``): name, size, date; sortable.

Entries are gathered by ``scan``, which drops what must never show (hidden
names unless allowed, broken links, links that lead outside the root), then
the ``StaticFiles`` hooks (``exclude``, ``list_files``) have their say, and
``render`` fills ``templates/listing.html``.  Sorting is by the query
string: ``?sort=name|size|modified&order=asc|desc``, directories first.
"""

from __future__ import annotations

import functools
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from ..templates import TemplateLoader
from ..text import human_size
from ._paths import is_within

SORT_KEYS: Final = ("name", "size", "modified")


@functools.cache
def _templates() -> TemplateLoader:
    return TemplateLoader(Path(__file__).parent / "templates", auto_reload=False)


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One name in a listed directory."""

    name: str
    is_dir: bool
    size: int
    modified: float
    #: The real path (links resolved).
    path: str


def scan(directory: str, root: str, *, show_hidden: bool) -> list[ListingEntry]:
    """The entries of ``directory`` that may be shown (see the module doc)."""
    entries = []
    with os.scandir(directory) as found:
        for entry in found:
            name = entry.name
            if name.startswith(".") and not show_hidden:
                continue
            try:
                real = os.path.realpath(entry.path)
                status = os.stat(real)
            except OSError:
                continue  # a broken link, or gone meanwhile
            if not is_within(root, real):
                continue
            if not show_hidden and _hidden(os.path.relpath(real, root)):
                continue  # a link to a hidden file: it could not be fetched either
            is_dir = stat.S_ISDIR(status.st_mode)
            if not is_dir and not stat.S_ISREG(status.st_mode):
                continue  # sockets, FIFOs, devices: nothing to download
            entries.append(ListingEntry(name, is_dir, status.st_size, status.st_mtime, real))
    return entries


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") and part != "." for part in relative.split(os.sep))


def sort_entries(entries: list[ListingEntry], key: str, descending: bool) -> list[ListingEntry]:
    if key == "size":
        ordered = sorted(entries, key=lambda e: (e.size, e.name.lower(), e.name))
    elif key == "modified":
        ordered = sorted(entries, key=lambda e: (e.modified, e.name.lower(), e.name))
    else:
        ordered = sorted(entries, key=lambda e: (e.name.lower(), e.name))
    if descending:
        ordered.reverse()
    # Directories first, whatever the order within each group.
    return [e for e in ordered if e.is_dir] + [e for e in ordered if not e.is_dir]


def render(
    url_path: str,
    entries: list[ListingEntry],
    *,
    sort: str,
    descending: bool,
    at_root: bool,
    url_list: bool,
) -> str:
    """The listing page of the directory at ``url_path`` (decoded, ending with ``/``)."""
    rows = []
    for entry in entries:
        href = quote(entry.name) + ("/" if entry.is_dir else "")
        rows.append(
            {
                "NAME": entry.name + ("/" if entry.is_dir else ""),
                "HREF": href,
                "SIZE": "-" if entry.is_dir else human_size(entry.size),
                "BYTES": "" if entry.is_dir else entry.size,
                "MODIFIED": time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry.modified)),
                "KIND": "dir" if entry.is_dir else "file",
            }
        )
    headers = []
    for key, label in zip(SORT_KEYS, ("Name", "Size", "Modified (UTC)"), strict=True):
        current = key == sort
        next_order = "asc" if current and descending else ("desc" if current else "asc")
        arrow = (" \u25bc" if descending else " \u25b2") if current else ""
        headers.append({"HREF": f"?sort={key}&order={next_order}", "LABEL": label, "ARROW": arrow})
    return _templates().render(
        "listing.html",
        TITLE=f"Index of {url_path}",
        HEADER=headers,
        PARENT=not at_root,
        ROW=rows,
        EMPTY=not rows,
        URLS=url_list,
        COUNT=len(rows),
    )
