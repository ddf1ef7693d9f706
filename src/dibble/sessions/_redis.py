"""``RedisStore``: sessions in Redis, shared by workers and machines.

Layout, under a key prefix (``dibble:session:`` by default):

* ``{prefix}i:{sid}`` -- a hash: ``started``, ``expires``, and a field
  ``s:{service}`` for each service with data in the session;
* ``{prefix}d:{sid}:{service}`` -- a hash: the values by key (JSON texts),
  and the meta fields ``\\0started``, ``\\0modified``, ``\\0expires`` (no
  session key may contain NUL, so they never clash);
* ``{prefix}expiry`` -- a sorted set of every id and record by expiry time,
  which cleanup walks.

Every write is one Lua script, so it is atomic and one round trip; a load
is one pipelined round trip, and none at all for a session the event loop
keeps (see _rediscache.py).  Keys also get a Redis expiry a grace period
(a day) after their own, so Redis frees them even if no cleanup ever runs
(their cleanup hooks then never run either).  The scripts touch keys they
derive from the id, which a single Redis server allows; Redis Cluster is
not supported.

Timeouts are short (2 s by default) and failures raise ``StoreError`` at
once: a Redis server that is down or hung costs a request a 503, never a
hang.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .._redis import redis_client
from .._urls import without_password
from ._store import (
    BatchDone,
    Changes,
    Expired,
    Loaded,
    LoadItem,
    LoopBatches,
    Record,
    SaveItem,
    SessionInfo,
    SessionStore,
    StoreError,
)

if TYPE_CHECKING:
    from ._rediscache import CacheToken, Invalidations, LoadCache
    from ._redisloop import LoopClient, RedisAddress

__all__ = ["RedisStore"]

error_log: Final = logging.getLogger("dibble.error")

T = TypeVar("T")

#: Seconds before a loop tries again to turn tracking on (see _rediscache.py).
TRACKING_RETRY: Final = 30.0

#: Redis keeps a key this long after it expired, for cleanup to find it.
GRACE_SECONDS: Final = 86400.0
#: A save moves the keys' Redis expiries and the cleanup index only when the
#: session's expiry passed them by this much (see _SAVE_BODY); less than the grace.
INDEX_SLACK: Final = 3600.0

# Shared by the scripts: make the record current (emptied if expired or
# cleared; ``started`` kept across a clear), then extend the record and the
# id.  KEYS: id hash, record hash, expiry set.  ARGV[1] now, ARGV[2] expires,
# ARGV[3] Redis expiry (ms), ARGV[4] id member, ARGV[5] record member,
# ARGV[6] service, ARGV[7] "1" to clear.
_PREPARE: Final = r"""
local now = tonumber(ARGV[1])
local idexp = redis.call('HGET', KEYS[1], 'expires')
if not idexp or tonumber(idexp) <= now then return nil end
local started = redis.call('HGET', KEYS[2], '\0started')
local old = redis.call('HGET', KEYS[2], '\0expires')
if not old or tonumber(old) <= now then started = false end
if ARGV[7] == '1' or not started then redis.call('DEL', KEYS[2]) end
if not started then
  started = ARGV[1]
  redis.call('HSET', KEYS[2], '\0modified', ARGV[1])
end
redis.call('HSET', KEYS[2], '\0started', started, '\0expires', ARGV[2])
local function finish()
  redis.call('PEXPIREAT', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
  redis.call('HSET', KEYS[2], '\0indexed', ARGV[2])
  redis.call('HSET', KEYS[1], 's:' .. ARGV[6], '1')
  if tonumber(ARGV[2]) > tonumber(idexp) then
    redis.call('HSET', KEYS[1], 'expires', ARGV[2])
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
  end
end
"""

# ARGV[8] "1" if anything changed, ARGV[9] number of keys set, then key,
# value pairs, then the number of keys deleted, then those keys.
#
# The common save (a live record, not cleared, a few keys) takes a shorter
# way: one HSET of the values and the expiry, the id read only when the
# expiry moves (it can then have to move the id's too), and the Redis expiries and
# the cleanup index (``\0indexed`` says up to when they reach) moved only
# when the expiry passed them by ``INDEX_SLACK`` seconds.  Cleanup checks
# the real expiry of what the index hands it, and keys live a day past
# their expiry, so neither may lag by more.
_SAVE_BODY: Final = (
    ""
    + r"""
local sets = tonumber(ARGV[9])
local deleted = tonumber(ARGV[10 + 2 * sets])
if ARGV[7] ~= '1' and sets <= 64 and deleted <= 64 then
  local now = tonumber(ARGV[1])
  local meta = redis.call('HMGET', KEYS[2], '\0expires', '\0indexed')
  if meta[1] and tonumber(meta[1]) > now then
    -- An id outlives each of its live records (whatever extends a record
    -- extends the id to match, and a logout deletes both), so a save that
    -- leaves the expiry where it was, the common one, needs no look at the id.
    local idexp = false
    if meta[1] ~= ARGV[2] then
      idexp = redis.call('HGET', KEYS[1], 'expires')
      if not idexp or tonumber(idexp) <= now then return nil end
    end
    local fields = {'\0expires', ARGV[2]}
    if ARGV[8] == '1' then
      fields[3] = '\0modified'
      fields[4] = ARGV[1]
    end
    for i = 10, 9 + 2 * sets do fields[#fields + 1] = ARGV[i] end
    redis.call('HSET', KEYS[2], unpack(fields))
    if deleted > 0 then
      redis.call('HDEL', KEYS[2], unpack(ARGV, 11 + 2 * sets, 10 + 2 * sets + deleted))
    end
    local expires = tonumber(ARGV[2])
    if idexp and expires > tonumber(idexp) then
      redis.call('HSET', KEYS[1], 'expires', ARGV[2])
    end
    if not meta[2] or expires - tonumber(meta[2]) >= """
    + f"{INDEX_SLACK:g}"
    + r""" then
      redis.call('PEXPIREAT', KEYS[2], ARGV[3])
      redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
      redis.call('HSET', KEYS[2], '\0indexed', ARGV[2])
      redis.call('PEXPIREAT', KEYS[1], ARGV[3])
      redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
    end
    return 1
  end
end
"""
    + _PREPARE
    + r"""
if ARGV[8] == '1' then redis.call('HSET', KEYS[2], '\0modified', ARGV[1]) end
local i = 10
for _ = 1, tonumber(ARGV[9]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local deleted = tonumber(ARGV[i])
i = i + 1
for _ = 1, deleted do
  redis.call('HDEL', KEYS[2], ARGV[i])
  i = i + 1
end
finish()
return 1
"""
)


# As one function of its keys ``K`` and arguments ``A``, so that one script
# can apply the saves of a whole batch (see save_many).
_SAVE_FUNCTION: Final = (
    "local function save(K, A)\n"
    + _SAVE_BODY.replace("KEYS[", "K[").replace("ARGV[", "A[").replace("unpack(ARGV", "unpack(A")
    + "end\n"
)

# Many saves in one script: one reply for a batch instead of one per request.
# KEYS: the expiry set.  ARGV[1]: the key prefix; ARGV[2]: the saves as one
# JSON array (see ``_save_json``), each an array of texts: the id, the
# service, ARGV[1] to ARGV[3] of the save function, then ARGV[7] on.  The keys and the
# expiry set's members (ARGV[4] and ARGV[5]) are made here.  One argument
# for the batch, not a dozen per save: packing each argument cost the server
# more than anything else a batch does, and decoding JSON costs Redis about
# what parsing the arguments did.  Each reply is 1, or 0 when the id was gone.
_SAVE_MANY: Final = (
    _SAVE_FUNCTION
    + r"""
local prefix = ARGV[1]
local out = {}
for _, f in ipairs(cjson.decode(ARGV[2])) do
  local sid, service = f[1], f[2]
  local A = {f[3], f[4], f[5], 'i\0' .. sid, 'd\0' .. sid .. '\0' .. service, service}
  for i = 6, #f do A[i + 1] = f[i] end
  local K = {prefix .. 'i:' .. sid, prefix .. 'd:' .. sid .. ':' .. service, KEYS[1]}
  out[#out + 1] = save(K, A) or 0
end
return out
"""
)

# ARGV[8] the key, ARGV[9] the amount.  Returns {1, new value}, {2, the
# value that is not an integer} or nil when the id is gone.
_INCREMENT: Final = (
    "local function run()\n"
    + _PREPARE
    + r"""
local current = redis.call('HGET', KEYS[2], ARGV[8])
if current and not string.match(current, '^%-?%d+$') then return {2, current} end
redis.call('HINCRBY', KEYS[2], ARGV[8], ARGV[9])
redis.call('HSET', KEYS[2], '\0modified', ARGV[1])
finish()
return {1, redis.call('HGET', KEYS[2], ARGV[8])}
end
return run()
"""
)

# KEYS: old id, new id, expiry set.  ARGV: now, prefix, old sid, new sid.
_RENAME: Final = r"""
local idexp = redis.call('HGET', KEYS[1], 'expires')
if not idexp or tonumber(idexp) <= tonumber(ARGV[1]) then return 0 end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 's:' then
    local service = string.sub(f, 3)
    local from = ARGV[2] .. 'd:' .. ARGV[3] .. ':' .. service
    local member = 'd\0' .. ARGV[3] .. '\0' .. service
    local score = redis.call('ZSCORE', KEYS[3], member)
    redis.call('ZREM', KEYS[3], member)
    if redis.call('EXISTS', from) == 1 then
      redis.call('RENAME', from, ARGV[2] .. 'd:' .. ARGV[4] .. ':' .. service)
      if score then redis.call('ZADD', KEYS[3], score, 'd\0' .. ARGV[4] .. '\0' .. service) end
    end
  end
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], 'i\0' .. ARGV[3])
redis.call('ZADD', KEYS[3], idexp, 'i\0' .. ARGV[4])
return 1
"""

# KEYS: id, expiry set.  ARGV: prefix, sid.
_DELETE: Final = r"""
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 's:' then
    local service = string.sub(f, 3)
    redis.call('DEL', ARGV[1] .. 'd:' .. ARGV[2] .. ':' .. service)
    redis.call('ZREM', KEYS[2], 'd\0' .. ARGV[2] .. '\0' .. service)
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], 'i\0' .. ARGV[2])
return 1
"""

# KEYS: expiry set.  ARGV: now, limit, prefix, and optionally a sid and a
# service to take just that record.  Returns {sid, service, {field, value...}}...
_TAKE: Final = r"""
local now = tonumber(ARGV[1])
local out = {}
local function take(sid, service)
  local key = ARGV[3] .. 'd:' .. sid .. ':' .. service
  local data = redis.call('HGETALL', key)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], 'd\0' .. sid .. '\0' .. service)
  redis.call('HDEL', ARGV[3] .. 'i:' .. sid, 's:' .. service)
  if #data > 0 then table.insert(out, {sid, service, data}) end
end
local function record(sid, service, member)
  local e = redis.call('HGET', ARGV[3] .. 'd:' .. sid .. ':' .. service, '\0expires')
  if not e or tonumber(e) <= now then
    take(sid, service)
  elseif member then
    redis.call('ZADD', KEYS[1], e, member)
  end
end
if ARGV[4] then
  record(ARGV[4], ARGV[5], false)
  return out
end
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
  'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(members) do
  if string.sub(m, 1, 1) == 'd' then
    local sep = string.find(m, '\0', 3, true)
    record(string.sub(m, 3, sep - 1), string.sub(m, sep + 1), m)
  else
    local sid = string.sub(m, 3)
    local idkey = ARGV[3] .. 'i:' .. sid
    local e = redis.call('HGET', idkey, 'expires')
    if not e or tonumber(e) <= now then
      for _, f in ipairs(redis.call('HKEYS', idkey)) do
        if string.sub(f, 1, 2) == 's:' then take(sid, string.sub(f, 3)) end
      end
      redis.call('DEL', idkey)
      redis.call('ZREM', KEYS[1], m)
    else
      redis.call('ZADD', KEYS[1], e, m)
    end
  end
end
return out
"""


class RedisStore(SessionStore):
    """Sessions in the Redis server at ``url`` (``redis://host:port/db``).

    ``timeout`` bounds connecting and every command, in seconds.  With
    ``cache`` (the default), each event loop keeps the sessions its
    connection read or wrote, and Redis's tracking notices say when to forget
    one (see _rediscache.py).  Needs the ``redis`` package (``pip install
    dibble[redis]``).
    """

    # Many requests' loads or saves go in one pipelined round trip.
    batches = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "dibble:session:",
        timeout: float = 2.0,
        on_loop: bool = True,
        cache: bool = True,
    ) -> None:
        self._client = redis_client(url, timeout=timeout, user="the Redis session store")
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._no_script: type[Exception] = redis.exceptions.NoScriptError
        self._response_error: type[Exception] = redis.ResponseError
        self._unavailable: tuple[type[Exception], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
        )
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        #: Whether the pool's batches go out on the event loop's own
        #: connection (``redis://`` and ``unix://`` with hiredis) rather than
        #: through redis-py in the pool's I/O thread.
        self.on_loop = on_loop
        #: Whether each loop keeps the sessions it read (see _rediscache.py).
        self.cache = cache
        self._address = _loop_address(url)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopBatches] = {}
        self.description = f"Redis {without_password(url)}"
        self._save_many = self._client.register_script(_SAVE_MANY)
        self._increment = self._client.register_script(_INCREMENT)
        self._rename = self._client.register_script(_RENAME)
        self._delete = self._client.register_script(_DELETE)
        self._take = self._client.register_script(_TAKE)
        self._expiry = prefix + "expiry"

    # --- keys -------------------------------------------------------------------------

    def _id_key(self, sid: str) -> str:
        return f"{self.prefix}i:{sid}"

    def _data_key(self, sid: str, service: str) -> str:
        return f"{self.prefix}d:{sid}:{service}"

    @contextmanager
    def _calling(self) -> Iterator[None]:
        try:
            yield
        except self._unavailable as exc:
            raise StoreError(
                f"the session store ({self.description}) cannot be reached: {exc}",
                unavailable=True,
            ) from exc
        except self._errors as exc:
            raise StoreError(f"the session store ({self.description}) failed: {exc}") from exc

    def _call(self, func: Callable[[], T]) -> T:
        with self._calling():
            return func()

    def _write_keys(self, sid: str, service: str) -> list[str]:
        """The keys of the write scripts: the id's hash, the record's, the expiry set."""
        return [self._id_key(sid), self._data_key(sid, service), self._expiry]

    def _write_args(
        self, sid: str, service: str, now: float, expires: float, cleared: bool
    ) -> list[Any]:
        """ARGV[1] to ARGV[7] of the write scripts (see _PREPARE)."""
        return [
            _seconds(now),
            _seconds(expires),
            _expiry_ms(expires),
            f"i\x00{sid}",
            f"d\x00{sid}\x00{service}",
            service,
            "1" if cleared else "0",
        ]

    # --- the interface ----------------------------------------------------------------

    def create(self, sid: str, now: float, expires: float) -> None:
        key = self._id_key(sid)
        with self._calling():
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping={"started": _seconds(now), "expires": _seconds(expires)})
            pipe.pexpireat(key, int((expires + GRACE_SECONDS) * 1000))
            pipe.zadd(self._expiry, {f"i\x00{sid}": expires})
            pipe.execute()

    def load(self, sid: str, service: str, now: float) -> Loaded | None:
        return self.load_many([(sid, service, now)])[0]

    def _pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` at once and read their replies: one round trip.

        Straight on a pooled connection: redis-py's Pipeline costs several
        times more per command, and this runs for every request with a
        session.  An error reply comes back as the exception, in its place.
        """
        pool = self._client.connection_pool
        for attempt in (1, 2):
            conn = pool.get_connection()
            try:
                conn.send_packed_command(_pack(conn, commands))  # type: ignore[no-untyped-call]
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(conn.read_response(disconnect_on_error=False))
                    except self._response_error as exc:
                        replies.append(exc)
                return replies
            except self._unavailable:
                # A pooled connection that a Redis restart closed fails at
                # once; one fresh try tells that apart from Redis being down.
                conn.disconnect()  # type: ignore[no-untyped-call]
                if attempt == 2:
                    raise
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")

    def _failed(self, reply: Exception) -> StoreError:
        """The ``StoreError`` for an error reply."""
        return StoreError(f"the session store ({self.description}) failed: {reply}")

    def _script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA, packed in C when hiredis is there; loads the script if Redis lost it.

        An error reply comes back as the exception.
        """
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        for attempt in (1, 2):
            (reply,) = self._pipeline([command])
            if not isinstance(reply, self._no_script) or attempt == 2:
                break
            # Redis lost its scripts (restarted, or SCRIPT FLUSH): load and redo;
            # a script that failed to start did nothing.
            self._client.script_load(script.script)
        if isinstance(reply, Exception):
            raise self._failed(reply)
        return reply

    def _load_commands(self, items: Sequence[LoadItem]) -> list[tuple[str, ...]]:
        """The reads of ``items``: the id's expiry and the record, for each."""
        prefix = self.prefix
        commands: list[tuple[str, ...]] = []
        for sid, service, _ in items:
            commands += (
                ("HGET", f"{prefix}i:{sid}", "expires"),
                ("HGETALL", f"{prefix}d:{sid}:{service}"),
            )
        return commands

    def load_many(self, items: Sequence[LoadItem]) -> list[Loaded | None]:
        with self._calling():
            replies = self._pipeline(self._load_commands(items))
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is not None:
            raise self._failed(error)
        return _loads(items, replies)

    def _save_many_args(self, items: Sequence[SaveItem]) -> list[str]:
        """The arguments of ``_SAVE_MANY`` for ``items`` (its one key is the expiry set)."""
        return [self.prefix, "[" + ",".join([_save_json(*item) for item in items]) + "]"]

    def save_many(self, items: Sequence[SaveItem]) -> list[bool]:
        return self._saved(items)

    def _saved(self, items: Sequence[SaveItem]) -> list[bool]:
        """``_SAVE_MANY`` through redis-py (``save`` is a batch of one).

        One script for the batch: each save in it is applied on its own terms
        (the merge rule), and the batch is atomic besides.
        """
        args = self._save_many_args(items)
        try:
            with self._calling():
                replies = self._script(self._save_many, [self._expiry], args)
        finally:
            if self._loops:
                self._forget(*{item[0] for item in items})
        return [reply == 1 for reply in replies]

    # --- batches on the event loop ----------------------------------------------------

    def loop_batches(self, loop: asyncio.AbstractEventLoop) -> LoopBatches | None:
        """Batches sent on ``loop``'s own connection (see _redisloop.py); None without hiredis
        or for ``rediss://`` (those go through redis-py in the pool's I/O thread)."""
        if not self.on_loop or _PACK_COMMAND is None or self._address is None:
            return None
        batches = self._loops.get(loop)
        if batches is None:
            from ._rediscache import LoadCache
            from ._redisloop import LoopClient

            if len(self._loops) > 16:  # loops that closed
                self._loops = {k: v for k, v in self._loops.items() if not k.is_closed()}
            client = LoopClient(
                self._address, loop, timeout=self.timeout, description=self.description
            )
            cache = LoadCache(loop, self.prefix, patience=self.timeout) if self.cache else None
            batches = self._loops[loop] = _LoopBatches(self, client, cache)
        return batches

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close ``loop``'s connections (call on that loop, before it stops)."""
        batches = self._loops.pop(loop, None)
        if batches is not None and not loop.is_closed():
            batches.close()

    def _forget(self, *sids: str) -> None:
        """Changed other than by a loop's connection: no loop may answer from what it kept."""
        for batches in list(self._loops.values()):
            cache = batches.cache
            if cache is not None:
                for sid in sids:
                    cache.forget(sid)

    def save(self, sid: str, service: str, changes: Changes, now: float, expires: float) -> bool:
        return self._saved([(sid, service, changes, now, expires)])[0]

    def increment(
        self, sid: str, service: str, key: str, amount: int, now: float, expires: float
    ) -> int | None:
        keys = self._write_keys(sid, service)
        args = self._write_args(sid, service, now, expires, False)
        args += (key, amount)
        try:
            result = self._call(lambda: self._increment(keys=keys, args=args))
        except StoreError as exc:
            self._forget(sid)
            if "not an integer" in str(exc) or "overflow" in str(exc):
                raise ValueError(
                    f"session key {key!r} does not hold an integer in range"
                ) from None
            raise
        self._forget(sid)
        if result is None:
            return None
        if result[0] == 2:
            shown = result[1].decode("utf-8", "replace")[:40]
            raise ValueError(f"session key {key!r} holds {shown!r}, not an integer")
        return int(result[1])

    def rename(self, old: str, new: str, now: float) -> bool:
        keys = [self._id_key(old), self._id_key(new), self._expiry]
        args = [_seconds(now), self.prefix, old, new]
        try:
            return bool(self._call(lambda: self._rename(keys=keys, args=args)) == 1)
        finally:
            self._forget(old, new)

    def delete(self, sid: str) -> None:
        keys = [self._id_key(sid), self._expiry]
        try:
            self._call(lambda: self._delete(keys=keys, args=[self.prefix, sid]))
        finally:
            self._forget(sid)

    def _taken(self, rows: list[Any]) -> list[Expired]:
        taken: list[Expired] = []
        for sid, service, flat in rows:
            values = {
                flat[i].decode("utf-8"): flat[i + 1].decode("utf-8")
                for i in range(0, len(flat), 2)
                if flat[i][:1] != b"\x00"
            }
            taken.append(Expired(sid.decode("utf-8"), service.decode("utf-8"), values))
        return taken

    def take(self, sid: str, service: str, now: float) -> Expired | None:
        args: list[Any] = [_seconds(now), 1, self.prefix, sid, service]
        try:
            rows = self._call(lambda: self._take(keys=[self._expiry], args=args))
        finally:
            self._forget(sid)
        taken = self._taken(rows)
        return taken[0] if taken else None

    def take_expired(self, now: float, limit: int = 1000) -> list[Expired]:
        args: list[Any] = [_seconds(now), limit, self.prefix]
        taken = self._taken(self._call(lambda: self._take(keys=[self._expiry], args=args)))
        self._forget(*(expired.sid for expired in taken))
        return taken

    def sessions(self, now: float, limit: int = 1000) -> list[SessionInfo]:
        found: list[SessionInfo] = []
        start = len(self.prefix) + 2
        with self._calling():
            keys = list(self._client.scan_iter(match=self._id_key("*"), count=500))
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            for key, fields in zip(keys, pipe.execute(), strict=True):
                expires = fields.get(b"expires")
                if expires is None or float(expires) <= now:
                    continue
                services = sorted(f[2:].decode("utf-8") for f in fields if f.startswith(b"s:"))
                found.append(
                    SessionInfo(
                        key[start:].decode("utf-8"),
                        float(fields.get(b"started", b"0")),
                        float(expires),
                        tuple(services),
                    )
                )
        found.sort(key=lambda info: info.started)
        return found[:limit]

    def flush(self) -> None:
        """Remove every key under the prefix (tests and resets)."""
        with self._calling():
            for key in self._client.scan_iter(match=self.prefix + "*", count=500):
                self._client.delete(key)

    def close(self) -> None:
        for loop, batches in list(self._loops.items()):
            if not loop.is_closed():
                loop.call_soon_threadsafe(batches.close)
        self._loops = {}
        self._client.close()


class _LoopBatches:
    """A store's batches on one loop: the loads' reads, then ``_SAVE_MANY`` by ``EVALSHA``.

    With a ``cache``, the loads it can answer never become batches (the
    ``Batcher`` asks ``cached`` first), and the first batch turns tracking on.
    """

    def __init__(self, store: RedisStore, client: LoopClient, cache: LoadCache | None) -> None:
        self.store = store
        self.client = client
        self.cache = cache
        self.invalidations: Invalidations | None = None
        self._tracking: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._complained = False
        if cache is not None and store._address is not None:
            from ._rediscache import Invalidations

            self.invalidations = Invalidations(
                store._address, client.loop, cache, timeout=store.timeout
            )
            client.on_lost = cache.disable
            #: What the ``Batcher`` asks before it batches a load.
            self.cached = cache.get

    def batch(self, loads: Sequence[LoadItem], saves: Sequence[SaveItem], done: BatchDone) -> None:
        """Run ``loads`` and ``saves``; ``done(loaded, saved)`` gets each part's results
        (or the ``StoreError`` it failed with), on the loop."""
        cache = self.cache
        if cache is not None and not cache.enabled and self._tracking is None:
            loop = self.client.loop
            if loop.time() >= self._retry_at:
                self._tracking = loop.create_task(self._track())
        _Batch(self, loads, saves, done).send()

    async def _track(self) -> None:
        """Turn ``CLIENT TRACKING`` on, its notices going to the second connection."""
        assert self.invalidations is not None
        try:
            client_id = await self.invalidations.start()
        except Exception as exc:  # any failure leaves the cache off, to be tried again
            self._tracking = None
            self._untracked(f"its connection for Redis's notices failed: {exc!r}")
            return
        tracking = ("CLIENT", "TRACKING")
        commands = [(*tracking, "OFF"), (*tracking, "ON", "REDIRECT", client_id, "NOLOOP")]
        self.client.call(commands, self._tracked)

    def _tracked(self, replies: list[Any] | StoreError) -> None:
        # On the loop, in the order of the connection's replies: a load sent after
        # this is tracked; one whose reply came before it was not kept.
        self._tracking = None
        if isinstance(replies, StoreError):
            self._untracked(str(replies))
            return
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is not None:
            self._untracked(f"Redis refused CLIENT TRACKING: {error}")
            return
        assert self.cache is not None
        assert self.invalidations is not None
        if self.invalidations.alive:
            self.cache.enable()
            self._complained = False

    def _untracked(self, why: str) -> None:
        self._retry_at = self.client.loop.time() + TRACKING_RETRY
        if not self._complained:
            self._complained = True
            error_log.warning(
                "sessions: %s keeps no sessions on this worker for now (tried again every "
                "%g s): %s",
                self.store.description,
                TRACKING_RETRY,
                why,
            )

    def close(self) -> None:
        """Close the connections (on the loop's thread)."""
        if self._tracking is not None:
            self._tracking.cancel()
            self._tracking = None
        if self.invalidations is not None:
            self.invalidations.close()
        self.client.close()


class _Batch:
    """One batch on the loop's connection, from its commands to its results.

    The loads are plain reads, two per load (``HGET`` of the id's expiry,
    ``HGETALL`` of the record), packed here: as a script, Redis spent more
    than twice as long on them.  The saves are one ``_SAVE_MANY``.  A Redis
    that lost its scripts (a restart, ``SCRIPT FLUSH``) answers ``NOSCRIPT``
    and did nothing: the script goes again as ``EVAL`` with its text, which
    Redis keeps for the next ``EVALSHA``.  (A class, not closures: a
    closure that passes itself on is a reference cycle, and would keep each
    batch's requests for the garbage collector.)
    """

    __slots__ = (
        "batches",
        "counted",
        "done",
        "load_token",
        "loads",
        "reads",
        "replies",
        "retrack",
        "saves",
        "script",
        "writes",
    )

    def __init__(
        self,
        batches: _LoopBatches,
        loads: Sequence[LoadItem],
        saves: Sequence[SaveItem],
        done: BatchDone,
    ) -> None:
        self.batches = batches
        self.loads = loads
        self.saves = saves
        self.done = done
        self.replies: list[Any] = []
        store = batches.store
        #: The loads' reads, in RESP.
        self.reads = _reads(store.prefix, loads) if loads else b""
        cache = batches.cache
        self.load_token: CacheToken | None = None
        #: Whether the saves must track their keys again (the loop keeps sessions).
        self.retrack = cache is not None and cache.enabled and bool(saves)
        #: The script's call (``EVALSHA``, or ``EVAL`` again), and the count of replies
        #: that come with the saves (the script's last).
        self.script: tuple[Any, ...] = ()
        self.writes = b""
        self.counted = 0
        if saves:
            args = store._save_many_args(saves)
            self.script = (store._save_many.sha, 1, store._expiry, *args)
            self._write("EVALSHA")

    def _write(self, call: str) -> None:
        """The saves in RESP: the script's call, in a transaction with a read of the
        keys it wrote when the loop keeps sessions.  A write by the connection
        stops Redis tracking a key for it (see _rediscache.py); the read tracks it
        again, before any other client can change it unnoticed.  (A read in the
        script would do it only for keys declared to it, at a cost that grows
        with the batch.)"""
        assert _PACK_COMMAND is not None  # (batches on the loop need hiredis)
        script = _PACK_COMMAND((call, *self.script))
        if not self.retrack:
            self.writes, self.counted = script, 1
            return
        keys = _keys(self.batches.store.prefix, self.saves)
        self.writes = b"".join([_MULTI, script, keys, _EXEC])
        self.counted = 4  # OK, QUEUED, QUEUED, then the results of both

    def send(self) -> None:
        # The cache hears of the batch only now that it is made, and as it goes out.
        cache = self.batches.cache
        if cache is not None:
            self.load_token = cache.token() if self.loads else None
            if self.retrack:
                cache.saving(self.saves)
        count = 2 * len(self.loads) + self.counted
        try:
            self.batches.client.call([], self.replied, self.reads + self.writes, count)
        except BaseException:
            self._keep(None, None)  # it may not have gone: forget what it would change
            raise

    def _script_reply(self, replies: list[Any]) -> Any:
        """The script's reply among the saves' replies (``EXEC``'s first, in a transaction)."""
        last = replies[-1]
        if self.counted == 1 or isinstance(last, Exception):
            return last
        if isinstance(last, list) and last:
            return last[0]
        return RuntimeError(f"the transaction did not run ({last!r})")

    def replied(self, replies: list[Any] | StoreError) -> None:
        loads, saves, done = self.loads, self.saves, self.done
        if isinstance(replies, StoreError):
            self._keep(None, None)
            done(replies if loads else [], replies if saves else [])
            return
        if saves and _no_script(self._script_reply(replies)):
            self.replies = replies
            self.script = (self.batches.store._save_many.script, *self.script[1:])
            self._write("EVAL")
            self.batches.client.call([], self._answered_again, self.writes, self.counted)
            return
        store = self.batches.store
        loaded: list[Any] | BaseException = []
        if loads:
            reads = replies[: 2 * len(loads)]
            error = next((reply for reply in reads if isinstance(reply, Exception)), None)
            loaded = store._failed(error) if error is not None else _loads_text(loads, reads)
        saved: list[Any] | BaseException = []
        if saves:
            reply = self._script_reply(replies)  # _SAVE_MANY's: a 1 or 0 per save
            failed = isinstance(reply, Exception)
            saved = store._failed(reply) if failed else [r == 1 for r in reply]
        self._keep(loaded, saved)
        done(loaded, saved)

    def _keep(self, loaded: Any, saved: Any) -> None:
        """Tell the loop's cache what the batch read and wrote (None: it failed)."""
        cache = self.batches.cache
        if cache is not None:
            if self.loads:
                results = loaded if isinstance(loaded, list) else None
                cache.loaded(self.loads, results, self.load_token)
            if self.saves:
                cache.saved(self.saves, saved if isinstance(saved, list) else None)

    def _answered_again(self, more: list[Any] | StoreError) -> None:
        """The reply to the script sent again, in place of its ``NOSCRIPT``."""
        if isinstance(more, StoreError):
            self.replied(more)
            return
        replies = self.replies
        replies[-1] = more[-1]
        self.replied(replies)


# The reads of one load: the id's expiry and the record's fields.
_READS: Final = (
    b"*3\r\n$4\r\nHGET\r\n$%d\r\n%b\r\n$7\r\nexpires\r\n*2\r\n$7\r\nHGETALL\r\n$%d\r\n%b\r\n"
)


def _reads(prefix: str, loads: Sequence[LoadItem]) -> bytes:
    """The reads of ``loads`` in RESP (formatted here: one operation a load, where
    hiredis took two calls and a ``printf`` per argument)."""
    return _with_keys(_READS, prefix, loads)


_MULTI: Final = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC: Final = b"*1\r\n$4\r\nEXEC\r\n"
_KEY_PAIR: Final = b"$%d\r\n%b\r\n$%d\r\n%b\r\n"


def _keys(prefix: str, saves: Sequence[SaveItem]) -> bytes:
    """``EXISTS`` of the saves' id and record keys, in RESP."""
    head = b"*%d\r\n$6\r\nEXISTS\r\n" % (1 + 2 * len(saves))
    return head + _with_keys(_KEY_PAIR, prefix, saves)


def _with_keys(template: bytes, prefix: str, items: Sequence[tuple[Any, ...]]) -> bytes:
    """``template`` filled in for each item (``(sid, service, ...)``) with the lengths
    and bytes of its id and record keys, all joined."""
    parts = []
    for sid, service, *_ in items:
        id_key = f"{prefix}i:{sid}".encode()
        record_key = f"{prefix}d:{sid}:{service}".encode()
        parts.append(template % (len(id_key), id_key, len(record_key), record_key))
    return b"".join(parts)


def _no_script(reply: Any) -> bool:
    return isinstance(reply, Exception) and str(reply).startswith("NOSCRIPT")


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> Any:
    """``commands`` in RESP: hiredis's packer (C) when it is there, else redis-py's."""
    if _PACK_COMMAND is None:
        return conn.pack_commands(commands)
    return [b"".join([_PACK_COMMAND(command) for command in commands])]


def _hiredis_packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    try:
        hiredis = importlib.import_module("hiredis")  # optional: redis-py works without
    except ImportError:  # pragma: no cover - depends on the installation
        return None
    packer: Callable[[tuple[Any, ...]], bytes] | None = getattr(hiredis, "pack_command", None)
    return packer


_PACK_COMMAND: Final = _hiredis_packer()


def _loop_address(url: str) -> RedisAddress | None:
    """Where the loop's connections go: None for ``rediss://`` (TLS goes through
    redis-py) or without hiredis."""
    if _PACK_COMMAND is None:
        return None
    from redis.connection import SSLConnection, parse_url

    from ._redisloop import RedisAddress

    parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    if parsed.get("connection_class") is SSLConnection:
        return None
    return RedisAddress(parsed)


def _seconds(t: float) -> str:
    """The time ``t`` to the millisecond, as text for Redis.

    Formatted with integers only: ``repr`` of a float finds its shortest
    exact text, which costs several times more, twice per saved request.
    Rounded, not cut, so a time read back and written again stays the same,
    and short enough (13 digits) to be read back quickly and exactly.
    """
    text = _texts.get(t)
    if text is None:  # an expiry recurs save after save: kept
        if len(_texts) >= 4096:
            _texts.clear()
        ms = round(t * 1000)
        text = _texts[t] = f"{ms // 1000}.{ms % 1000:03d}"
    return text


_texts: dict[float, str] = {}


def _save_json(sid: str, service: str, changes: Changes, now: float, expires: float) -> str:
    """One save as ``_SAVE_MANY`` reads it: a JSON array of texts, the id, the service,
    the times, the flags and counts, then the keys and values set and the keys deleted.

    Made here, piece by piece, where a JSON encoder took a twentieth of what the
    whole request costs: the id and service, the keys and the expiry recur
    save after save and are kept escaped, the numbers and flags need no
    escaping, and what is left (the values) is one C call each.
    """
    head = _heads.get((sid, service))
    if head is None:
        if len(_heads) >= _MAX_KEPT:
            _heads.clear()
        head = _heads[sid, service] = f"[{_escape(sid)},{_escape(service)},"
    updates, deleted, cleared = changes
    sets = len(updates)
    ms = round(now * 1000)  # (``_seconds``, without keeping a time that never recurs)
    text = '%s"%d.%03d","%s","%s","%s","%s","%d"' % (  # noqa: UP031 (one C call)
        head,
        ms // 1000,
        ms % 1000,
        _texts.get(expires) or _seconds(expires),  # (kept: no call)
        _ms_texts.get(expires) or _expiry_ms(expires),
        "1" if cleared else "0",
        "1" if sets or deleted or cleared else "0",  # (bool(changes), inline)
        sets,
    )
    for key, value in updates.items():
        text += f",{_keys_json.get(key) or _json_key(key)},{_escape(value)}"
    text += ',"%d"' % len(deleted)  # noqa: UP031
    for key in deleted:
        text += "," + _json_key(key)
    return text + "]"


def _json_key(key: str) -> str:
    """``key`` as a JSON string, kept: the same keys are saved request after request."""
    text = _keys_json.get(key)
    if text is None:
        if len(_keys_json) >= _MAX_KEPT:
            _keys_json.clear()
        text = _keys_json[key] = _escape(key)
    return text


#: A text as a JSON string, in ASCII (escapes as ``json.dumps`` writes them), in C.
_escape: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
_MAX_KEPT: Final = 4096
#: (id, service) -> the start of their saves' JSON arrays.
_heads: dict[tuple[str, str], str] = {}
#: Session key -> the key as a JSON string.
_keys_json: dict[str, str] = {}


def _expiry_ms(expires: float) -> str:
    """The Redis expiry (ms) of keys whose session expires at ``expires``: a grace later."""
    text = _ms_texts.get(expires)
    if text is None:  # the same expiry recurs save after save
        if len(_ms_texts) >= 4096:
            _ms_texts.clear()
        text = _ms_texts[expires] = str(int((expires + GRACE_SECONDS) * 1000))
    return text


_ms_texts: dict[float, str] = {}


def _time(text: str) -> float:
    """A time as Redis holds it (see ``_seconds``), parsed and kept for next time.

    ``float`` of a time costs several times a lookup, and a session's start
    and expiry are read back request after request.  (A time of 0 is never
    kept; it parses again, as it should.)
    """
    value = float(text)
    if len(_times) >= 4096:
        _times.clear()
    _times[text] = value
    return value


_times: dict[str, float] = {}


def _loads(items: Sequence[LoadItem], replies: list[Any]) -> list[Loaded | None]:
    """The loads' reads as redis-py gives them (bytes) as the loads of ``items``."""
    return _loads_text(items, [_text(reply) for reply in replies])


def _text(reply: Any) -> Any:
    """A reply in bytes as the loop's connection reads it: text (RESP3 maps as flat lists)."""
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "surrogateescape")
    if isinstance(reply, dict):
        return [_text(part) for pair in reply.items() for part in pair]
    if isinstance(reply, list):
        return [_text(part) for part in reply]
    return reply


def _loads_text(items: Sequence[LoadItem], replies: list[Any]) -> list[Loaded | None]:
    """The loads' reads, as text, as the loads of ``items``."""
    loaded: list[Loaded | None] = []
    append = loaded.append
    new = tuple.__new__  # the named tuples' own constructors are Python functions
    known = _times.get  # the id's expiry, and the record's start and expiry, recur
    pairs = iter(replies)  # the id's expiry, the record's fields; for each item
    for (_, _, now), id_text, flat in zip(items, pairs, pairs, strict=False):
        if id_text is None:
            append(None)
            continue
        id_expires = known(id_text) or _time(id_text)
        if id_expires <= now:
            append(None)
            continue
        if not flat:
            append(new(Loaded, (id_expires, None)))
            continue
        fields = iter(flat)
        values = dict(zip(fields, fields, strict=False))  # name, value, name, ...
        pop = values.pop
        started = pop("\x00started", "0")
        expires = pop("\x00expires", "0")
        record = (
            values,
            known(started) or _time(started),
            float(pop("\x00modified", 0)),  # new at every change: not kept
            known(expires) or _time(expires),
        )
        pop("\x00indexed", None)
        append(new(Loaded, (id_expires, new(Record, record))))
    return loaded
