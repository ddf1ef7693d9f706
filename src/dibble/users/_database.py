"""Where the users live: the configured database (``dibble.db``).

``[database] url`` names it (``sqlite:///path/dibble.sqlite3``, or a plain
path; relative paths are relative to ``[paths] root``, the configuration
file's folder); without one it is ``dibble.sqlite3`` in ``[paths]
data_dir``.  Only SQLite is supported so far.
"""

from __future__ import annotations

from ..db import DATABASE_FILE, database_path, sqlite_path

__all__ = ["DATABASE_FILE", "database_path", "sqlite_path"]
