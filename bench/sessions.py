#!/usr/bin/env python3
"""Sessions, side by side: a request that reads and writes a session, per store.

    python3 bench/sessions.py              # 3 rounds of 5-second cells, ~3 minutes
    python3 bench/sessions.py --quick      # 1 round of 2-second cells

Each cell is a fresh server process pinned to core 0 (``taskset``), a
warm-up, then wrk (on core 1) with 64 keep-alive connections.  The cells:

* dibble ``GET /plaintext`` (the baseline the targets are relative to);
* dibble ``GET /session`` with the session in memory, in SQLite (a file,
  WAL) and in Redis (a ``redis-server`` started here: on a core of its own
  when there are three or more, as on a machine of its own; on two cores
  it is left to the scheduler, since pinning it beside the server or the
  load generator starves it);
* uvicorn + Starlette ``GET /plaintext`` and ``GET /session`` with
  Starlette's ``SessionMiddleware`` (a signed cookie: the whole session in
  the cookie, verified and signed again on every request).

``/session`` reads a counter from the session and writes it back plus one.
Before the measurement 64 sessions are made, and wrk's requests take their
cookies in turn (``bench/results/session_cookies.lua`` is written per run),
so the load is 64 users, not one.  Every cell is checked before and after:
the counter of a dibble session must have grown by the requests made.

Targets (from the sessions issue): SQLite >= 30% and Redis >= 40% of
dibble's plaintext requests/s.  Uses bench/run.py's tools and peers
(bench/.peers), and installs ``redis`` (the client) there if it is missing.
The result is printed and written to bench/results/sessions.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness
import servers
import workloads
from servers import APPS, BENCH, Env, Server, free_port
from workloads import raise_file_limit

RESULTS = BENCH / "results" / "sessions.md"
CONNECTIONS = 64
SESSIONS = 64

LUA = """\
-- Each request carries the next of the cookies given as arguments.
local cookies = {}
local i = 0
init = function(args)
  for _, cookie in ipairs(args) do table.insert(cookies, cookie) end
end
request = function()
  i = i + 1
  return wrk.format(nil, nil, {["Cookie"] = cookies[(i % #cookies) + 1]})
end
"""


@dataclass(frozen=True)
class Cell:
    name: str
    label: str
    server: Server
    path: str
    store: str | None = None  # DIBBLE_BENCH_STORE: "memory", "sqlite" or "redis"
    cookie: str = ""  # the session cookie's name


def _dibble(env: Env, port: int, scratch: Path) -> list[str]:
    return [
        env.bin("dibble"),
        "serve",
        str(APPS / "dibble_sessions.py"),
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
        "--no-access-log",
        "--keep-alive-timeout",
        str(env.keep_alive),
    ]


DIBBLE = Server("dibble-sessions", "dibble", "bench/apps/dibble_sessions.py", _dibble, "dibble")
STARLETTE = Server(
    "starlette-sessions",
    "uvicorn + Starlette",
    "bench/apps/starlette_sessions.py",
    servers._uvicorn("starlette_sessions:app"),
)

CELLS = [
    Cell("dibble-plaintext", "dibble, plaintext (no session)", DIBBLE, "/plaintext"),
    Cell(
        "dibble-memory",
        "dibble, session in memory",
        DIBBLE,
        "/session",
        "memory",
        "dibble_session",
    ),
    Cell(
        "dibble-sqlite",
        "dibble, session in SQLite",
        DIBBLE,
        "/session",
        "sqlite",
        "dibble_session",
    ),
    Cell(
        "dibble-redis", "dibble, session in Redis", DIBBLE, "/session", "redis", "dibble_session"
    ),
    Cell("starlette-plaintext", "uvicorn + Starlette, plaintext", STARLETTE, "/plaintext"),
    Cell(
        "starlette-cookie",
        "uvicorn + Starlette, signed-cookie session",
        STARLETTE,
        "/session",
        cookie="session",
    ),
]


def say(message: str) -> None:
    print(message, flush=True)


def ensure_redis_client(venv: Path) -> None:
    python = str(venv / "bin" / "python")
    if subprocess.run([python, "-c", "import redis"], capture_output=True).returncode == 0:
        return
    say("== installing redis (the Python client) into bench/.peers")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "redis>=5"], check=True)


class Redis:
    """A redis-server for the run, without persistence (on core 2 if there is one)."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        pin = ["taskset", "-c", "2"] if (os.cpu_count() or 1) >= 3 else []
        self.placement = "core 2" if pin else "unpinned (2 cores)"
        self.process = subprocess.Popen(
            [
                *pin,
                executable,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._command(b"PING").startswith(b"+PONG"):
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)

    def _command(self, name: bytes) -> bytes:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"*1\r\n$%d\r\n%s\r\n" % (len(name), name))
                return sock.recv(64)
        except OSError:
            return b""

    def flush(self) -> None:
        self._command(b"FLUSHALL")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start(
    cell: Cell, env: Env, store: str | None, extra_env: dict[str, str] | None = None
) -> servers.Running:
    extra = {"DIBBLE_BENCH_STORE": store} if store else {}
    running = servers.spawn(cell.server, env, extra_env={**extra, **(extra_env or {})})
    deadline = time.monotonic() + 30
    while True:
        if running.process.poll() is not None:
            raise RuntimeError(f"{cell.name} exited while starting:\n{running.log_tail()}")
        try:
            get(running.port, "/plaintext")
            return running
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                servers.stop(running)
                raise RuntimeError(f"{cell.name} did not start:\n{running.log_tail()}") from None
            time.sleep(0.05)


def get(port: int, path: str, cookie: str | None = None) -> tuple[int, str, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, body, response.getheader("Set-Cookie")
    finally:
        conn.close()


def make_sessions(cell: Cell, port: int) -> list[str]:
    cookies = []
    for _ in range(SESSIONS):
        status, body, set_cookie = get(port, cell.path)
        if status != 200 or not body.startswith("count ") or not set_cookie:
            raise RuntimeError(f"{cell.path} answered {status} {body[:60]!r}, cookie {set_cookie}")
        pair = set_cookie.split(";", 1)[0]
        if not pair.startswith(cell.cookie + "="):
            raise RuntimeError(f"unexpected cookie {pair[:40]!r}")
        cookies.append(pair)
    return cookies


def counter(port: int, path: str, cookie: str) -> int:
    status, body, _ = get(port, path, cookie)
    if status != 200 or not body.startswith("count "):
        raise RuntimeError(f"{path} answered {status} {body[:80]!r}")
    return int(body.split()[1])


def wrk(port: int, path: str, seconds: float, script: Path, cookies: list[str]) -> dict[str, Any]:
    """wrk with 64 connections, each request carrying the next of ``cookies`` (``script``)."""
    options = ["-s", str(script)] if cookies else []
    return workloads.wrk(port, path, seconds, CONNECTIONS, options, cookies)


def measure(
    cell: Cell, env: Env, args: argparse.Namespace, redis: Redis, scratch: Path
) -> dict[str, Any]:
    store = None
    if cell.store == "memory":
        store = "memory"
    elif cell.store == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="sqlite-", dir=scratch))
        store = f"sqlite:///{folder / 'sessions.sqlite3'}"
    elif cell.store == "redis":
        redis.flush()
        store = f"redis://127.0.0.1:{redis.port}/0"
    running = start(cell, env, store)
    try:
        cookies = make_sessions(cell, running.port) if cell.cookie else []
        script = scratch / "session_cookies.lua"
        script.write_text(LUA)
        wrk(running.port, cell.path, args.warmup, script, cookies)
        before = counter(running.port, cell.path, cookies[0]) if cell.store else 0
        result = wrk(running.port, cell.path, args.duration, script, cookies)
        if cell.store and "error" not in result:
            # Every request of the measurement was stored: the counter of the
            # first session grew by about requests / SESSIONS.
            after = counter(running.port, cell.path, cookies[0])
            expected = result["requests"] / SESSIONS
            if after - before < 0.8 * expected:
                result["error"] = f"the counter grew by {after - before}, not ~{expected:.0f}"
        return result
    finally:
        servers.stop(running)


def markdown(
    results: dict[str, list[float]], errors: dict[str, list[str]], meta: dict[str, Any]
) -> str:
    def median(name: str) -> float | None:
        runs = results.get(name)
        return statistics.median(runs) if runs else None

    base = median("dibble-plaintext")
    starlette_base = median("starlette-plaintext")
    starlette_cookie = median("starlette-cookie")
    lines = [
        "## Sessions",
        "",
        "`GET /session` reads a counter from the session and writes it back plus one; "
        f"{SESSIONS} sessions, each request carrying the next one's cookie; wrk, "
        f"{CONNECTIONS} keep-alive connections, the server pinned to one core. dibble keeps "
        "the session on the server (memory, SQLite with WAL, Redis); Starlette's "
        "`SessionMiddleware` keeps it in a signed cookie. "
        f"Command: `{meta['command']}`; {meta['rounds']} round(s) of {meta['duration']:g} s "
        f"per cell; medians, spread min-max. {meta['machine']}; redis-server "
        f"{meta['redis']}.",
        "",
        "| server | requests/s | spread | x dibble plaintext | x Starlette signed cookie |",
        "|---|---|---|---|---|",
    ]
    for cell in CELLS:
        runs = results.get(cell.name, [])
        if not runs:
            reason = "; ".join(errors.get(cell.name, [])) or "not measured"
            lines.append(f"| {cell.label} | failed: {reason[:120]} | | | |")
            continue
        value = statistics.median(runs)
        spread = f"{min(runs):,.0f}-{max(runs):,.0f}" if len(runs) > 1 else "1 run"
        ratio = f"{value / base:.0%}" if base else ""
        versus = f"{value / starlette_cookie:.2f}x" if starlette_cookie else ""
        lines.append(f"| {cell.label} | {value:,.0f} | {spread} | {ratio} | {versus} |")
    lines += ["", "| target | measured | status |", "|---|---|---|"]
    for name, label, goal in (
        ("dibble-sqlite", "SQLite session >= 30% of plaintext", 0.30),
        ("dibble-redis", "Redis session >= 40% of plaintext", 0.40),
    ):
        value = median(name)
        if value is None or not base:
            lines.append(f"| {label} | not measured | failed |")
        else:
            ratio = value / base
            lines.append(f"| {label} | {ratio:.0%} | {'met' if ratio >= goal else 'missed'} |")
    if starlette_base and starlette_cookie:
        lines.append("")
        lines.append(
            f"Starlette's own ratio, signed-cookie session to plaintext: "
            f"{starlette_cookie / starlette_base:.0%}."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2-second cells")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--cells", help="only these cells (comma-separated names)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    chosen = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    harness.ensure_tools()
    venv = harness.ensure_peers(sys.executable)
    ensure_redis_client(venv)
    raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="dibble-sessions-bench-"))
    env = Env(venv=venv, workdir=workdir, dibble_flags={"--keep-alive-timeout"})
    redis = Redis()
    results: dict[str, list[float]] = {}
    errors: dict[str, list[str]] = {}
    try:
        for round_no in range(1, args.rounds + 1):
            order = chosen[round_no - 1 :] + chosen[: round_no - 1]  # rotate each round
            for cell in order:
                try:
                    result = measure(cell, env, args, redis, workdir)
                except Exception as exc:  # one broken cell must not end the run
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                if "error" in result:
                    errors.setdefault(cell.name, []).append(result["error"])
                    say(f"round {round_no} {cell.name:<20} FAILED: {result['error']}")
                else:
                    results.setdefault(cell.name, []).append(result["rps"])
                    say(f"round {round_no} {cell.name:<20} {result['rps']:>10,.0f} req/s")
    finally:
        redis_placement = redis.placement
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "command": "python3 bench/sessions.py" + (" --quick" if args.quick else ""),
        "rounds": args.rounds,
        "duration": args.duration,
        "machine": harness.machine_line(),
        "redis": redis_placement,
    }
    text = markdown(results, errors, meta)
    say("")
    say(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    say(f"== wrote {RESULTS.relative_to(servers.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
