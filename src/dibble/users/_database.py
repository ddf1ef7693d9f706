"""Where the users live: the configured database.

``[database] url`` names it (``sqlite:///path/dibble.sqlite3``, or a plain
path; relative paths are relative to ``[paths] root``, the configuration
file's folder); without one it is ``dibble.sqlite3`` in ``[paths]
data_dir``.  Only SQLite is supported so far.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["DATABASE_FILE", "database_path", "sqlite_path"]

#: The database file in the data directory when no URL is configured.
DATABASE_FILE = "dibble.sqlite3"


def sqlite_path(url: str, root: str = "") -> str:
    """The file an ``sqlite:///...`` URL (or a plain path) names; ValueError otherwise."""
    if "://" in url:
        scheme, _, rest = url.partition("://")
        if scheme != "sqlite":
            raise ValueError(f"only sqlite databases are supported, not {scheme}://")
        # As elsewhere: sqlite:///relative/file, sqlite:////absolute/file.
        url = rest[1:] if rest.startswith("/") else rest
    if not url:
        raise ValueError("the database URL names no file")
    if not os.path.isabs(url) and root:
        url = os.path.join(root, url)
    return url


def database_path(config: Config) -> str | None:
    """The SQLite file of ``config``'s database, or None when there is none."""
    section = getattr(config, "database", None)
    url = getattr(section, "url", "") if section is not None else ""
    if url:
        return sqlite_path(url, config.paths.root)
    if config.paths.data_dir:
        return os.path.join(config.paths.data_dir, DATABASE_FILE)
    return None
