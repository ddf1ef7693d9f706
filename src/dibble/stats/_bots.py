"""Telling bots from people: by user agent, and by verified reverse DNS.

**User agents.**  A request is a bot's when its ``User-Agent`` matches one
of ``AGENT_PATTERNS`` (case-insensitive regular expressions, searched) or
one of the configured ``[statistics] bot_agents``.  The built-in list
counts what is not a person at a browser: search-engine and AI crawlers
(``bot``, ``crawl``, ``spider``, ``slurp``), archivers, link-preview
fetchers, headless browsers, uptime monitors, and vulnerability scanners.
Generic HTTP tools (curl, wget, python-requests, Go's client) are *not*
on it: scientists fetch data with them (a download list is made for
``wget -i``), and that is use, not crawling.  Add them to ``bot_agents``
to count them apart too.  A request without a ``User-Agent`` counts as a
person's.

The verdict for each distinct user agent is cached (``agents``, a dict
keyed by the header's raw bytes, cleared when it reaches ``cache_size``),
so on the hot path a request costs one dict lookup.

**Reverse DNS** (``[statistics] reverse_dns``).  A crawler may send a
browser's user agent; the big ones can be recognised by their address: its
reverse DNS name is in the crawler's domain (``crawl-66-249-66-1.
googlebot.com``), and that name resolves forward to the same address (so a
PTR record alone, which anyone controls for their own addresses, is not
believed).  Lookups run in a small thread pool, never on the event loop;
until one completes, the address is judged by its user agent alone.
Verdicts are kept for ``ttl`` seconds (``purge`` drops older ones), and at
most ``max_entries`` addresses are remembered.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Protocol

__all__ = [
    "AGENT_PATTERNS",
    "BOT_DOMAINS",
    "BotDetector",
    "Resolver",
    "ReverseDNS",
    "SocketResolver",
]

error_log: Final = logging.getLogger("dibble.error")

#: What marks a user agent as a bot's (case-insensitive regular expressions).
AGENT_PATTERNS: Final = (
    r"bot\b",  # Googlebot, bingbot, YandexBot, Applebot, GPTBot, Slackbot, UptimeRobot...
    r"crawl",  # crawlers of every kind
    r"spider",  # Baiduspider, Sogou web spider
    r"slurp",  # Yahoo
    r"archiver",  # ia_archiver and other web archives
    r"facebookexternalhit|mediapartners-google|google-inspectiontool|feedfetcher",
    r"bingpreview|skypeuripreview|whatsapp|embedly|quora link preview",
    r"headlesschrome|phantomjs|lighthouse|pagespeed",
    r"pingdom|statuscake|site24x7|uptime|monitor|nagios|check_http|zabbix",
    r"zgrab|masscan|nmap|nikto|sqlmap|nuclei|wpscan|httrack|w3c_validator|linkchecker",
)

#: Domains whose verified reverse DNS names are crawlers'.
BOT_DOMAINS: Final = (
    "googlebot.com",
    "google.com",
    "search.msn.com",
    "crawl.yahoo.net",
    "baidu.com",
    "baidu.jp",
    "yandex.ru",
    "yandex.net",
    "yandex.com",
    "applebot.apple.com",
    "petalsearch.com",
    "ahrefs.com",
    "ahrefs.net",
    "seznam.cz",
)


class BotDetector:
    """Whether a request is a bot's: its user agent, and (optionally) its address."""

    def __init__(
        self,
        extra_agents: Iterable[str] = (),
        *,
        reverse_dns: ReverseDNS | None = None,
        cache_size: int = 4096,
    ) -> None:
        patterns = (*AGENT_PATTERNS, *extra_agents)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        self.cache_size = cache_size
        #: Verdicts by raw ``User-Agent`` value (None: no header).
        self.agents: dict[bytes | None, bool] = {None: False}
        self.reverse_dns = reverse_dns

    def agent_is_bot(self, agent: bytes | None) -> bool:
        """The verdict for ``agent``, from the cache or worked out (and cached) now."""
        verdict = self.agents.get(agent)
        if verdict is None:
            verdict = agent is not None and self.classify(agent.decode("latin-1"))
            if len(self.agents) >= self.cache_size:
                self.agents.clear()
                self.agents[None] = False
            self.agents[agent] = verdict
        return verdict

    def classify(self, agent: str) -> bool:
        """Whether the user agent text ``agent`` is a bot's (no cache)."""
        return self._pattern.search(agent) is not None

    def is_bot(self, agent: bytes | None, address: str | None) -> bool:
        """The whole verdict: the user agent, then the address when reverse DNS is on."""
        if self.agent_is_bot(agent):
            return True
        rdns = self.reverse_dns
        return rdns is not None and address is not None and rdns.is_bot(address)

    def close(self) -> None:
        if self.reverse_dns is not None:
            self.reverse_dns.close()


class Resolver(Protocol):
    """DNS lookups for ``ReverseDNS`` (tests pass a fake)."""

    def reverse(self, address: str) -> str | None:
        """The PTR name of ``address``; None when it has none."""

    def forward(self, name: str) -> list[str]:
        """The addresses ``name`` resolves to."""


class SocketResolver:
    """The system resolver (``gethostbyaddr``, ``getaddrinfo``)."""

    def reverse(self, address: str) -> str | None:
        try:
            return socket.gethostbyaddr(address)[0]
        except (OSError, UnicodeError):
            return None

    def forward(self, name: str) -> list[str]:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return []
        return [str(info[4][0]) for info in infos]


class ReverseDNS:
    """Verified reverse DNS verdicts for client addresses, looked up off the event loop."""

    def __init__(
        self,
        domains: Iterable[str] = BOT_DOMAINS,
        *,
        ttl: float = 3600.0,
        resolver: Resolver | None = None,
        max_entries: int = 10_000,
        max_pending: int = 256,
        threads: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.domains = tuple(d.lower().strip(".") for d in domains)
        self.ttl = ttl
        self.resolver: Resolver = resolver or SocketResolver()
        self.max_entries = max_entries
        self.max_pending = max_pending
        self._threads = threads
        self._clock = clock
        #: Verdicts by address (read on the event loop, written by the lookup threads).
        self.verdicts: dict[str, bool] = {}
        self._expires: dict[str, float] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def is_bot(self, address: str) -> bool:
        """The verdict for ``address``; False (and a lookup started) while unknown."""
        verdict = self.verdicts.get(address)
        if verdict is None:
            self._start(address)
            return False
        return verdict

    def _start(self, address: str) -> None:
        with self._lock:
            if self._closed or address in self._pending or len(self._pending) >= self.max_pending:
                return
            self._pending.add(address)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="dibble-rdns")
            pool = self._pool
        try:
            pool.submit(self._lookup, address)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._pending.discard(address)

    def verify(self, address: str) -> bool:
        """Look ``address`` up now (blocking): is its verified name in a crawler's domain?"""
        try:
            canonical = str(ipaddress.ip_address(address))
        except ValueError:
            return False
        name = self.resolver.reverse(canonical)
        if not name:
            return False
        name = name.lower().rstrip(".")
        if not any(name == d or name.endswith("." + d) for d in self.domains):
            return False
        forward = set()
        for found in self.resolver.forward(name):
            with contextlib.suppress(ValueError):
                forward.add(str(ipaddress.ip_address(found.split("%", 1)[0])))
        return canonical in forward

    def _lookup(self, address: str) -> None:
        try:
            verdict = self.verify(address)
        except Exception:
            error_log.exception("reverse DNS lookup of %s failed", address)
            verdict = False
        with self._lock:
            self._pending.discard(address)
            if len(self.verdicts) >= self.max_entries:
                self._drop_oldest()
            self._expires[address] = self._clock() + self.ttl
            self.verdicts[address] = verdict

    def _drop_oldest(self) -> None:
        # Called with the lock held; drops the tenth that expires first.
        doomed = sorted(self._expires, key=self._expires.__getitem__)[
            : max(1, len(self._expires) // 10)
        ]
        for address in doomed:
            self._expires.pop(address, None)
            self.verdicts.pop(address, None)

    def purge(self) -> int:
        """Forget verdicts older than ``ttl`` (they are looked up again); returns how many."""
        now = self._clock()
        with self._lock:
            doomed = [a for a, expires in self._expires.items() if expires <= now]
            for address in doomed:
                del self._expires[address]
                self.verdicts.pop(address, None)
        return len(doomed)

    def wait(self, timeout: float = 5.0) -> bool:
        """Wait until no lookup is pending (for tests); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
