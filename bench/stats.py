#!/usr/bin/env python3
"""Statistics and the request log, side by side: dibble plaintext with them off and on.

    python3 bench/stats.py              # 5 alternating rounds of 5-second cells, ~5 minutes
    python3 bench/stats.py --quick      # 1 round of 2-second cells, a smaller callgrind run
    python3 bench/stats.py --no-callgrind
    python3 bench/stats.py --callgrind-only   # instruction counts only: no wrk, any machine
    DIBBLE_NO_EXTENSIONS=1 python3 bench/stats.py   # the Python hot path, not the compiled one

Three cells, each a fresh ``dibble serve bench/apps/dibble_sync.py`` from the
repository's .venv with a configuration file of its own (``-c``), pinned
to core 0 (``taskset``), the access log off:

* ``off``: ``[statistics] enabled = false`` (the default);
* ``stats``: statistics on, kept in ``statistics.sqlite3`` in the data folder;
* ``stats+log``: statistics and the request log (the ``dibble_request_log``
  view in ``dibble.sqlite3``).

Each cell: a warm-up, then ``wrk -t1 -c64`` on ``GET /plaintext`` (pinned to
core 1).  The cells alternate, their order rotating every round, so a slow
spell of a shared machine does not fall on one cell.  Besides requests/s,
the CPU time the server process spent per response is read from /proc over
the measured run: it moves far less than the rate when other work shares
the machine.  After each run the server is stopped (SIGTERM: the last
flush) and the stored counts are checked against what wrk received, and
the request log's rows likewise.

``--callgrind`` (on unless ``--no-callgrind``) also counts the instructions
dibble spends per plaintext request in process (no sockets, as
bench/hotpath.py does) with each setting, under valgrind: (total after
``N + 1000`` requests minus total after 1000) / N.  Each run ends by
writing the waiting request-log rows to SQLite in the measured process (the
writer thread's work while serving, which shares the server's core), so
the count includes it.  ``--callgrind-only`` skips wrk, prints the
instruction counts and leaves bench/results/stats.md as it is: counts do
not depend on other work sharing the machine, timings do.

Target (issue 8): plaintext with statistics and the request log on within
10% of the same run with them off.  Writes bench/results/stats.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import run as harness  # noqa: E402 - bench/run.py: the machine
import servers  # noqa: E402 - bench/servers.py: ports, pinning, process trees
import workloads  # noqa: E402
from workloads import raise_file_limit  # noqa: E402

RESULTS = BENCH / "results" / "stats.md"
VENV = REPO / ".venv"
CONNECTIONS = 64
TARGET = 0.90

CONFIG = """\
[paths]
data_dir = "{data}"

[housekeeping]
enabled = false

[statistics]
enabled = {enabled}
request_log = {request_log}
"""


@dataclass(frozen=True)
class Cell:
    name: str
    label: str
    enabled: bool
    request_log: bool


CELLS = [
    Cell("off", "statistics off", False, False),
    Cell("stats", "statistics on (SQLite)", True, False),
    Cell("stats+log", "statistics and request log on (SQLite)", True, True),
]


def say(message: str) -> None:
    print(message, flush=True)


def server_for(cell: Cell) -> servers.Server:
    def command(env: servers.Env, port: int, scratch: Path) -> list[str]:
        data = scratch / "data"
        config = scratch / "stats.toml"
        config.write_text(
            CONFIG.format(
                data=data,
                enabled=str(cell.enabled).lower(),
                request_log=str(cell.request_log).lower(),
            )
        )
        return [
            env.bin("dibble"),
            "serve",
            str(servers.APPS / "dibble_sync.py"),
            "-c",
            str(config),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "--no-access-log",
            "--keep-alive-timeout",
            str(env.keep_alive),
        ]

    return servers.Server(f"dibble-{cell.name}", cell.label, "bench/apps/dibble_sync.py", command)


def wrk(port: int, seconds: float) -> dict[str, Any]:
    return workloads.wrk(port, "/plaintext", seconds, CONNECTIONS)


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def stored_requests(data: Path) -> int:
    conn = sqlite3.connect(data / "statistics.sqlite3")
    try:
        rows = conn.execute(
            "SELECT value FROM dibble_statistics "
            "WHERE scope = 'forever' AND key = '' AND field = 'requests'"
        ).fetchall()
    finally:
        conn.close()
    return int(rows[0][0]) if rows else 0


def logged_rows(data: Path) -> int:
    conn = sqlite3.connect(data / "dibble.sqlite3")
    try:
        return int(conn.execute("SELECT count(*) FROM dibble_request_log").fetchone()[0])
    finally:
        conn.close()


def measure(cell: Cell, env: servers.Env, args: argparse.Namespace) -> dict[str, Any]:
    running = servers.start(server_for(cell), env)
    try:
        warm = wrk(running.port, args.warmup)
        before = servers.tree_cpu_seconds(running.pid)
        result = wrk(running.port, args.duration)
        used = servers.tree_cpu_seconds(running.pid) - before
        if get(running.port, "/plaintext") != 200:
            result["error"] = "GET /plaintext failed after the run"
    finally:
        servers.stop(running)
    if "error" in result or "error" in warm:
        result.setdefault("error", warm.get("error"))
        return result
    result["cpu_us"] = used / max(1, result["requests"]) * 1e6
    # Every response the server sent: the readiness check, the warm-up, the run, the check.
    sent = result["requests"] + warm["requests"] + 2
    data = running.scratch / "data"
    if cell.enabled:
        stored = stored_requests(data)
        result["stored"] = stored
        # wrk does not count the responses to requests still open when it stops.
        if not sent <= stored <= sent + 2 * CONNECTIONS:
            result["error"] = f"{stored} requests stored, {sent} answered"
    if cell.request_log:
        rows = logged_rows(data)
        result["logged"] = rows
        if not sent <= rows <= sent + 2 * CONNECTIONS:
            result["error"] = f"{rows} rows in the request log, {sent} requests answered"
    return result


def hot_path() -> str:
    """Which hot path the servers measured here count with (see docs/statistics.md)."""
    found = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "from dibble.stats._collector import SPEEDUPS; print(SPEEDUPS)",
        ],
        capture_output=True,
        text=True,
    )
    if found.stdout.strip() == "True":
        return "compiled (dibble.stats._speedups)"
    if os.environ.get("DIBBLE_NO_EXTENSIONS"):
        return "Python (DIBBLE_NO_EXTENSIONS is set)"
    return "Python (the compiled part was not built)"


# --- in process, under callgrind ---------------------------------------------------------

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"


def in_process(cell_name: str, count: int) -> None:
    """``count`` plaintext requests through the protocol with ``cell_name``'s settings."""
    from hotpath import Bench, NullTransport

    import dibble
    from dibble.config import parse_config
    from dibble.server import HTTPProtocol, Listener

    cell = next(c for c in CELLS if c.name == cell_name)
    data = tempfile.mkdtemp(prefix="dibble-stats-callgrind-")
    loop = asyncio.new_event_loop()
    server = dibble.HTTPServer(("127.0.0.1", 0), dibble.Context(), access_log=False)
    server.site.settings = parse_config(
        {
            "paths": {"data_dir": data},
            "housekeeping": {"enabled": False},
            # A buffer that never drops: every row is written, below, in the count.
            "statistics": {
                "enabled": cell.enabled,
                "request_log": cell.request_log,
                "request_log_buffer": 10 * count + 10_000,
                "request_log_interval": 3600.0,
            },
        }
    )
    server.register(Bench())
    listener = Listener(server.application(lambda: None), server.config, loop)
    protocol = HTTPProtocol(listener)
    protocol.connection_made(NullTransport())
    for _ in range(count):
        protocol.data_received(REQUEST)
    stats = server.statistics
    if stats is not None:
        stats.write_log()  # what the thread does while serving, counted here
        log = stats.request_log
        if cell.request_log and (log is None or log.written != count):
            written = log.written if log is not None else 0
            raise SystemExit(f"{written} request-log rows written, {count} expected")
    server.closed()
    loop.close()


def callgrind(cell: Cell, requests: int) -> dict[str, Any]:
    totals = []
    for count in (1000, 1000 + requests):
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            str(VENV / "bin" / "python"),
            str(Path(__file__).resolve()),
            "--in-process",
            cell.name,
            str(count),
        ]
        # A fixed hash seed: dict layouts, and so the counts, the same from run to run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=env)
        match = re.search(r"Collected : ([\d,]+)", completed.stderr)
        if completed.returncode != 0 or match is None:
            return {"error": f"valgrind failed: {completed.stderr.strip()[-300:]}"}
        totals.append(int(match[1].replace(",", "")))
    return {"instructions": (totals[1] - totals[0]) / requests}


# --- the report ----------------------------------------------------------------------------


def markdown(
    results: dict[str, list[dict[str, Any]]],
    errors: dict[str, list[str]],
    grind: dict[str, dict[str, Any]],
    meta: dict[str, Any],
) -> str:
    def median(name: str, key: str) -> float | None:
        values = [r[key] for r in results.get(name, []) if key in r]
        return statistics.median(values) if values else None

    base = median("off", "rps")
    base_cpu = median("off", "cpu_us")
    lines = [
        "## Statistics and the request log",
        "",
        f"`GET /plaintext` (13-byte body), wrk with {CONNECTIONS} keep-alive connections, the "
        "server pinned to one core and the client to the other; dibble with statistics off, "
        "on (SQLite in the data folder), and on with the request log (SQLite). "
        f"Command: `{meta['command']}`; {meta['rounds']} round(s) of {meta['duration']:g} s per "
        "cell, the cells alternating; medians, spread min-max. CPU is the server process's "
        f"user + system time per response over the measured run. {meta['machine']}. "
        f"The statistics' hot path: {meta['hot_path']}.",
        "",
        "| dibble | requests/s | spread | x off | CPU µs/request | x off |",
        "|---|---|---|---|---|---|",
    ]
    for cell in CELLS:
        runs = [r["rps"] for r in results.get(cell.name, [])]
        if not runs:
            reason = "; ".join(errors.get(cell.name, [])) or "not measured"
            lines.append(f"| {cell.label} | failed: {reason[:120]} | | | | |")
            continue
        value = statistics.median(runs)
        spread = f"{min(runs):,.0f}-{max(runs):,.0f}" if len(runs) > 1 else "1 run"
        ratio = f"{value / base:.0%}" if base else ""
        cpu = median(cell.name, "cpu_us")
        cpu_text = f"{cpu:.1f}" if cpu is not None else ""
        cpu_ratio = f"{cpu / base_cpu:.2f}x" if cpu is not None and base_cpu else ""
        lines.append(
            f"| {cell.label} | {value:,.0f} | {spread} | {ratio} | {cpu_text} | {cpu_ratio} |"
        )
    failed = {name: msgs for name, msgs in errors.items() if msgs}
    if failed:
        lines += ["", "Failed runs: " + "; ".join(f"{n}: {m[0]}" for n, m in failed.items())]
    lines += ["", "| target | measured | status |", "|---|---|---|"]
    for name, label in (
        ("stats+log", "statistics + request log >= 90% of off"),
        ("stats", "statistics alone >= 90% of off"),
    ):
        value = median(name, "rps")
        if value is None or not base:
            lines.append(f"| {label} | not measured | failed |")
        else:
            ratio = value / base
            lines.append(f"| {label} | {ratio:.0%} | {'met' if ratio >= TARGET else 'missed'} |")
    if grind:
        lines += [
            "",
            "Instructions per plaintext request in process (callgrind, no sockets; "
            f"{meta['callgrind_requests']} requests after 1,000):",
            "",
            "| dibble | instructions/request | more than off |",
            "|---|---|---|",
        ]
        off = grind.get("off", {}).get("instructions")
        for cell in CELLS:
            found = grind.get(cell.name, {})
            if "instructions" not in found:
                lines.append(f"| {cell.label} | failed: {found.get('error', '')[:100]} | |")
                continue
            value = found["instructions"]
            more = f"+{value - off:,.0f} ({value / off - 1:.0%})" if off else ""
            lines.append(f"| {cell.label} | {value:,.0f} | {more} |")
    return "\n".join(lines) + "\n"


def callgrind_only(chosen: list[Cell], requests: int) -> int:
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        raise SystemExit("valgrind is not installed")
    off = None
    say(f"instructions per plaintext request in process ({requests:,} requests after 1,000):")
    for cell in chosen:
        found = callgrind(cell, requests)
        if "instructions" not in found:
            say(f"callgrind {cell.name:<10} {found['error']}")
            continue
        value = found["instructions"]
        if cell.name == "off":
            off = value
        more = f"  +{value - off:,.0f} over off" if off is not None and cell.name != "off" else ""
        say(f"callgrind {cell.name:<10} {value:>10,.0f}{more}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2-second cells")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--cells", help="only these cells (comma-separated: off,stats,stats+log)")
    parser.add_argument("--no-callgrind", dest="callgrind", action="store_false")
    parser.add_argument("--callgrind-requests", type=int, default=10_000)
    parser.add_argument(
        "--callgrind-only",
        action="store_true",
        help="only the instruction counts (no wrk); bench/results/stats.md is not written",
    )
    parser.add_argument("--in-process", nargs=2, metavar=("CELL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        in_process(args.in_process[0], int(args.in_process[1]))
        return 0
    if args.quick:
        args.rounds, args.duration = 1, 2.0
        args.callgrind_requests = min(args.callgrind_requests, 2000)
    chosen = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    if not (VENV / "bin" / "dibble").exists():
        raise SystemExit("no .venv/bin/dibble: run scripts/check (or pip install -e .) first")
    if args.callgrind_only:
        return callgrind_only(chosen, args.callgrind_requests)
    for tool in ("wrk", "taskset"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            raise SystemExit(f"{tool} is not installed")
    raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="dibble-stats-bench-"))
    env = servers.Env(venv=VENV, workdir=workdir, dibble_flags={"--keep-alive-timeout"})
    results: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, list[str]] = {}
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        shift = (round_no - 1) % len(chosen)
        for cell in chosen[shift:] + chosen[:shift]:
            try:
                result = measure(cell, env, args)
            except Exception as exc:  # one broken cell must not end the run
                result = {"error": f"{type(exc).__name__}: {exc}"}
            if "error" in result:
                errors.setdefault(cell.name, []).append(result["error"])
                say(f"round {round_no} {cell.name:<10} FAILED: {result['error']}")
                continue
            results.setdefault(cell.name, []).append(result)
            extra = ""
            if "stored" in result:
                extra += f", {result['stored']:,} stored"
            if "logged" in result:
                extra += f", {result['logged']:,} logged"
            say(
                f"round {round_no} {cell.name:<10} {result['rps']:>10,.0f} req/s  "
                f"{result['cpu_us']:6.1f} µs CPU/request{extra}"
            )
    grind: dict[str, dict[str, Any]] = {}
    if args.callgrind:
        if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
            say("valgrind is not installed: no instruction counts")
        else:
            for cell in chosen:
                grind[cell.name] = callgrind(cell, args.callgrind_requests)
                found = grind[cell.name]
                text = (
                    f"{found['instructions']:,.0f}" if "instructions" in found else found["error"]
                )
                say(f"callgrind {cell.name:<10} {text} instructions/request")
    meta = {
        "command": " ".join(["python3 bench/stats.py", *sys.argv[1:]]),
        "hot_path": hot_path(),
        "rounds": args.rounds,
        "duration": args.duration,
        "machine": harness.machine_line(),
        "callgrind_requests": f"{args.callgrind_requests:,}",
    }
    text = markdown(results, errors, grind, meta)
    say("")
    say(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    say(f"== wrote {RESULTS.relative_to(REPO)} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
