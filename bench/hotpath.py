"""In-process hot-path timer: one request through parser, protocol and dispatch.

No sockets and no kernel: a request's bytes are fed straight to
``HTTPProtocol.data_received`` over a transport that discards what is
written, so the figure is dibble's own Python cost per request.  Use it to
see what a change to the hot path gains before measuring with wrk (bench/run.py).

    python bench/hotpath.py [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import dibble
from dibble.server import HTTPProtocol, Listener

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"


class Bench(dibble.Plugin):
    def onPlaintext(self) -> dibble.Response:
        return dibble.Response(b"Hello, World!", content_type="text/plain")

    def onText(self) -> str:
        return "Hello, World!"

    def onJson(self) -> dict[str, str]:
        return {"message": "Hello, World!"}


class NullTransport(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default


def run(path: bytes, count: int) -> float:
    loop = asyncio.new_event_loop()
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), access_log=False)
    server.register(Bench())
    listener = Listener(server.application(lambda: None), server.config, loop)
    protocol = HTTPProtocol(listener)
    protocol.connection_made(NullTransport())
    data = REQUEST.replace(b"/plaintext", path)
    start = time.perf_counter()
    for _ in range(count):
        protocol.data_received(data)
    elapsed = time.perf_counter() - start
    loop.close()
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--once", metavar="PATH", help="run PATH --count times, print nothing")
    args = parser.parse_args()
    if args.once:
        run(args.once.encode(), args.count)
        return
    if args.profile:
        cProfile.runctx(
            "run(b'/plaintext', count)", globals(), {"count": args.count}, "/tmp/hotpath.prof"
        )
        pstats.Stats("/tmp/hotpath.prof").sort_stats("tottime").print_stats(18)
        return
    for path in (b"/plaintext", b"/text", b"/json"):
        best = min(run(path, args.count) for _ in range(3))
        print(f"{path.decode():12} {best * 1e6:6.2f} us/request  ({1 / best:,.0f} req/s ceiling)")


if __name__ == "__main__":
    main()
