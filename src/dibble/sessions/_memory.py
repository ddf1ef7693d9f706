"""``MemoryStore``: sessions in this process's memory.

For tests, development and single-process services whose sessions may be
lost on restart.  One lock guards everything; every operation is a few
dictionary steps, so it is never held for long.
"""

from __future__ import annotations

import threading

from ._store import Changes, Expired, Loaded, Record, SessionInfo, SessionStore, integer_value

__all__ = ["MemoryStore"]


class _Record:
    __slots__ = ("expires", "modified", "started", "values")

    def __init__(self, now: float, expires: float) -> None:
        self.values: dict[str, str] = {}
        self.started = now
        self.modified = now
        self.expires = expires

    def frozen(self) -> Record:
        # tuple.__new__: the named tuple's own constructor is a Python function.
        return tuple.__new__(
            Record, (dict(self.values), self.started, self.modified, self.expires)
        )


class _Session:
    __slots__ = ("expires", "records", "started")

    def __init__(self, started: float, expires: float) -> None:
        self.started = started
        self.expires = expires
        self.records: dict[str, _Record] = {}


class MemoryStore(SessionStore):
    """A thread-safe in-memory store; everything is lost when the process ends."""

    description = "memory"
    # Batches (when the pool is told to batch) run on the loop, one operation
    # after the other: the lock is only ever held for a few dictionary steps.
    in_loop = True
    load_many_now = SessionStore.load_many
    save_many_now = SessionStore.save_many

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def _live(self, sid: str, now: float) -> _Session | None:
        session = self._sessions.get(sid)
        return session if session is not None and session.expires > now else None

    def create(self, sid: str, now: float, expires: float) -> None:
        with self._lock:
            self._sessions[sid] = _Session(now, expires)

    def load(self, sid: str, service: str, now: float) -> Loaded | None:
        with self._lock:
            session = self._live(sid, now)
            if session is None:
                return None
            record = session.records.get(service)
            frozen = record.frozen() if record is not None else None
            return tuple.__new__(Loaded, (session.expires, frozen))

    def _record(self, session: _Session, service: str, now: float, expires: float) -> _Record:
        record = session.records.get(service)
        if record is None or record.expires <= now:
            record = session.records[service] = _Record(now, expires)
        session.expires = max(session.expires, expires)
        record.expires = expires
        return record

    def save(self, sid: str, service: str, changes: Changes, now: float, expires: float) -> bool:
        with self._lock:
            session = self._live(sid, now)
            if session is None:
                return False
            record = self._record(session, service, now, expires)
            if changes:
                if changes.cleared:
                    record.values.clear()
                for key in changes.deleted:
                    record.values.pop(key, None)
                record.values.update(changes.set)
                record.modified = now
            return True

    def increment(
        self, sid: str, service: str, key: str, amount: int, now: float, expires: float
    ) -> int | None:
        with self._lock:
            session = self._live(sid, now)
            if session is None:
                return None
            record = self._record(session, service, now, expires)
            value = integer_value(record.values.get(key, "0"), key) + amount
            record.values[key] = str(value)
            record.modified = now
            return value

    def rename(self, old: str, new: str, now: float) -> bool:
        with self._lock:
            session = self._live(old, now)
            if session is None:
                return False
            del self._sessions[old]
            self._sessions[new] = session
            return True

    def delete(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def take(self, sid: str, service: str, now: float) -> Expired | None:
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            record = session.records.get(service)
            if record is None or record.expires > now:
                return None
            del session.records[service]
            return Expired(sid, service, record.values)

    def take_expired(self, now: float, limit: int = 1000) -> list[Expired]:
        taken: list[Expired] = []
        with self._lock:
            for sid, session in list(self._sessions.items()):
                for service, record in list(session.records.items()):
                    if len(taken) >= limit:
                        return taken
                    if record.expires <= now or session.expires <= now:
                        del session.records[service]
                        taken.append(Expired(sid, service, record.values))
                if session.expires <= now and not session.records:
                    del self._sessions[sid]
        return taken

    def sessions(self, now: float, limit: int = 1000) -> list[SessionInfo]:
        with self._lock:
            live = [
                SessionInfo(sid, s.started, s.expires, tuple(sorted(s.records)))
                for sid, s in self._sessions.items()
                if s.expires > now
            ]
        live.sort(key=lambda info: info.started)
        return live[:limit]
