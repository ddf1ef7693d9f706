#!/usr/bin/env python3
"""One session cell, A/B between source trees: what a change to the session path gave.

    git worktree add /tmp/before HEAD~3     # or: git archive HEAD~3 src | tar -x -C /tmp/b
    python3 bench/sessions_ab.py --store redis --rounds 5 before=/tmp/before/src after=src

Each ``NAME=SRC`` runs bench/sessions.py's dibble cell for the store (the
app in bench/apps/dibble_sessions.py, from the repository's .venv) with
``PYTHONPATH=SRC``, so the code under test is the tree's, everything else
the same.  As in bench/sessions.py: a fresh server pinned to core 0, 64
sessions, a warm-up, wrk on core 1, and the counter checked after.  The
variants alternate, their order rotating each round, so a slow spell of a
shared machine does not fall on one of them.

Besides requests/s it reads from /proc the server's CPU time (user and
system, every thread) per request, and for Redis the share of a core
redis-server used: on two cores redis-server shares them with the server
and wrk, so work it is spared shows up as the server's throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness
from servers import Env
from workloads import raise_file_limit

import sessions


def cpu_seconds(pid: int) -> float:
    """User plus system time of every thread of ``pid`` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(
    cell: sessions.Cell,
    env: Env,
    src: Path,
    redis: sessions.Redis,
    scratch: Path,
    duration: float,
) -> dict[str, Any]:
    if cell.store == "redis":
        redis.flush()
        store = f"redis://127.0.0.1:{redis.port}/0"
    elif cell.store == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="sqlite-", dir=scratch))
        store = f"sqlite:///{folder / 'sessions.sqlite3'}"
    else:
        store = "memory"
    running = sessions.start(cell, env, store, {"PYTHONPATH": str(src)})
    try:
        cookies = sessions.make_sessions(cell, running.port)
        script = scratch / "session_cookies.lua"
        script.write_text(sessions.LUA)
        sessions.wrk(running.port, cell.path, 1.0, script, cookies)
        before = sessions.counter(running.port, cell.path, cookies[0])
        server_cpu = cpu_seconds(running.process.pid)
        redis_cpu = cpu_seconds(redis.process.pid)
        result = sessions.wrk(running.port, cell.path, duration, script, cookies)
        server_cpu = cpu_seconds(running.process.pid) - server_cpu
        redis_cpu = cpu_seconds(redis.process.pid) - redis_cpu
        if "error" in result:
            return result
        after = sessions.counter(running.port, cell.path, cookies[0])
        if after - before < 0.8 * result["requests"] / sessions.SESSIONS:
            return {"error": f"the counter grew by {after - before} only"}
        result["cpu_us"] = server_cpu / result["requests"] * 1e6
        result["redis_share"] = redis_cpu / duration
        return result
    finally:
        sessions.servers.stop(running)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=SRC")
    parser.add_argument("--store", choices=("memory", "sqlite", "redis"), default="redis")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    variants: list[tuple[str, Path]] = []
    for spec in args.variants:
        name, _, src = spec.partition("=")
        path = Path(src).resolve()
        if not name or not (path / "dibble" / "__init__.py").is_file():
            parser.error(f"{spec!r}: give NAME=SRC, SRC a folder holding the dibble package")
        variants.append((name, path))
    cell = next(c for c in sessions.CELLS if c.store == args.store)
    harness.ensure_tools()
    venv = harness.ensure_peers(sys.executable)
    raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="dibble-sessions-ab-"))
    env = Env(venv=venv, workdir=workdir, dibble_flags={"--keep-alive-timeout"})
    redis = sessions.Redis()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    try:
        for round_no in range(args.rounds):
            turn = round_no % len(variants)
            for name, src in variants[turn:] + variants[:turn]:
                result = measure(cell, env, src, redis, workdir, args.duration)
                if "error" in result:
                    print(f"round {round_no + 1} {name:<12} FAILED: {result['error']}", flush=True)
                    continue
                runs[name].append(result)
                print(
                    f"round {round_no + 1} {name:<12} {result['rps']:>9,.0f} req/s  "
                    f"{result['cpu_us']:5.1f} µs CPU/request  "
                    f"redis-server {result['redis_share']:4.0%}",
                    flush=True,
                )
    finally:
        redis.stop()
    print(
        f"\n`python3 bench/sessions_ab.py --store {args.store} --rounds {args.rounds}`, "
        f"{cell.label}; medians. {harness.machine_line()}; redis-server {redis.placement}.\n"
    )
    print("| variant | requests/s | spread | server CPU µs/request | redis-server |")
    print("|---|---|---|---|---|")
    first: float | None = None
    for name, _ in variants:
        done = runs[name]
        if not done:
            print(f"| {name} | failed | | | |")
            continue
        rates = [r["rps"] for r in done]
        rate = statistics.median(rates)
        first = first or rate
        print(
            f"| {name} | {rate:,.0f} ({rate / first:.0%}) | {min(rates):,.0f}-{max(rates):,.0f} "
            f"| {statistics.median(r['cpu_us'] for r in done):.1f} "
            f"| {statistics.median(r['redis_share'] for r in done):.0%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
