"""``SessionPool``: the Astro-WISE HttpSessionPool, and a request's view of it.

The pool holds a store, the lifetimes (global and per service), the cookie
settings and the cleanup hooks of one server.  ``RequestSessions`` is what
one request uses; it is made the first time a methlet reads
``self.session``, so a request that never does costs nothing at all.

One request, one session id:

* The id comes from the session cookie, and is adopted only if the store
  holds it, live.  An id the server never issued, a truncated one or an
  expired one is dropped (``rejected`` says why) and the request goes on
  without a session; a new id is made only when data must be stored.
* Each service's data is loaded when first read and saved, if the request
  changed it, just before the response head is sent.  A methlet that
  raises saves nothing: a failed request leaves its session as it was.
* ``rotate()`` (login, privilege change) moves the data to a new id;
  ``invalidate()`` (logout) deletes it.

Responses of requests that read a session get ``Vary: Cookie`` and
``Cache-Control: private`` (a shared cache must not hand one user's page to
another), and ``Set-Cookie`` when the id is new or rotated.

A store that fails raises ``StoreError``; the request gets a 503 with
``Retry-After``, the error goes to the error log, and for a store that
cannot be reached the pool answers 503 at once for ``retry_after``
seconds instead of waiting on every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..app import HTTPError, Pending, Request, server_of
from ..app._writer import add_head_hook
from ..cookies import Cookie
from ._batch import Batcher, SessionPreparation
from ._memory import MemoryStore
from ._session import Session, SessionTooLarge
from ._store import NO_CHANGES, Changes, Expired, Loaded, SessionStore, StoreBusy, StoreError

if TYPE_CHECKING:
    from ..app import HTTPServer

__all__ = [
    "AUTH_SERVICE",
    "RequestSessions",
    "SessionPool",
    "new_session_id",
    "open_store",
    "pool_of",
    "service_name",
    "session_for",
    "sessions_of",
    "valid_session_id",
]

error_log: Final = logging.getLogger("dibble.error")

T = TypeVar("T")

#: Bytes of randomness in a session id (192 bits; at least 128 are required).
ID_BYTES: Final = 24
_ID: Final = re.compile(r"[A-Za-z0-9_-]{32}")

_HOST_PREFIX: Final = "__Host-"

#: The service under which login state is kept (see ``dibble.auth``).
AUTH_SERVICE: Final = "dibble.auth"

CleanupHook = Callable[[str, dict[str, Any]], None]


def new_session_id() -> str:
    """A fresh session id: 192 random bits from ``secrets``, URL-safe base64."""
    return secrets.token_urlsafe(ID_BYTES)


def valid_session_id(value: str) -> bool:
    """Whether ``value`` is shaped like an id this server issues (no store lookup)."""
    return _ID.fullmatch(value) is not None


def open_store(spec: str | os.PathLike[str]) -> SessionStore:
    """A store from a URL or path.

    ``"memory"``; ``"redis://host:port/db"`` (or ``rediss://``); ``"sqlite:///abs/path"``,
    ``"sqlite://rel/path"`` or a plain file path for SQLite.
    """
    text = os.fspath(spec)
    if text == "memory":
        return MemoryStore()
    if text.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore

        return RedisStore(text)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
    if not text:
        raise ValueError("an SQLite session store needs a file path")
    from ._sqlite import SQLiteStore

    return SQLiteStore(text)


class SessionPool:
    """Sessions of one server: a store, lifetimes, cookie settings and cleanup.

    ``store`` is a ``SessionStore`` or a spec for ``open_store``.
    ``lifetime`` is how long an unused session lives, in seconds (sliding:
    each use pushes it forward); ``lifetimes`` overrides it per service.
    The cookie is ``HttpOnly; SameSite=Lax``, ``Secure`` when the request
    came over TLS (or when ``cookie_secure`` says so), and named
    ``__Host-<cookie_name>`` when it is secure, host-only and for path
    ``/``.  ``cookie_max_age`` None makes it a browser-session cookie.
    ``max_size`` bounds one service's data (keys and JSON texts, bytes).
    """

    def __init__(
        self,
        store: SessionStore | str | os.PathLike[str] = "memory",
        *,
        lifetime: float = 12 * 3600,
        lifetimes: Mapping[str, float] | None = None,
        cookie_name: str = "dibble_session",
        cookie_domain: str | None = None,
        cookie_path: str = "/",
        cookie_secure: bool | None = None,
        cookie_max_age: int | None = None,
        max_size: int = 64 * 1024,
        cleanup_interval: float | None = 300.0,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.time,
        batching: bool | None = None,
    ) -> None:
        if lifetime <= 0:
            raise ValueError("the session lifetime must be positive")
        self.store = store if isinstance(store, SessionStore) else open_store(store)
        self.lifetime = lifetime
        self.lifetimes = dict(lifetimes or {})
        self.cookie_name = cookie_name
        self.cookie_domain = cookie_domain or None
        self.cookie_path = cookie_path
        self.cookie_secure = cookie_secure
        self.cookie_max_age = cookie_max_age
        self.max_size = max_size
        self.cleanup_interval = cleanup_interval
        self.retry_after = retry_after
        #: The time in POSIX seconds (replaceable, for tests).
        self.clock = clock
        #: Whether routes that use sessions load and save them in batches
        #: (see _batch.py); by default when the store gains by it.
        self.batching = self.store.batches if batching is None else batching
        self._batchers: dict[asyncio.AbstractEventLoop, Batcher] = {}
        self._io: ThreadPoolExecutor | None = None
        # The expiry is pushed forward when a read finds this much of the
        # lifetime gone, not on every read: a read-only request then writes
        # nothing most of the time.
        self.refresh_after = min(lifetime / 10, 300.0)
        self._hooks: dict[str, CleanupHook] = {}
        #: True for the pool a server made for itself (it closes it when it stops).
        self.made_by_default = False
        self._down_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._timer_lock = threading.Lock()
        Cookie(cookie_name, "x", path=cookie_path, domain=self.cookie_domain)  # checks them

    def __repr__(self) -> str:
        return f"<SessionPool {self.store.description} lifetime={self.lifetime:g}s>"

    # --- configuration ----------------------------------------------------------------

    def lifetime_for(self, service: str, override: float | None = None) -> float:
        """The lifetime of ``service``'s data: ``override``, then ``lifetimes``, then global."""
        if override is not None:
            return float(override)
        return self.lifetimes.get(service, self.lifetime)

    def on_expired(self, service: str, hook: CleanupHook) -> None:
        """Call ``hook(sid, data)`` for each of ``service``'s records that expires."""
        self._hooks[service] = hook

    def bind(self, owners: list[Any]) -> None:
        """Register the cleanup hooks of plugins (their ``session_expired`` methods)."""
        for owner in owners:
            hook = getattr(owner, "session_expired", None)
            if callable(hook) and not getattr(hook, "__dibble_default__", False):
                service = service_name(owner)
                self._hooks.setdefault(service, _hook_for(hook))

    # --- guarded store access ---------------------------------------------------------

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the store; a failure becomes a 503 ``HTTPError``."""
        if self._down_until and time.monotonic() < self._down_until:
            raise self._unavailable()
        try:
            result = func(*args)
        except StoreError as exc:
            raise self.failed(exc) from exc
        if self._down_until:
            self.answered()
        return result

    def down(self) -> HTTPError | None:
        """The 503 to answer without trying the store, while it is known to be down."""
        if self._down_until and time.monotonic() < self._down_until:
            return self._unavailable()
        return None

    def failed(self, exc: StoreError) -> HTTPError:
        """Log the store's failure and make the 503 for it; an unavailable store is
        then not tried for ``retry_after`` seconds."""
        if exc.unavailable:
            if not self._down_until:
                error_log.error(
                    "sessions: %s; answering 503 for %g s before trying again",
                    exc,
                    self.retry_after,
                )
            self._down_until = time.monotonic() + self.retry_after
        else:
            error_log.error("sessions: %s", exc)
        error = self._unavailable()
        error.__cause__ = exc
        return error

    def answered(self) -> None:
        """The store answered: it is up (again)."""
        if self._down_until:
            self._down_until = 0.0
            error_log.warning("sessions: the store (%s) answers again", self.store.description)

    def _unavailable(self) -> HTTPError:
        return HTTPError(
            503,
            "The session store is not available right now; please try again in a moment.",
            [("Retry-After", str(max(1, round(self.retry_after))))],
        )

    # --- cleanup ------------------------------------------------------------------------

    def cleanup(self, now: float | None = None, *, batch: int = 500) -> int:
        """Remove expired sessions, calling each service's hook; how many records went.

        Safe to call from several workers at once: each record is handed to
        exactly one of them.  A hook that raises is logged and skipped.
        """
        now = self.clock() if now is None else now
        count = 0
        while True:
            taken = self.store.take_expired(now, batch)
            for record in taken:
                self._run_hook(record)
            count += len(taken)
            if len(taken) < batch:
                return count

    def _run_hook(self, record: Expired) -> None:
        hook = self._hooks.get(record.service)
        if hook is None:
            return
        try:
            data = {key: json.loads(text) for key, text in record.values.items()}
            hook(record.sid, data)
        except Exception:
            error_log.exception("the session cleanup hook of %r raised", record.service)

    def expire_one(self, sid: str, service: str, now: float) -> None:
        """Take one expired record now (a request found it) and run its hook."""
        taken = self.call(self.store.take, sid, service, now)
        if taken is not None:
            self._run_hook(taken)

    def schedule_cleanup(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run ``cleanup`` every ``cleanup_interval`` seconds on ``loop`` (once per pool)."""
        if self.cleanup_interval is None:
            return
        with self._timer_lock:
            current = self._timer_loop
            if current is not None and not current.is_closed():
                return
            self._timer_loop = loop
        loop.call_soon_threadsafe(self._arm, loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.cleanup_interval is not None and not loop.is_closed():
            self._timer = loop.call_later(self.cleanup_interval, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        # Hooks are application code and stores do I/O: off the event loop.
        loop.run_in_executor(None, self._cleanup_logged)
        self._arm(loop)

    def _cleanup_logged(self) -> None:
        try:
            self.cleanup()
        except StoreError as exc:
            error_log.error("sessions: cleanup failed: %s", exc)

    def release_loops(self) -> None:
        """Let go of the batchers, and the store's connections, of the loop this runs on
        and of loops that are not running (a server that stops calls it)."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop in list(self._batchers):
            if loop is current or not loop.is_running():
                del self._batchers[loop]
                self.store.release_loop(loop)

    def close(self) -> None:
        """Stop the cleanup timer and close the store."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_loop = None
            io, self._io = self._io, None
        if io is not None:
            io.shutdown(wait=True)
        self.store.close()

    # --- requests -------------------------------------------------------------------------

    def io_thread(self) -> ThreadPoolExecutor:
        """The thread batched store calls run in (one: batches go in order)."""
        if self._io is None:
            with self._timer_lock:
                if self._io is None:
                    self._io = ThreadPoolExecutor(1, thread_name_prefix="dibble-sessions")
        return self._io

    def batcher(self, request: Request) -> Batcher:
        """The batcher of the event loop ``request`` is answered on."""
        conn = request.conn
        loop = conn.loop if conn is not None else asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            if len(self._batchers) > 16:  # loops of servers that stopped
                self._batchers = {k: v for k, v in self._batchers.items() if not k.is_closed()}
            batcher = self._batchers[loop] = Batcher(self, loop)
        return batcher

    def cookie_for(self, request: Request) -> tuple[str, bool]:
        """The session cookie's name for ``request`` and whether it is ``Secure``."""
        secure = request.tls if self.cookie_secure is None else self.cookie_secure
        if secure and self.cookie_domain is None and self.cookie_path == "/":
            return _HOST_PREFIX + self.cookie_name, True
        return self.cookie_name, secure

    def for_request(self, request: Request) -> RequestSessions:
        """The request's session state, made on first use."""
        state: RequestSessions | None = request.session_state
        if state is None:
            state = RequestSessions(self, request)
            request.session_state = state
            writer = request.writer
            if writer is not None and writer.streaming:
                # Read after the head went out: there is no way to send a
                # cookie or save in time any more, so it stays read-only.
                state.closed = True
            else:
                add_head_hook(request, state.before_head)
            conn = request.conn
            if (
                conn is not None
                and self.cleanup_interval is not None
                and self._timer_loop is not conn.loop
            ):
                self.schedule_cleanup(conn.loop)
        return state


def _hook_for(method: Callable[[dict[str, Any]], Any]) -> CleanupHook:
    def hook(sid: str, data: dict[str, Any]) -> None:
        method(data)

    return hook


def service_name(owner: Any) -> str:
    """The service a plugin's or page's session data is kept under.

    Its ``session_service`` attribute when set, else the class's module and
    qualified name.
    """
    name = getattr(owner, "session_service", None)
    if name:
        return str(name)
    cls = owner if isinstance(owner, type) else type(owner)
    name = _service_names.get(cls)
    if name is None:
        name = _service_names[cls] = f"{cls.__module__}.{cls.__qualname__}"
    return name


_service_names: dict[type, str] = {}


class RequestSessions:
    """One request's sessions: the id, the services' data, the cookie to send."""

    __slots__ = (
        "_batch",
        "_batcher",
        "_checked",
        "auth_cache",
        "closed",
        "drop_cookie",
        "issue_cookie",
        "pool",
        "read",
        "rejected",
        "request",
        "saved",
        "sessions",
        "sid",
    )

    def __init__(self, pool: SessionPool, request: Request) -> None:
        self.pool = pool
        self.request = request
        #: The adopted or issued id; None while the client has no session.
        self.sid: str | None = None
        #: Why the id the client sent was not adopted, if it was not.
        self.rejected: str | None = None
        self.sessions: dict[str, Session] = {}
        self.issue_cookie = False
        self.drop_cookie = False
        self.read = False
        #: Set once the head is out: no more changes can be saved.
        self.closed = False
        #: Set once this request's changes were stored (or there were none).
        self.saved = False
        self._checked = False
        # What a batched load or save needs back when its results come.
        self._batch: Any = None
        # The loop's batcher, once a batched load found it.
        self._batcher: Batcher | None = None
        #: What ``dibble.auth`` found out about the user, for this request.
        self.auth_cache: object = None

    def finished(self) -> None:
        """The response is complete: drop this state's links to its sessions and the
        request's to it (reference cycles), so all of it is freed at once.

        The sessions stay usable for reading; changing them raises, as after
        the head went out.
        """
        self.closed = True
        self.sessions = {}
        self._batch = None
        self._batcher = None
        self.request.session_state = None

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeError(
                "the session was saved when the response head was sent (at the first "
                "flush); change it before then"
            )

    def _cookie_id(self) -> str | None:
        """The id in the request's cookie, if it is shaped like one of ours."""
        request = self.request
        found = _cookie_value(request, self.pool.cookie_for(request)[0])
        if found is None:
            return None
        value, valid = found
        if not valid:
            self.rejected = "the session cookie is malformed"
            return None
        return value

    def get(self, service: str, lifetime: float | None = None) -> Session:
        """The data of ``service`` in this request's session, loaded on first use."""
        self.read = True
        session = self.sessions.get(service)
        if session is not None:
            return session
        pool = self.pool
        now = pool.clock()
        loaded: Loaded | None = None
        if not self._checked:
            self._checked = True
            candidate = self._cookie_id()
            if candidate is not None:
                loaded = pool.call(pool.store.load, candidate, service, now)
                self._adopt(candidate, loaded)
        elif self.sid is not None:
            loaded = pool.call(pool.store.load, self.sid, service, now)
        session = self._open(service, pool.lifetime_for(service, lifetime), loaded, now)
        self._learn(service, lifetime)
        return session

    def _adopt(self, candidate: str, loaded: Loaded | None) -> None:
        if loaded is None:
            self.rejected = _UNKNOWN_ID
        else:
            self.sid = candidate

    def _open(self, service: str, span: float, loaded: Loaded | None, now: float) -> Session:
        """The ``Session`` for what was loaded (an expired record goes to its hook)."""
        pool = self.pool
        record = loaded.record if loaded is not None else None
        if record is not None and record.expires <= now:
            assert self.sid is not None
            pool.expire_one(self.sid, service, now)
            record = None
        session = Session(self, service, span, record)
        if record is not None and record.expires - now < span - pool.refresh_after:
            session.stale = True
        self.sessions[service] = session
        return session

    def _learn(self, service: str, lifetime: float | None) -> None:
        """Have later requests of this route load ``service`` in a batch (see _batch.py)."""
        route = self.request.route
        if route is None or not self.pool.batching:
            return
        preparation = route.preparation
        if preparation is None:
            preparation = SessionPreparation(self.pool)
            if not route.prepare(preparation):
                return
        if (
            isinstance(preparation, SessionPreparation)
            and (service, lifetime) not in preparation.services
        ):
            preparation.services.append((service, lifetime))

    def preload(self, services: list[tuple[str, float | None]]) -> Pending | None:
        """Load ``services`` for a prepared route: now, or in the loop turn's batch."""
        if self._checked or not services:
            return None
        self._checked = True
        candidate = self._cookie_id()
        if candidate is None:
            return None  # no session: nothing to load, the methlet starts empty ones
        pool = self.pool
        now = pool.clock()
        if len(services) == 1:  # (most routes use one service)
            items = [(candidate, services[0][0], now)]
        else:
            items = [(candidate, service, now) for service, _ in services]
        self._batch = (candidate, services, now)
        if pool.store.in_loop:
            # A local store reads without waiting: no batch, no wait.
            try:
                results = pool.call(pool.store.load_many_now, items)
            except StoreBusy:
                pass
            else:
                self._preloaded(results)
                return None
        batcher = self._batcher = pool.batcher(self.request)
        return batcher.load(items, self._preloaded)

    def _preloaded(self, results: list[Loaded | None]) -> None:
        """The results of ``preload``'s loads (one for each of its services)."""
        candidate, services, now = self._batch
        self._batch = None
        if results[0] is None:  # (``_adopt``, inline)
            self.rejected = _UNKNOWN_ID
        else:
            self.sid = candidate
        # (The batch hands back as many results as there were loads.)
        for (service, life), loaded in zip(services, results):  # noqa: B905
            if service not in self.sessions:
                span = self.pool.lifetime_for(service, life)
                self._open(service, span, loaded if self.sid is not None else None, now)

    def _new_id(self, now: float) -> str:
        sid = new_session_id()
        self.pool.call(self.pool.store.create, sid, now, now + self.pool.lifetime)
        self.sid = sid
        self.issue_cookie = True
        self.drop_cookie = False
        return sid

    def increment(self, session: Session, key: str, amount: int) -> int:
        pool = self.pool
        now = pool.clock()
        sid = self.sid if self.sid is not None else self._new_id(now)
        expires = now + session.lifetime
        value = pool.call(pool.store.increment, sid, session.service, key, amount, now, expires)
        if value is None:  # the id went away meanwhile (a logout elsewhere)
            sid = self._new_id(now)
            value = pool.call(
                pool.store.increment, sid, session.service, key, amount, now, expires
            )
            if value is None:
                raise RuntimeError("a session id vanished as soon as it was made")
        session.written(now, expires)
        return value

    def rotate(self) -> None:
        """Move the session to a new id (its data kept); the cookie follows."""
        self.check_open()
        if self.sid is None:
            return
        pool = self.pool
        now = pool.clock()
        new = new_session_id()
        if pool.call(pool.store.rename, self.sid, new, now):
            self.sid = new
            self.issue_cookie = True
        else:
            self.sid = None
            for session in self.sessions.values():
                session.reset()

    def invalidate(self) -> None:
        """Delete the session and every service's data; the cookie is dropped."""
        self.check_open()
        if self.sid is not None:
            self.pool.call(self.pool.store.delete, self.sid)
        self.sid = None
        self.issue_cookie = False
        self.drop_cookie = True
        for session in self.sessions.values():
            session.reset()

    # --- the head hook ------------------------------------------------------------------

    def _pending(self, now: float) -> list[tuple[Session, Changes]]:
        """What to store: each session's changes, or a refresh of its expiry."""
        pool = self.pool
        work: list[tuple[Session, Changes]] = []
        for session in self.sessions.values():
            changes = session.changes()
            if changes is NO_CHANGES:  # (changes() answers nothing with this one)
                if not session.stale or self.sid is None:
                    continue
                changes = NO_CHANGES
            if changes.set and pool.max_size and session.size_bound(changes) > pool.max_size:
                size = session.size_after(changes)
                if size > pool.max_size:
                    raise SessionTooLarge(
                        f"the session data of {session.service!r} would take {size} bytes, "
                        f"more than the pool's max_size of {pool.max_size}"
                    )
            work.append((session, changes))
        if work and self.sid is None:
            self._new_id(now)
        return work

    def _expires(self, session: Session, now: float) -> float:
        """The expiry to store with ``session``: pushed forward only when due.

        Like a read, a write moves the expiry only when ``refresh_after`` of
        the lifetime has passed since it last moved (``stale``): most saves
        then leave the id's expiry alone, which spares the store a write.
        """
        current = session.expires
        if current is not None and not session.stale and current > now:
            return current
        return now + session.lifetime

    def _stored(
        self, session: Session, changes: Changes, stored: bool, now: float, expires: float
    ) -> None:
        if not stored:
            # The id went away since it was loaded (a logout in another tab,
            # or it expired): keep this request's data under a new one.
            expires = now + session.lifetime
            changes = session.everything()
            self._new_id(now)
            assert self.sid is not None
            pool = self.pool
            pool.call(pool.store.save, self.sid, session.service, changes, now, expires)
        session.saved(changes, now, expires)

    def save(self) -> None:
        """Store what this request changed (and refresh expiries that are due)."""
        if self.saved:
            return
        self.saved = True
        pool = self.pool
        now = pool.clock()
        for session, changes in self._pending(now):
            assert self.sid is not None
            expires = self._expires(session, now)
            stored = pool.call(pool.store.save, self.sid, session.service, changes, now, expires)
            self._stored(session, changes, stored, now, expires)

    def save_batched(self) -> Pending | None:
        """``save`` in the loop turn's batch (for prepared routes)."""
        if self.saved or self.closed:
            return None
        self.saved = True
        pool = self.pool
        now = pool.clock()
        work = self._pending(now)
        if not work:
            return None
        sid = self.sid
        assert sid is not None
        if len(work) == 1:  # (most routes use one service)
            session, changes = work[0]
            items = [(sid, session.service, changes, now, self._expires(session, now))]
        else:
            items = [
                (sid, session.service, changes, now, self._expires(session, now))
                for session, changes in work
            ]
        self._batch = (work, items)
        batcher = self._batcher or pool.batcher(self.request)
        return batcher.save(items, self._saved)

    def _saved(self, results: list[bool]) -> None:
        """The results of ``save_batched``'s saves (one for each)."""
        work, items = self._batch
        self._batch = None
        # (The batch hands back as many results as there were saves.)
        for (session, changes), stored, item in zip(work, results, items):  # noqa: B905
            self._stored(session, changes, stored, item[3], item[4])

    def before_head(self, headers: list[tuple[str, str]]) -> None:
        """Save, then add the cookie and caching fields to ``headers`` (a head hook)."""
        if self.closed:
            return
        if not self.saved:  # (saved already when the route was prepared)
            self.save()
        self.closed = True
        if self.issue_cookie or self.drop_cookie or self.rejected is not None:
            self._cookie_field(headers)
        if self.read:
            if headers:
                _vary_on_cookie(headers)
            else:  # (the common case, without a call)
                headers += _PRIVATE

    def _cookie_field(self, headers: list[tuple[str, str]]) -> None:
        pool = self.pool
        name, secure = pool.cookie_for(self.request)
        if self.issue_cookie and self.sid is not None:
            cookie = Cookie(
                name,
                self.sid,
                max_age=pool.cookie_max_age,
                path=pool.cookie_path,
                domain=pool.cookie_domain,
                secure=secure,
            )
            headers.append(cookie.header())
        elif self.drop_cookie or (self.rejected is not None and self.sid is None):
            # Make the browser forget an id that is dead, so it stops sending it.
            cookie = Cookie(
                name, "", path=pool.cookie_path, domain=pool.cookie_domain, secure=secure
            )
            headers.append(cookie.deleted().header())


_PRIVATE: Final = (("Vary", "Cookie"), ("Cache-Control", "private"))
#: Why an id the client sent was not adopted, when the store does not know it.
_UNKNOWN_ID: Final = "the session is unknown or has expired"


def _vary_on_cookie(headers: list[tuple[str, str]]) -> None:
    """Add ``Vary: Cookie`` and make caching private, merged with what is there."""
    vary = [i for i, (k, _) in enumerate(headers) if k.lower() == "vary"]
    if not vary:
        headers.append(("Vary", "Cookie"))
    else:
        i = vary[0]
        tokens = [t.strip().lower() for t in headers[i][1].split(",")]
        if "*" not in tokens and "cookie" not in tokens:
            headers[i] = (headers[i][0], headers[i][1] + ", Cookie")
    control = [i for i, (k, _) in enumerate(headers) if k.lower() == "cache-control"]
    if not control:
        headers.append(("Cache-Control", "private"))
        return
    i = control[0]
    parts = [p.strip() for p in headers[i][1].split(",") if p.strip()]
    lowered = {p.lower().split("=", 1)[0] for p in parts}
    if "private" in lowered or "no-store" in lowered:
        return
    kept = [p for p in parts if p.lower().split("=", 1)[0] not in ("public", "s-maxage")]
    headers[i] = (headers[i][0], ", ".join(["private", *kept]))


def _cookie_value(request: Request, name: str) -> tuple[str, bool] | None:
    """The value of cookie ``name`` (the first one, as browsers send the most specific
    first), and whether it is shaped like a session id; the request's other
    cookies are not parsed.

    A browser sends the same ``Cookie`` field request after request, so what
    was found in one is kept, by the field's bytes (up to ``_MAX_FOUND`` fields
    of at most ``_MAX_KEPT_FIELD`` bytes: a few megabytes at most).
    """
    for field, value in request.raw_headers:
        if field != b"cookie":
            continue
        if len(value) > _MAX_KEPT_FIELD:
            found = _judged(_find_cookie(value, name))
        else:
            key = (name, value)
            found = _found.get(key)
            if found is None and key not in _found:
                found = _judged(_find_cookie(value, name))
                if len(_found) >= _MAX_FOUND:
                    _found.clear()
                _found[key] = found
        if found is not None:
            return found
    return None


def _judged(value: str | None) -> tuple[str, bool] | None:
    return None if value is None else (value, valid_session_id(value))


def _find_cookie(value: bytes, name: str) -> str | None:
    """The value of cookie ``name`` in one ``Cookie`` field, if it is there."""
    key = _cookie_keys.get(name)
    if key is None:
        key = _cookie_keys[name] = name.encode("ascii") + b"="
    at = value.find(key)
    while at >= 0:
        # A whole name: at the start, or after ";" and blanks (not "xdibble_session=").
        before = value[:at].rstrip(b" \t")
        if not before or before[-1:] == b";":
            end = value.find(b";", at)
            text = value[at + len(key) : end if end >= 0 else len(value)].strip(b" \t")
            if len(text) >= 2 and text[:1] == b'"' == text[-1:]:
                text = text[1:-1]
            return text.decode("latin-1")
        at = value.find(key, at + 1)
    return None


_cookie_keys: dict[str, bytes] = {}
_MAX_FOUND: Final = 4096
_MAX_KEPT_FIELD: Final = 512
#: (cookie name, a ``Cookie`` field's bytes) -> the cookie's value there and whether
#: it is shaped like a session id, or None.
_found: dict[tuple[str, bytes], tuple[str, bool] | None] = {}

_default_lock: Final = threading.Lock()


def pool_of(server: HTTPServer) -> SessionPool:
    """``server``'s session pool, making the default one on first use.

    The default keeps sessions in ``sessions.sqlite3`` in the data directory
    (``[paths] data_dir``); without a data directory they are kept in memory
    (with a warning: they do not survive a restart or reach other workers).
    """
    pool: SessionPool | None = server.sessions
    if pool is not None:
        return pool
    with _default_lock:
        pool = server.sessions
        if pool is None:
            pool = server.sessions = default_pool(server)
            pool.bind(server.plugins)
    return pool


def default_pool(server: HTTPServer) -> SessionPool:
    """The pool a server gets when none was given: ``[sessions]`` of its configuration.

    ``store`` empty means SQLite in ``sessions.sqlite3`` of ``[paths]
    data_dir``, or memory (with a warning) without a data directory.
    Relative SQLite paths are relative to the data directory.
    """
    settings = server.site.settings
    section = settings.sessions
    data_dir = settings.paths.data_dir
    spec = section.store
    if not spec:
        if data_dir:
            spec = os.path.join(data_dir, "sessions.sqlite3")
        else:
            error_log.warning(
                "no [paths] data_dir: sessions are kept in memory and lost on restart; "
                "set a data directory (or [sessions] store) to keep them"
            )
            spec = "memory"
    store: SessionStore
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore

        store = RedisStore(spec, timeout=section.timeout, cache=section.redis_cache)
    elif spec == "memory":
        store = MemoryStore()
    else:
        from ._sqlite import SQLiteStore

        path = spec[len("sqlite://") :].lstrip("/") if spec.startswith("sqlite://") else spec
        if spec.startswith("sqlite:////"):
            path = "/" + path
        if not os.path.isabs(path):
            path = os.path.join(data_dir or settings.paths.root or ".", path)
        store = SQLiteStore(path, busy_timeout=section.timeout)
    pool = SessionPool(
        store,
        lifetime=section.lifetime,
        lifetimes=section.lifetimes,
        cookie_name=f"{settings.server.name}_{section.cookie_name}",
        cookie_domain=section.cookie_domain or None,
        cookie_secure=True if settings.cookies.secure else None,
        max_size=section.max_size,
        cleanup_interval=section.cleanup_interval,
    )
    pool.made_by_default = True
    return pool


def session_for(request: Request, owner: Any) -> Session:
    """The session data of ``owner`` (a plugin or page) for ``request``."""
    service = service_name(owner)
    state: RequestSessions | None = request.session_state
    if state is not None:
        # Loaded already (a prepared route loads before the methlet runs).
        session = state.sessions.get(service)
        if session is not None:
            state.read = True
            return session
    else:
        state = sessions_of(request)
    return state.get(service, getattr(owner, "session_lifetime", None))


def sessions_of(request: Request) -> RequestSessions:
    """The session state of ``request``, from its server's pool."""
    state: RequestSessions | None = request.session_state
    if state is not None:
        return state
    server = server_of(request)
    if server is None:
        raise RuntimeError("sessions need a request answered by a dibble.HTTPServer")
    return pool_of(server).for_request(request)
