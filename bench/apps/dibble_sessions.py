"""The session benchmark's dibble app: /plaintext, and /session (reads and writes a session).

Served with ``dibble serve bench/apps/dibble_sessions.py -H 127.0.0.1 -p PORT
--no-access-log``; the store comes from ``DIBBLE_BENCH_STORE`` (``memory``,
``sqlite:////abs/file`` or ``redis://host:port/db``).
"""

import os

import dibble
from dibble.sessions import SessionPool


class Bench(dibble.Plugin):
    session_service = "bench"

    def onPlaintext(self) -> dibble.Response:
        return dibble.Response(b"Hello, World!", content_type="text/plain")

    def onSession(self) -> dibble.Response:
        session = self.session
        count = session.get("count", 0) + 1
        session["count"] = count
        return dibble.Response(b"count %d" % count, content_type="text/plain")


server = dibble.HTTPServer(
    8888,
    sessions=SessionPool(os.environ.get("DIBBLE_BENCH_STORE", "memory"), cleanup_interval=None),
)
server.register(Bench())
