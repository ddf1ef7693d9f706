"""Statistics, the request log, bot detection and the run-time log toggles.

Configured by ``[statistics]``; on by default, kept in
``statistics.sqlite3`` in the data directory (in memory without one), or
in Redis when workers or machines share them::

    from dibble.stats import statistics_of

    stats = statistics_of(server)          # None when statistics are off
    report = stats.report(days=31)          # stored + not yet flushed
    report.forever.requests, report.days[-1], report.latency["Site.onHome"]["p90"]

Each response costs the event loop one dict update (no I/O, no lock);
flushes, the request log's writes and reverse DNS lookups happen in a
thread.  See docs/statistics.md.
"""

from ._bots import AGENT_PATTERNS, BOT_DOMAINS, BotDetector, Resolver, ReverseDNS, SocketResolver
from ._collector import Collector
from ._model import BOUNDS, Counts, StatsReport, percentiles
from ._requestlog import MASK, SECRET_WORDS, RequestLog, mask_args, mask_query, session_hash
from ._statistics import Statistics
from ._stores import (
    MemoryStatsStore,
    RedisStatsStore,
    SQLiteStatsStore,
    StatsStore,
    StoreError,
    open_stats_store,
)
from ._wiring import TOGGLES, set_toggle, statistics_from_config, statistics_of, toggles

__all__ = [
    "AGENT_PATTERNS",
    "BOT_DOMAINS",
    "BOUNDS",
    "MASK",
    "SECRET_WORDS",
    "TOGGLES",
    "BotDetector",
    "Collector",
    "Counts",
    "MemoryStatsStore",
    "RedisStatsStore",
    "RequestLog",
    "Resolver",
    "ReverseDNS",
    "SQLiteStatsStore",
    "SocketResolver",
    "Statistics",
    "StatsReport",
    "StatsStore",
    "StoreError",
    "mask_args",
    "mask_query",
    "open_stats_store",
    "percentiles",
    "session_hash",
    "set_toggle",
    "statistics_from_config",
    "statistics_of",
    "toggles",
]
