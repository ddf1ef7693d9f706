"""A limit on failed logins per client address.

Each address may fail ``max_failures`` times within ``window`` seconds;
then it is refused (429, with ``Retry-After``) until the oldest failure
leaves the window.  A success does not clear the count: an attacker who
also knows one password must not reset the limit with it.

The table lives in the process: with several workers each keeps its own
count (the limit is then per worker).  It holds at most ``max_clients``
addresses, dropping the least recently failed first, so a flood of
addresses cannot grow it without end.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """Counts failures per key (a client address) in a sliding window."""

    def __init__(
        self, max_failures: int = 5, window: float = 300.0, *, max_clients: int = 10_000
    ) -> None:
        if max_failures < 1 or window <= 0 or max_clients < 1:
            raise ValueError("max_failures, window and max_clients must be positive")
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                return 0.0
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[key]
                return 0.0
            if len(times) < self.max_failures:
                return 0.0
            return times[0] + self.window - now

    def failed(self, key: str, now: float | None = None) -> None:
        """Count a failure of ``key``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.pop(key, None)
            if times is None:
                times = deque(maxlen=self.max_failures)
            times.append(now)
            self._failures[key] = times
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
