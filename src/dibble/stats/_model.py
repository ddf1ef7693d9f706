"""What statistics are made of: counters, their names, and the report built from them.

Everything counted is an integer counter named by three strings, ``(scope,
key, field)``:

=========== ================= ==========================================
scope        key               fields
=========== ================= ==========================================
``day``      ``2024-05-01``    the ``Counts`` fields (people, not bots)
``forever``  ``""``            the ``Counts`` fields (people, not bots)
``user``     the user's name   the ``Counts`` fields
``project``  the project       the ``Counts`` fields
``bots``     ``""``            the ``Counts`` fields of bot requests
``status``   ``""``            the status code: how many responses had it
``latency``  the service       a histogram bucket's index: its count
=========== ================= ==========================================

A flush turns what was collected into increments of such counters, and a
store only ever adds increments (``HINCRBY`` in Redis, an upsert adding to
the value in SQLite), so workers sharing a store add up instead of
overwriting each other, and counters from any number of them merge.

Latency is kept as a histogram with fixed bucket bounds (``BOUNDS``, about
four per decade from 0.1 ms to 60 s) rather than as samples, for the same
reason: histograms of different workers add up, and percentiles are read
from the sum (linear within the bucket that holds the rank, so a
percentile is accurate to a bucket's width, about 50%).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "BOUNDS",
    "COUNT_FIELDS",
    "Counts",
    "Increments",
    "StatsReport",
    "build_report",
    "percentiles",
]

#: Upper bounds of the latency buckets, in seconds; the last bucket is open.
BOUNDS: Final[tuple[float, ...]] = (
    0.0001,
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)

#: (scope, key, field) -> amount to add.
Increments = dict[tuple[str, str, str], int]


@dataclass(frozen=True, slots=True)
class Counts:
    """Request counts of one day, one user, one project, or of all time."""

    requests: int = 0
    get: int = 0
    post: int = 0
    head: int = 0
    put: int = 0
    delete: int = 0
    #: Requests the protocol refused as malformed (400, 408, 413, 414, 431...).
    invalid: int = 0
    not_found: int = 0
    #: Response body bytes.
    bytes_sent: int = 0
    #: Successful answers (200, 206) of static-file mounts to GET and HEAD.
    files_served: int = 0

    @classmethod
    def from_fields(cls, fields: Mapping[str, int]) -> Counts:
        """Counts from stored fields; unknown fields are ignored."""
        return cls(**{name: int(fields.get(name, 0)) for name in COUNT_FIELDS})

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, n) + getattr(other, n) for n in COUNT_FIELDS))

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


COUNT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Counts))


def percentiles(histogram: Mapping[int, int]) -> dict[str, float]:
    """``{"count", "p50", "p90", "p99"}`` (milliseconds) of a bucket histogram."""
    total = sum(histogram.values())
    result: dict[str, float] = {"count": float(total)}
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        result[name] = _percentile(histogram, total, fraction) * 1000.0 if total else 0.0
    return result


def _percentile(histogram: Mapping[int, int], total: int, fraction: float) -> float:
    rank = fraction * total
    seen = 0
    for index in sorted(histogram):
        count = histogram[index]
        if count <= 0 or not 0 <= index <= len(BOUNDS):
            continue
        if seen + count >= rank:
            if index == len(BOUNDS):
                return BOUNDS[-1]  # the open bucket: at least this long
            lower = BOUNDS[index - 1] if index else 0.0
            upper = BOUNDS[index]
            return lower + (upper - lower) * max(0.0, rank - seen) / count
        seen += count
    return BOUNDS[-1]


@dataclass(frozen=True)
class StatsReport:
    """What ``Statistics.report`` returns: stored and not yet flushed counts together.

    ``days``, ``forever``, ``users`` and ``projects`` count people: bot
    requests are left out of them and counted in ``bots`` only.
    ``status`` and ``latency`` are about the server, so they count every
    request, bots included.  ``latency`` maps a service (the route's name,
    as in the performance log) to ``{"count", "p50", "p90", "p99"}``, in
    milliseconds.  ``store_error`` says why stored counts could not be read
    (the report then holds only this process's counts since its last flush).
    """

    days: list[tuple[datetime.date, Counts]]
    forever: Counts
    bots: Counts
    users: dict[str, Counts]
    projects: dict[str, Counts]
    status: dict[int, int]
    latency: dict[str, dict[str, float]]
    store_error: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (dates as ``YYYY-MM-DD``, codes as strings)."""
        return {
            "days": [[day.isoformat(), counts.to_json()] for day, counts in self.days],
            "forever": self.forever.to_json(),
            "bots": self.bots.to_json(),
            "users": {name: c.to_json() for name, c in sorted(self.users.items())},
            "projects": {name: c.to_json() for name, c in sorted(self.projects.items())},
            "status": {str(code): n for code, n in sorted(self.status.items())},
            "latency": {name: dict(v) for name, v in sorted(self.latency.items())},
            "store_error": self.store_error,
        }


def merge(into: Increments, more: Mapping[tuple[str, str, str], int]) -> None:
    """Add ``more`` to ``into``."""
    for name, amount in more.items():
        into[name] = into.get(name, 0) + amount


def build_report(
    counters: Iterable[tuple[tuple[str, str, str], int]],
    today: datetime.date,
    days: int,
    store_error: str = "",
) -> StatsReport:
    """A ``StatsReport`` from counters; ``days`` days up to ``today``, zero-filled."""
    scopes: dict[str, dict[str, dict[str, int]]] = {}
    for (scope, key, name), value in counters:
        fields = scopes.setdefault(scope, {}).setdefault(key, {})
        fields[name] = fields.get(name, 0) + value

    def counts(scope: str, key: str = "") -> Counts:
        return Counts.from_fields(scopes.get(scope, {}).get(key, {}))

    dates = [today - datetime.timedelta(days=back) for back in range(max(days, 1) - 1, -1, -1)]
    day_list = [(date, counts("day", date.isoformat())) for date in dates]
    status = {
        int(code): value
        for code, value in scopes.get("status", {}).get("", {}).items()
        if code.isdigit()
    }
    latency = {
        service: percentiles({int(i): n for i, n in buckets.items() if i.isdigit()})
        for service, buckets in scopes.get("latency", {}).items()
    }
    return StatsReport(
        days=day_list,
        forever=counts("forever"),
        bots=counts("bots"),
        users={name: Counts.from_fields(f) for name, f in scopes.get("user", {}).items()},
        projects={name: Counts.from_fields(f) for name, f in scopes.get("project", {}).items()},
        status=status,
        latency=latency,
        store_error=store_error,
    )
