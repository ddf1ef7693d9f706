"""Server-side sessions: the session pool and its stores (memory, SQLite, Redis).

::

    class Cart(dibble.Plugin):
        def onAdd(self, item: str) -> str:
            items = self.session.setdefault("items", [])
            items.append(item)
            return f"{len(items)} items"

    server = dibble.HTTPServer(8888, sessions=SessionPool("redis://127.0.0.1:6379/0"))

A plugin's ``self.session`` is its part of the client's session, loaded on
first use and saved when the response goes out.  Concurrent requests of one
session merge key by key; see docs/sessions.md for the rule, the cookie and
the stores.
"""

from ._memory import MemoryStore
from ._pool import (
    AUTH_SERVICE,
    RequestSessions,
    SessionPool,
    new_session_id,
    open_store,
    pool_of,
    service_name,
    session_for,
    sessions_of,
    valid_session_id,
)
from ._redis import RedisStore  # imports the redis package only when one is made
from ._session import Session, SessionTooLarge
from ._sqlite import SQLiteStore
from ._store import (
    Changes,
    Expired,
    Loaded,
    Record,
    SessionInfo,
    SessionStore,
    StoreBusy,
    StoreError,
)

__all__ = [
    "AUTH_SERVICE",
    "Changes",
    "Expired",
    "Loaded",
    "MemoryStore",
    "Record",
    "RedisStore",
    "RequestSessions",
    "SQLiteStore",
    "Session",
    "SessionInfo",
    "SessionPool",
    "SessionStore",
    "SessionTooLarge",
    "StoreBusy",
    "StoreError",
    "new_session_id",
    "open_store",
    "pool_of",
    "service_name",
    "session_for",
    "sessions_of",
    "valid_session_id",
]
