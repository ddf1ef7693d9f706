"""Sessions this worker read from Redis, kept so that the next request needs no read.

Most requests of a session come to the worker that served the last one
(a browser keeps its connection), and most of what they read is what that
worker itself wrote.  So the loop's connection keeps what its loads read
(``LoadCache``), applies its own saves to it as they are sent, and a load
that finds its session there goes on without a round trip.  Redis says when
to forget: the connection turns on ``CLIENT TRACKING`` (Redis 6 or later),
its notices sent to a second connection of the same loop (``Invalidations``,
subscribed to ``__redis__:invalidate``), for every key it read that another
client (another worker, machine, or cleanup) then changed, deleted or let
expire.  ``NOLOOP``: the connection's own writes send none.  But they stop
Redis tracking the keys they write, so the saves' script goes in a
transaction with a read of those keys (see ``_Batch`` in _redis.py).

What stays true:

* On one machine, a request sees every change whose response reached its
  client before the request was sent: Redis sends the notice as it carries
  out the write, in the same turn as its answer to the writer, and the
  notices waiting on the socket are read at the first answer from memory
  of each loop turn (``poll``).  Across machines a notice can still be on
  its way when a request arrives that another worker's answer prompted;
  that request reads the data as it was a moment before.
* A save applies to what is kept when it is sent: the connection is
  ordered, so a load sent after it would read it too.  A save that fails
  forgets its session.  A load sent before a change (a notice, or a save of
  this worker) does not bring older data back (``_note``: the numbers
  ``_seq``/``_recent``).
* This worker's own changes that do not go through the loop's connection
  (logins, logouts, increments, cleanup: redis-py in other threads) forget
  the session at once (``forget``), before the notice comes.
* No notices, no cache: when either connection is lost, when the connection
  has answered nothing for ``patience`` seconds, or when a notice says Redis
  was flushed, everything kept is dropped, and it starts again empty once
  tracking is back.

At most ``max_sessions`` sessions are kept per loop (the oldest go first).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import hiredis

from ._store import Changes, Loaded, LoadItem, Record, SaveItem

if TYPE_CHECKING:
    from ._redisloop import RedisAddress

__all__ = ["MAX_SESSIONS", "CacheToken", "Invalidations", "LoadCache"]

error_log: Final = logging.getLogger("dibble.error")

#: Sessions kept per loop, by default.
MAX_SESSIONS: Final = 10_000
#: The channel Redis sends tracking notices on.
CHANNEL: Final = "__redis__:invalidate"
# Sessions noted as changed while batches were in flight: beyond this many,
# all in flight are treated as crossed (and the notes start again).
_MAX_RECENT: Final = 10_000

#: What a batch carries from sending to its replies: (epoch, sequence number).
CacheToken = tuple[int, int]


def _applied(loaded: Loaded, changes: Changes, now: float, expires: float) -> Loaded:
    """``loaded`` after the save of ``changes`` at ``now`` (see the save script)."""
    now = round(now * 1000) / 1000  # to the millisecond, as Redis keeps times
    expires = round(expires * 1000) / 1000
    record = loaded.record
    updates, deleted, cleared = changes
    if record is None or record.expires <= now:  # a new record (or an expired one)
        values: dict[str, str] = {}
        started = modified = now
    else:
        values = {} if cleared else record.values.copy()
        started = record.started
        modified = now if updates or deleted or cleared else record.modified
    values.update(updates)
    for key in deleted:
        values.pop(key, None)
    id_expires = loaded.id_expires
    new = tuple.__new__  # the named tuples' own constructors are Python functions
    return new(
        Loaded,
        (
            id_expires if id_expires > expires else expires,
            new(Record, (values, started, modified, expires)),
        ),
    )


class LoadCache:
    """One loop's sessions as last read or written through its connection.

    Everything but ``forget`` runs on the loop's thread.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        prefix: str,
        *,
        patience: float,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.loop = loop
        #: Answer nothing when the connection has been silent this long (seconds).
        self.patience = patience
        self.max_sessions = max_sessions
        #: Whether notices arrive (tracking is on and its connection is up).
        self.enabled = False
        #: Moves on every enable, disable and flush: batches sent before do not fill.
        self.epoch = 0
        #: Loads answered here, and loads that went to Redis while on.
        self.hits = 0
        self.misses = 0
        #: Reads the notices waiting on their socket (set by ``Invalidations``).
        self.poll: Callable[[], None] = _nothing
        self._ids = prefix + "i:"
        self._records = prefix + "d:"
        self._entries: dict[str, dict[str, Loaded]] = {}  # sid -> service -> loaded
        self._counter = itertools.count(1)
        self._seq = 0
        self._recent: dict[str, int] = {}  # sid -> number of its latest notice
        self._in_flight = 0
        self._polled = False
        self._fresh = False
        self._heard = 0.0  # when the connection last answered a batch

    def __len__(self) -> int:
        return len(self._entries)

    # --- on and off --------------------------------------------------------------------

    def enable(self) -> None:
        self._reset()
        self.enabled = True
        self._heard = self.loop.time()

    def disable(self) -> None:
        self._reset()
        self.enabled = False

    def flush(self) -> None:
        """Forget everything (Redis says all keys may have changed)."""
        self._reset()

    def _reset(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._recent.clear()

    # --- loads -------------------------------------------------------------------------

    def get(self, items: Sequence[LoadItem]) -> list[Loaded | None] | None:
        """The loads of ``items`` if every one is kept and live; None: ask Redis."""
        if not self.enabled:
            return None
        if not self._polled:
            # Once a loop turn, before its first answer: the notices waiting, and
            # whether Redis was heard from lately (a silent one may be cut off).
            self._polled = True
            self.loop.call_soon(self._turn_over)
            self.poll()
            self._fresh = self.loop.time() - self._heard <= self.patience
        if not self._fresh or not self.enabled:
            return None
        found: list[Loaded | None] = []
        entries = self._entries
        for sid, service, now in items:
            services = entries.get(sid)
            loaded = services.get(service) if services is not None else None
            if (
                loaded is None
                or loaded.id_expires <= now
                or (loaded.record is not None and loaded.record.expires <= now)
            ):
                self.misses += 1
                return None
            found.append(loaded)
        self.hits += 1
        return found

    def _turn_over(self) -> None:
        self._polled = False

    def token(self) -> CacheToken | None:
        """For a batch about to be sent: what its replies are checked against."""
        if not self.enabled:
            return None
        self._in_flight += 1
        return self.epoch, self._seq

    def loaded(
        self,
        items: Sequence[LoadItem],
        results: Sequence[Loaded | None] | None,
        token: CacheToken | None,
    ) -> None:
        """The replies to loads sent with ``token`` (None: they failed)."""
        if token is None:
            return
        self._in_flight -= 1
        if results is not None and token[0] == self.epoch:
            self._heard = self.loop.time()
            since = token[1]
            recent = self._recent
            for (sid, service, _), result in zip(items, results, strict=True):
                if result is not None and recent.get(sid, 0) <= since:
                    self._put(sid, service, result)
        self._settle()

    # --- saves -------------------------------------------------------------------------

    def saving(self, items: Sequence[SaveItem]) -> None:
        """Saves about to be sent: what is kept of their sessions takes them now.

        The connection is ordered, so a load sent after them reads what they
        wrote, and one answered here must too.  A load sent before them may
        not bring the older data back (``_note``); a save that fails forgets
        its session (``saved``).
        """
        if not self.enabled:
            return
        entries = self._entries
        for sid, service, changes, now, expires in items:
            services = entries.get(sid)
            if services is not None:
                kept = services.get(service)
                if kept is not None:
                    services[service] = _applied(kept, changes, now, expires)
            if self._in_flight:
                self._note(sid)

    def saved(self, items: Sequence[SaveItem], results: Sequence[bool] | None) -> None:
        """The replies to saves (None: they failed): a session not saved is forgotten."""
        if results is None:
            for sid, *_ in items:
                self.forget(sid)
            return
        self._heard = self.loop.time()
        if False in results:
            for (sid, *_), stored in zip(items, results, strict=True):
                if not stored:
                    self.forget(sid)

    # --- forgetting --------------------------------------------------------------------

    def invalidated(self, keys: list[Any] | None) -> None:
        """A notice: ``keys`` changed (None: every key may have)."""
        if keys is None:
            self.flush()
            return
        for key in keys:
            sid = self._sid_of(key)
            if sid is not None:
                self.forget(sid)
        if len(self._recent) > _MAX_RECENT:
            self.epoch += 1  # whatever is in flight may have crossed any of them
            self._recent.clear()

    def forget(self, sid: str) -> None:
        """Drop ``sid``, and keep replies already on their way from bringing it back.

        Safe from any thread (each step is one operation on a dict).
        """
        self._note(sid)
        self._entries.pop(sid, None)

    def _note(self, sid: str) -> None:
        """Loads sent before now may not fill ``sid`` (they may have crossed a change)."""
        number = next(self._counter)
        self._recent[sid] = number
        self._seq = number

    def _sid_of(self, key: Any) -> str | None:
        if not isinstance(key, str):
            return None
        if key.startswith(self._ids):
            return key[len(self._ids) :]
        if key.startswith(self._records):
            return key[len(self._records) :].partition(":")[0]
        return None

    def _put(self, sid: str, service: str, loaded: Loaded) -> None:
        entries = self._entries
        services = entries.get(sid)
        if services is None:
            if len(entries) >= self.max_sessions:
                entries.pop(next(iter(entries), ""), None)
            services = entries[sid] = {}
        services[service] = loaded

    def _settle(self) -> None:
        if not self._in_flight:
            self._recent.clear()  # nothing in flight can have crossed them


def _nothing() -> None:
    pass


class Invalidations:
    """The loop's connection that receives the tracking notices for ``cache``.

    A plain non-blocking socket watched by the loop (``add_reader``), so that
    ``poll`` can also read what is waiting at once.  ``start`` connects,
    subscribes and returns the connection's client id (for ``REDIRECT``).
    """

    def __init__(
        self,
        address: RedisAddress,
        loop: asyncio.AbstractEventLoop,
        cache: LoadCache,
        *,
        timeout: float,
    ) -> None:
        self.address = address
        self.loop = loop
        self.cache = cache
        self.timeout = timeout
        self.client_id: int | None = None
        self._sock: socket.socket | None = None
        self._opening: socket.socket | None = None
        self._reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")

    @property
    def alive(self) -> bool:
        return self._sock is not None and self.client_id is not None

    async def start(self) -> int:
        """Connect and subscribe (if not already); the connection's client id."""
        if self.alive:
            assert self.client_id is not None
            return self.client_id
        self.close()
        return await asyncio.wait_for(self._start(), self.timeout)

    async def _start(self) -> int:
        address = self.address
        loop = self.loop
        if address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address.path
        else:
            infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, target = infos[0]
            sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        self._opening = sock  # closed by close() should the loop stop meanwhile
        self._reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        try:
            await loop.sock_connect(sock, target)
            commands = [*address.hello(), ("CLIENT", "ID"), ("SUBSCRIBE", CHANNEL)]
            await loop.sock_sendall(sock, b"".join(hiredis.pack_command(c) for c in commands))
            replies: list[Any] = []
            while len(replies) < len(commands):
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    raise ConnectionError("closed the connection")
                self._reader.feed(data)
                while (reply := self._reader.gets()) is not False:
                    replies.append(reply)
        except BaseException:
            sock.close()
            raise
        finally:
            self._opening = None
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                sock.close()
                raise ConnectionError(str(reply))
        self._sock = sock
        self.client_id = int(replies[-2])
        loop.add_reader(sock.fileno(), self.poll)
        self.cache.poll = self.poll
        return self.client_id

    def poll(self) -> None:
        """Read the notices waiting (never blocks); a lost connection turns the cache off."""
        sock = self._sock
        if sock is None:
            return
        reader = self._reader
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._lost(f"failed: {exc}")
                return
            if not data:
                self._lost("closed the connection")
                return
            reader.feed(data)
            if len(data) < 65536:
                break
        cache = self.cache
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._lost(f"sent something that is not RESP: {exc}")
                return
            if reply is False:
                return
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                cache.invalidated(reply[2])

    def _lost(self, why: str) -> None:
        if self.cache.enabled:
            error_log.warning("sessions: Redis's notices for the session cache %s", why)
        self.close()

    def close(self) -> None:
        """Drop the connection; the cache is off until it is back."""
        self.cache.disable()
        self.cache.poll = _nothing
        sock, self._sock = self._sock, None
        self.client_id = None
        if self._opening is not None:
            self._opening.close()
            self._opening = None
        if sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # a closed loop
                self.loop.remove_reader(sock.fileno())
            sock.close()
