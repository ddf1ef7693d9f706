"""``Session``: one service's data in one client's session, as a methlet sees it.

A ``Session`` is a mutable mapping of string keys to JSON values (str, int,
float, bool, None, lists and dicts of them).  It is loaded once per request
and service, when a methlet first reads ``self.session``, and what the
request changed is saved once, just before the response head goes out.

It records *changes*, not a new whole: the keys set and deleted, or a
clear.  Values are decoded lazily from the stored JSON texts, and a list
or dict that was read may have been changed in place, so at save time such
values are encoded again and compared with what was loaded; only keys that
really differ are written.  This is what lets the store merge concurrent
requests key by key (see ``_store.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from ._store import NO_CHANGES, Changes, Record

if TYPE_CHECKING:
    from ._pool import RequestSessions

__all__ = ["MAX_KEY_LENGTH", "Session", "SessionTooLarge", "encode_value", "valid_key"]

#: The longest session key, in characters.
MAX_KEY_LENGTH: Final = 256

_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=True,  # stores and Redis get plain ASCII, lone surrogates included
    allow_nan=False,  # NaN is not JSON; refuse it here rather than write it
    separators=(",", ":"),
    check_circular=True,
)


class SessionTooLarge(ValueError):
    """A session's data would exceed the pool's ``max_size``."""


def valid_key(key: object) -> str:
    """``key`` if it can be a session key; TypeError or ValueError saying why not."""
    if type(key) is not str:
        raise TypeError(f"session keys are strings, not {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ValueError(
            f"session key {key[:40]!r} must be 1 to {MAX_KEY_LENGTH} characters without NUL"
        )
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (from bytes that were not UTF-8): no store can hold it.
            raise ValueError(
                f"session key {key[:40]!r} is not valid Unicode text (it has a lone surrogate)"
            ) from None
    return key


def encode_value(key: str, value: Any) -> str:
    """``value`` as JSON text; TypeError naming ``key`` for what JSON cannot hold."""
    if type(value) is int:  # the common counter, without the encoder's overhead
        return str(value)
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session value for {key!r} cannot be stored: {exc} "
            "(sessions hold JSON values: str, int, float, bool, None, lists and dicts)"
        ) from None


_MISSING: Final = object()
#: Values that may change in place after they were set (checked at save time).
_CONTAINERS: Final = (list, dict)
_NOTHING: Final[frozenset[str]] = frozenset()


class Session(MutableMapping[str, Any]):
    """One service's part of a client's session (dict-like).

    ``date_started`` and ``date_modified`` are POSIX times (None until the
    data is first saved); ``is_new`` is true until then.  ``id`` is the
    session id, None while the client has no session.
    """

    __slots__ = (
        "_cleared",
        "_deleted",
        "_encoded",
        "_loaded_size",
        "_raw",
        "_set",
        "_state",
        "_values",
        "date_modified",
        "date_started",
        "expires",
        "lifetime",
        "service",
        "stale",
    )

    def __init__(
        self,
        state: RequestSessions,
        service: str,
        lifetime: float,
        record: Record | None,
    ) -> None:
        self._state = state
        self.service = service
        self.lifetime = lifetime
        if record is not None:
            self._raw: dict[str, str] = dict(record.values)
            self.date_started: float | None = record.started
            self.date_modified: float | None = record.modified
            self.expires: float | None = record.expires
        else:
            self._raw = {}
            self.date_started = self.date_modified = self.expires = None
        self._loaded_size = -1  # computed when first needed
        self._values: dict[str, Any] = {}
        self._encoded: dict[str, str] = {}
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._cleared = False
        #: True when the stored expiry should be pushed forward even if
        #: nothing changed (sliding expiry, refreshed now and then).
        self.stale = False

    # --- the mapping ------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        value = self._values.get(key, _MISSING)
        if value is not _MISSING:
            return value
        raw = self._raw.get(key)
        if raw is None:
            raise KeyError(key)
        value = self._values[key] = int(raw) if raw.isdigit() else json.loads(raw)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # Mapping.get goes through __getitem__ and an exception for a
        # missing key; this is the call methlets make most.
        value = self._values.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key not in self._raw:
            return default
        return self[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if self._state.closed:
            self._state.check_open()  # (raises)
        valid_key(key)
        # Encoded now so that a value JSON cannot hold fails here, at the
        # line that set it, rather than when the response is sent.
        self._encoded[key] = encode_value(key, value)
        self._values[key] = value
        self._set.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        self._state.check_open()
        if key not in self._values and key not in self._raw:
            raise KeyError(key)
        self._values.pop(key, None)
        self._raw.pop(key, None)
        self._encoded.pop(key, None)
        self._set.discard(key)
        if not self._cleared:
            self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values or key in self._raw

    def __iter__(self) -> Iterator[str]:
        yield from self._values
        for key in list(self._raw):
            if key not in self._values:
                yield key

    def __len__(self) -> int:
        return len(self._values) + sum(1 for key in self._raw if key not in self._values)

    def clear(self) -> None:
        """Remove every key (stored as one clear: concurrent additions go too)."""
        self._state.check_open()
        self._values.clear()
        self._raw.clear()
        self._encoded.clear()
        self._set.clear()
        self._deleted.clear()
        self._cleared = True

    def replace(self, data: Mapping[str, Any]) -> None:
        """Make the session hold exactly ``data`` (Astro-WISE ``setUserSession``)."""
        items = dict(data)
        self.clear()
        self.update(items)

    def __repr__(self) -> str:
        return f"<Session {self.service!r} {len(self)} keys>"

    # --- beyond a dict ----------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id, None while the client has no stored session."""
        return self._state.sid

    @property
    def is_new(self) -> bool:
        return self.date_started is None

    def increment(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the integer at ``key`` in the store, atomically; the new value.

        Unlike ``session[key] += 1``, concurrent increments never lose one.
        It is written at once (a session is created if there is none).
        """
        self._state.check_open()
        valid_key(key)
        if type(amount) is not int:
            raise TypeError("increment amounts are integers")
        value = self._state.increment(self, key, amount)
        self._values[key] = value
        self._raw[key] = str(value)
        self._loaded_size = -1
        self._deleted.discard(key)
        if self._cleared:
            # A clear still to be saved would take the new value with it: set it again.
            self._encoded[key] = str(value)
            self._set.add(key)
        else:
            self._encoded.pop(key, None)
            self._set.discard(key)
        return value

    def invalidate(self) -> None:
        """End the whole session, every service's data with it (logout)."""
        self._state.invalidate()

    def rotate(self) -> None:
        """Give the session a new id, keeping its data (after login or a privilege change)."""
        self._state.rotate()

    # --- what the pool uses -----------------------------------------------------------

    def changes(self) -> Changes:
        """What this request changed, with in-place changes to read values found;
        ``NO_CHANGES`` itself when nothing changed."""
        updates: dict[str, str] = {}
        changed = self._set
        encoded = self._encoded
        for key, value in self._values.items():
            if isinstance(value, _CONTAINERS):
                # It may have changed in place since it was set or read.
                text = encode_value(key, value)
                if key in changed or text != self._raw.get(key):
                    updates[key] = text
            elif key in changed:
                updates[key] = encoded[key]
        deleted = self._deleted
        if not deleted and not self._cleared:
            # (tuple.__new__: the named tuple's own constructor is a Python function)
            return tuple.__new__(Changes, (updates, _NOTHING, False)) if updates else NO_CHANGES
        return Changes(updates, frozenset(deleted), self._cleared)

    def everything(self) -> Changes:
        """All the data as one clear-and-set, for saving under a fresh id."""
        values = {key: self._raw[key] for key in self._raw if key not in self._values}
        values.update((key, encode_value(key, v)) for key, v in self._values.items())
        return Changes(values, frozenset(), True)

    def size_after(self, changes: Changes) -> int:
        """The stored size (key and value lengths) once ``changes`` apply."""
        sizes = {} if changes.cleared else {k: len(k) + len(v) for k, v in self._raw.items()}
        for key in changes.deleted:
            sizes.pop(key, None)
        sizes.update((k, len(k) + len(v)) for k, v in changes.set.items())
        return sum(sizes.values())

    def size_bound(self, changes: Changes) -> int:
        """At least ``size_after(changes)``, and much cheaper (for the common check)."""
        loaded = self._loaded_size
        if loaded < 0:
            raw = self._raw
            loaded = self._loaded_size = sum(map(len, raw)) + sum(map(len, raw.values()))
        for key, text in changes.set.items():  # a key or two, most often
            loaded += len(key) + len(text)
        return loaded

    def written(self, now: float, expires: float) -> None:
        """Record a write that went to the store at once (an increment); the changes
        still to be saved stay."""
        if self.date_started is None:
            self.date_started = now
        self.date_modified = now
        self.expires = expires
        self.stale = False

    def saved(self, changes: Changes, now: float, expires: float) -> None:
        """Record that ``changes`` were stored."""
        if self.date_started is None:
            self.date_started = now
        if changes.set or changes.deleted or changes.cleared:  # (bool(changes), inline)
            self.date_modified = now
        self.expires = expires
        if changes.set:
            self._raw.update(changes.set)
            self._loaded_size = -1
        self._set.clear()
        self._deleted.clear()
        self._cleared = False
        self.stale = False

    def reset(self) -> None:
        """Forget everything (the session was invalidated)."""
        self._values.clear()
        self._raw.clear()
        self._encoded.clear()
        self._set.clear()
        self._deleted.clear()
        self._cleared = False
        self.date_started = self.date_modified = self.expires = None
        self.stale = False
