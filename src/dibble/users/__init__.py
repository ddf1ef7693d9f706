"""Users, projects and privileges, with scrypt password hashes.

::

    users = UserStore("data/dibble.sqlite3")
    users.add("alice", "correct horse", projects={"lofar": WRITE})
    users.verify("alice", "correct horse")     # User(name='alice', ...)

The ``dibble user`` command manages the same database; see docs/auth.md.
"""

from ._database import DATABASE_FILE, database_path, sqlite_path
from ._hashing import (
    DEFAULT_PARAMS,
    MAX_PASSWORD_LENGTH,
    ScryptParams,
    hash_password,
    needs_rehash,
    verify_password,
)
from ._store import ADMIN, MAX_PRIVILEGE, READ, WRITE, User, UserError, UserStore, valid_name

__all__ = [
    "ADMIN",
    "DATABASE_FILE",
    "DEFAULT_PARAMS",
    "MAX_PASSWORD_LENGTH",
    "MAX_PRIVILEGE",
    "READ",
    "WRITE",
    "ScryptParams",
    "User",
    "UserError",
    "UserStore",
    "database_path",
    "hash_password",
    "needs_rehash",
    "sqlite_path",
    "valid_name",
    "verify_password",
]
