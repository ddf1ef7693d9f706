"""In-process session path: a request that reads and writes a session, without sockets.

Like bench/hotpath.py, but ``CONNECTIONS`` connections each send a request
carrying the cookie of a session of its own per round, and the event loop
runs until every one is answered, so batching works as it does under wrk.
The figure is dibble's own CPU per request (the process's, the I/O thread's
included; for Redis, not redis-server's).

    python bench/sessionpath.py [--store memory|sqlite|redis] [--rounds N] [--profile]
    valgrind --tool=callgrind python bench/sessionpath.py --store redis --rounds N --quiet

For Redis a ``redis-server`` is started on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dibble
from dibble.server import HTTPProtocol, Listener
from dibble.server._context import new_event_loop, relax_gc
from dibble.sessions import SessionPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
from dibble_sessions import Bench  # the session benchmark's own app

import sessions  # bench/sessions.py: its redis-server

CONNECTIONS = 64
REQUEST = (
    b"GET /session HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
    b"Cookie: dibble_session=%s\r\n\r\n"
)


class CountingTransport(asyncio.Transport):
    def __init__(self, counter: list[int]) -> None:
        super().__init__()
        self.counter = counter  # [responses written, responses wanted]
        self.last = b""
        self.waiter: asyncio.Future[None] | None = None

    def write(self, data: Any) -> None:
        self.counter[0] += 1
        self.last = bytes(data)
        if self.counter[0] == self.counter[1] and self.waiter is not None:
            self.waiter.set_result(None)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default


class Harness:
    def __init__(self, store: str, batching: bool | None = None) -> None:
        self.loop = new_event_loop()  # uvloop, as the server uses
        asyncio.set_event_loop(self.loop)
        pool = SessionPool(store, cleanup_interval=None, batching=batching)
        server = dibble.HTTPServer(
            ("127.0.0.1", 0), dibble.Context(), access_log=False, sessions=pool
        )
        server.register(Bench())
        listener = Listener(server.application(lambda: None), server.config, self.loop)
        self.counter = [0, 0]
        self.protocols: list[HTTPProtocol] = []
        self.transports: list[CountingTransport] = []
        for _ in range(CONNECTIONS):
            protocol = HTTPProtocol(listener)
            transport = CountingTransport(self.counter)
            protocol.connection_made(transport)
            self.protocols.append(protocol)
            self.transports.append(transport)
        self.pool = pool
        # Each connection gets a session: its first request has no cookie.
        self.requests = [REQUEST.replace(b"Cookie: dibble_session=%s\r\n", b"")] * CONNECTIONS
        self.round()
        self.requests = []
        for transport in self.transports:
            head = transport.last.split(b"\r\n\r\n", 1)[0]
            cookie = [
                line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")
            ]
            sid = cookie[0].split(b"=", 1)[1].split(b";", 1)[0]
            self.requests.append(REQUEST % sid)

    def round(self) -> None:
        self.loop.run_until_complete(self._round())

    async def _round(self) -> None:
        # One round: every connection's request arrives in one loop turn.
        counter = self.counter
        counter[1] = counter[0] + CONNECTIONS
        waiter = self.loop.create_future()
        for transport in self.transports:
            transport.waiter = waiter
        for protocol, data in zip(self.protocols, self.requests, strict=True):
            protocol.data_received(data)
        if counter[0] < counter[1]:
            await waiter

    def close(self) -> None:
        self.pool.close()
        self.loop.close()


def kept(pool: SessionPool) -> str:
    """The Redis cache's hits and misses, if the store keeps sessions on the loop."""
    caches = [getattr(b, "cache", None) for b in getattr(pool.store, "_loops", {}).values()]
    found = [cache for cache in caches if cache is not None]
    if not found:
        return ""
    hits, misses = sum(c.hits for c in found), sum(c.misses for c in found)
    return f"; kept sessions: {hits:,} hits, {misses:,} misses"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="memory", help="memory, sqlite, redis or a spec")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument(
        "--batching", action="store_true", help="batch even where the store would not (memory)"
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--plaintext", action="store_true", help="GET /plaintext (same cookie), the baseline"
    )
    parser.add_argument("--no-gc", action="store_true", help="no cyclic GC while measuring")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for callgrind)")
    args = parser.parse_args()
    redis = None
    scratch = tempfile.mkdtemp(prefix="dibble-sessionpath-")
    store = args.store
    if store == "redis":
        redis = sessions.Redis()  # bench/sessions.py's, as its Redis cell has
        store = f"redis://127.0.0.1:{redis.port}/0"
    elif store == "sqlite":
        store = f"sqlite:///{Path(scratch) / 'sessions.sqlite3'}"
    try:
        harness = Harness(store, batching=True if args.batching else None)
        if args.plaintext:
            harness.requests = [r.replace(b"/session", b"/plaintext") for r in harness.requests]
        for _ in range(20):  # warm up: routes prepared, caches filled
            harness.round()
        requests = args.rounds * CONNECTIONS
        gc.collect()
        gc.freeze()  # as the server does once it serves, with its collector's threshold
        relax_gc()
        if args.no_gc:
            gc.disable()
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.rounds):
            harness.round()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        if not args.quiet:
            print(
                f"{args.store}: {cpu / requests * 1e6:.2f} us CPU/request, "
                f"{wall / requests * 1e6:.2f} us wall/request ({requests:,} requests)"
                + kept(harness.pool)
            )
        harness.close()
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
