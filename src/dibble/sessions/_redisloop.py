"""A connection to Redis on the event loop, for the session batches.

The pool's batches (see _batch.py) are a script call or two per loop turn.
Sent through redis-py they would run in the pool's I/O thread: a hand-off
there and back per batch, and the GIL passed between two busy threads on
what is often one core.  Here they go out on a non-blocking connection of
the event loop instead: the commands are packed by hiredis, written with
one ``write``, and the replies parsed by hiredis's ``Reader`` as they
arrive, in ``data_received``; the batch's requests go on from there.

One connection per store and loop, opened on first use (with ``AUTH`` and
``SELECT`` when the URL asks for them) and opened again after it is lost.
Replies come back in the order the commands went, so the calls waiting
for them are a queue.  Every call has the store's timeout: when Redis does
not answer in time, or the connection is refused or lost, every call
waiting fails with ``StoreError(unavailable=True)`` (a 503 for its
requests) and the connection is dropped, never left out of step.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

import hiredis

from ._store import StoreError

__all__ = ["LoopClient", "RedisAddress"]

error_log: Final = logging.getLogger("dibble.error")

#: What a call's ``done`` gets: the replies, in order (an error reply as a
#: ``hiredis.ReplyError`` in its place), or the failure of the connection.
Done = Callable[[list[Any] | StoreError], None]


class RedisAddress:
    """Where a ``redis://`` or ``unix://`` URL points, and how to log in."""

    __slots__ = ("db", "host", "password", "path", "port", "username")

    def __init__(self, parsed: dict[str, Any]) -> None:
        self.host: str = parsed.get("host", "127.0.0.1")
        self.port: int = int(parsed.get("port", 6379))
        self.path: str | None = parsed.get("path")
        self.db: int = int(parsed.get("db", 0) or 0)
        self.username: str | None = parsed.get("username")
        self.password: str | None = parsed.get("password")

    def hello(self) -> list[tuple[Any, ...]]:
        """The commands a new connection starts with."""
        commands: list[tuple[Any, ...]] = []
        if self.password is not None:
            if self.username:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


class _Call:
    __slots__ = ("deadline", "done", "expected", "payload", "replies")

    def __init__(self, payload: bytes, expected: int, done: Done, deadline: float) -> None:
        self.payload = payload
        self.expected = expected
        self.done = done
        self.deadline = deadline
        self.replies: list[Any] = []


class _Connection(asyncio.Protocol):
    """One socket to Redis: replies are matched to the calls in order."""

    def __init__(self, client: LoopClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        # Replies as text: session data is JSON, and the rest is numbers and
        # names; bytes that are not UTF-8 (never written by dibble) survive.
        self.reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        #: Calls sent, oldest first, until their last reply arrives.
        self.waiting: deque[_Call] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.client.fail(self, f"sent something that is not RESP: {exc}")
                return
            if reply is False:
                return
            if not waiting:
                self.client.fail(self, "sent a reply nobody asked for")
                return
            call = waiting[0]
            replies = call.replies
            replies.append(reply)
            if len(replies) == call.expected:
                waiting.popleft()
                self.client.answered(self, call)

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"closed the connection: {exc}" if exc else "closed the connection"
        self.client.fail(self, why)


class LoopClient:
    """A store's connection to Redis on one event loop (made on first use)."""

    def __init__(
        self,
        address: RedisAddress,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float,
        description: str,
    ) -> None:
        self.address = address
        self.loop = loop
        self.timeout = timeout
        self.description = description
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        #: Calls made while connecting: sent once the connection is up.
        self._queued: list[_Call] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Called when a connection that was up is dropped (its state, such as
        #: ``CLIENT TRACKING``, went with it).
        self.on_lost: Callable[[], None] | None = None

    def call(
        self, commands: list[tuple[Any, ...]], done: Done, packed: bytes = b"", count: int = 0
    ) -> None:
        """Send ``commands`` in one write; ``done`` gets their replies (on the loop).

        ``packed`` is ``count`` more commands already in RESP, sent first (their
        replies come first too).
        """
        if self._closed:
            done(StoreError(f"the session store ({self.description}) is closed"))
            return
        call = self._call(commands, done, packed, count)
        conn = self._conn
        if conn is not None and conn.transport is not None:
            self._send(conn, call)
            return
        self._queued.append(call)
        if self._connecting is None:
            self._connecting = self.loop.create_task(self._connect())
            self._arm(call.deadline)

    def _send(self, conn: _Connection, call: _Call) -> None:
        assert conn.transport is not None
        conn.transport.write(call.payload)
        conn.waiting.append(call)
        if self._timer is None:
            self._arm(call.deadline)

    async def _connect(self) -> None:
        address = self.address
        loop = self.loop
        conn = _Connection(self)
        try:
            if address.path is not None:
                await loop.create_unix_connection(lambda: conn, address.path)
            else:
                await loop.create_connection(lambda: conn, address.host, address.port)
        except OSError as exc:
            self._connecting = None
            self._fail_all(f"cannot be reached: {exc}")
            return
        self._connecting = None
        if self._closed:
            assert conn.transport is not None
            conn.transport.abort()
            return
        self._conn = conn
        hello = address.hello()
        if hello:
            self._send(conn, self._hello_call(hello))
        queued, self._queued = self._queued, []
        for call in queued:
            self._send(conn, call)

    def _hello_call(self, commands: list[tuple[Any, ...]]) -> _Call:
        def done(replies: list[Any] | StoreError) -> None:
            if isinstance(replies, list):
                for reply in replies:
                    if isinstance(reply, hiredis.ReplyError):
                        # The calls after it fail with Redis's NOAUTH or the like.
                        error_log.error(
                            "sessions: %s refused the login: %s", self.description, reply
                        )
                        break

        return self._call(commands, done)

    def _call(
        self, commands: list[tuple[Any, ...]], done: Done, packed: bytes = b"", count: int = 0
    ) -> _Call:
        """``commands`` packed in RESP (after ``packed``), due back within the timeout."""
        payload = b"".join([packed, *[hiredis.pack_command(command) for command in commands]])
        return _Call(payload, count + len(commands), done, self.loop.time() + self.timeout)

    def answered(self, conn: _Connection, call: _Call) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if conn.waiting:
            self._arm(conn.waiting[0].deadline)
        call.done(call.replies)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        conn = self._conn
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        self._conn = None
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
            self._lost()
        self._fail_all(f"did not answer within {self.timeout:g} s", conn)

    def fail(self, conn: _Connection, why: str) -> None:
        """``conn`` broke: fail what waits on it and drop it."""
        if conn is self._conn:
            self._conn = None
            self._lost()
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.abort()
        if conn.waiting:
            self._fail(list(conn.waiting), why)
            conn.waiting.clear()

    def _fail_all(self, why: str, conn: _Connection | None = None) -> None:
        calls = list(conn.waiting) if conn is not None else []
        if conn is not None:
            conn.waiting.clear()
        calls += self._queued
        self._queued = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail(calls, why)

    def _fail(self, calls: list[_Call], why: str) -> None:
        error = f"the session store ({self.description}) {why}"
        for call in calls:
            call.done(StoreError(error, unavailable=True))

    def close(self) -> None:
        """Drop the connection (on the loop's thread); calls still waiting fail."""
        self._closed = True
        conn, self._conn = self._conn, None
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
            self._lost()
        self._fail_all("was closed", conn)

    def _lost(self) -> None:
        if self.on_lost is not None:
            self.on_lost()
