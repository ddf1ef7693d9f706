#!/usr/bin/env python3
"""dibble's side-by-side benchmark: one command, every server, every workload.

    python3 bench/run.py                 # the full run: 3 rounds, ~25 minutes
    python3 bench/run.py --quick         # 1 short round, a smoke test
    python3 bench/run.py --servers nginx,dibble-sync --workloads plaintext,json

Standard library only, so any python3 >= 3.11 runs it. It installs what is
missing (nginx, wrk, valgrind from Debian; the peers into bench/.peers/),
checks every server's answers, then runs the rounds: for each round, for each
workload, for each server, a fresh server process, a warm-up, a measurement.
Raw results go to bench/results/latest.json, the report to BENCHMARKS.md and
docs/benchmarks.svg. See bench/README.md for what each workload means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
import servers
import workloads
from servers import BENCH, REPO, Env, Server, StartError
from workloads import Workload

PEERS = BENCH / ".peers"
RESULTS = BENCH / "results"
REQUIREMENTS = BENCH / "requirements-peers.txt"
TOOLS = {"nginx": "nginx", "wrk": "wrk", "valgrind": "valgrind", "taskset": "util-linux"}
INSTRUCTION_SERVERS = ("dibble-sync", "dibble-async", "uvicorn")


def say(message: str) -> None:
    print(message, flush=True)


# --- setup -----------------------------------------------------------------------


def ensure_tools() -> None:
    """apt-get install whatever of nginx, wrk, valgrind, taskset and gcc is missing."""
    missing = [pkg for tool, pkg in {**TOOLS, "gcc": "gcc"}.items() if not shutil.which(tool)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"missing tools; install these Debian packages first: {' '.join(missing)}")
    say(f"== installing {' '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def ensure_peers(python: str) -> Path:
    """bench/.peers: a venv with the pinned peers and dibble (editable) from this repo."""
    stamp_text = REQUIREMENTS.read_bytes() + (REPO / "pyproject.toml").read_bytes()
    stamp = hashlib.sha256(stamp_text).hexdigest()
    stamp_file = PEERS / ".installed"
    installed = (PEERS / "bin" / "python").exists() and stamp_file.exists()
    if installed and stamp_file.read_text().strip() == stamp:
        return PEERS
    say(f"== installing the peers into {PEERS.relative_to(REPO)} (pip)")
    if not (PEERS / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(PEERS)], check=True)
    pip = [str(PEERS / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for what, argv in (
        ("pip", [*pip, "--upgrade", "pip"]),
        ("the peers", [*pip, "-r", str(REQUIREMENTS)]),
        ("dibble", [*pip, "-e", str(REPO)]),
    ):
        completed = subprocess.run(argv, capture_output=True, text=True)
        if completed.returncode == 0:
            continue
        say(f"!! installing {what} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
        if what != "dibble":
            sys.exit(1)
        say("!! dibble's cells will be skipped")
        return PEERS  # no stamp: try again next run
    stamp_file.write_text(stamp + "\n")
    return PEERS


def build_openloop() -> Path:
    source, binary = BENCH / "openloop.c", PEERS / "bin" / "openloop"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        say("== compiling bench/openloop.c")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(source)], check=True)
    return binary


def dibble_flags(venv: Path) -> set[str]:
    """The options `dibble serve` takes, so optional ones are passed only when known."""
    try:
        completed = subprocess.run(
            [str(venv / "bin" / "dibble"), "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return set()
    return set(re.findall(r"--[a-z][a-z-]+", completed.stdout))


def first_line(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not installed"
    text = (completed.stdout + completed.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions(venv: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    code = (
        "import importlib.metadata as m, json, sys\n"
        "names = sys.argv[1:]\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    packages = [
        "dibble",
        "uvicorn",
        "starlette",
        "granian",
        "aiohttp",
        "CherryPy",
        "cheroot",
        "Flask",
        "gunicorn",
        "httptools",
        "uvloop",
    ]
    completed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *packages], capture_output=True, text=True
    )
    if completed.returncode == 0:
        found.update(json.loads(completed.stdout))
    found["python (servers)"] = first_line([str(venv / "bin" / "python"), "--version"])
    found["nginx"] = first_line(["nginx", "-v"]).removeprefix("nginx version: ")
    found["wrk"] = first_line(["wrk", "-v"]).split(" [")[0]
    found["valgrind"] = first_line(["valgrind", "--version"])
    found["gcc (openloop)"] = first_line(["gcc", "--version"])
    return found


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python (driver)": platform.python_version(),
    }


def machine_line() -> str:
    """The machine in one line, for the tables of the side scripts (sessions, stats)."""
    info = machine()
    return f"{info['cpu']}, {info['cores']} cores, {info['kernel']}"


# --- the run ---------------------------------------------------------------------


class Run:
    """The state of one benchmark run: settings, results so far, progress."""

    def __init__(self, args: argparse.Namespace, env: Env, openloop: Path) -> None:
        self.args = args
        self.env = env
        self.openloop = openloop
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.cells: dict[str, dict[str, dict[str, Any]]] = {}
        self.latency_rate: float | None = args.rate

    def cell(self, workload: str, server: str) -> dict[str, Any]:
        by_server = self.cells.setdefault(workload, {})
        return by_server.setdefault(server, {"runs": [], "errors": []})

    def progress(self, round_no: int | str, workload: str, server: str, outcome: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0
        say(
            f"[{self.done:3}/{self.total} {_clock(elapsed)} left ~{_clock(left)}] "
            f"round {round_no:<4} {workload:<12} {server:<18} {outcome}"
        )

    # -- one cell ------------------------------------------------------------------

    def measure(self, round_no: int, workload: Workload, server: Server) -> None:
        cell = self.cell(workload.name, server.name)
        if workload.name == "pipelined" and not server.pipelining:
            cell["skipped"] = "not applicable: the sync worker closes after each response"
            self.progress(round_no, workload.name, server.name, "n/a")
            return
        try:
            running = servers.start(server, self.env)
        except StartError as exc:
            cell["errors"].append(one_line(str(exc)))
            self.progress(round_no, workload.name, server.name, f"FAILED: {one_line(str(exc))}")
            return
        try:
            result = self._measure_running(workload, running)
        except Exception as exc:  # one broken cell must not end a 20-minute run
            result = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            servers.stop(running)
        if "not_applicable" in result:
            cell["skipped"] = f"not applicable: {result['not_applicable']}"
            outcome = f"n/a: {result['not_applicable']}"
        elif "error" in result:
            cell["errors"].append(result["error"])
            outcome = f"FAILED: {result['error']}"
        else:
            result["round"] = round_no
            cell["runs"].append(result)
            outcome = _describe(workload, result)
        self.progress(round_no, workload.name, server.name, outcome)

    def _measure_running(self, workload: Workload, running: servers.Running) -> dict[str, Any]:
        port, args = running.port, self.args
        path = workload.path if workload.kind == "wrk" else "/plaintext"
        if problem := workloads.check_endpoint(port, path):
            return {"error": f"before the run: {problem}"}
        if workload.kind != "latency":  # the open-loop client warms up by itself
            warmup = workload if workload.kind == "wrk" else workloads.BY_NAME["plaintext"]
            workloads.run_wrk(warmup, port, args.warmup)
        if workload.kind == "wrk":
            result = workloads.run_wrk(workload, port, args.duration)
            result.setdefault("value", result.get("rps"))
        elif workload.kind == "idle":
            time.sleep(0.5)
            result = workloads.idle_connections(running, count=args.idle_connections)
        elif workload.kind == "latency":
            assert self.latency_rate
            result = workloads.open_loop(self.openloop, port, self.latency_rate, args.duration)
        else:
            raise ValueError(workload.kind)
        if "error" not in result and (problem := workloads.check_endpoint(port, path)):
            result["error"] = f"after the run: {problem}"
        return result

    # -- the fixed rate for the latency test ------------------------------------------

    def ensure_latency_rate(self, available: list[Server]) -> None:
        if self.latency_rate:
            return
        runs = self.cells.get("plaintext", {}).get("nginx", {}).get("runs", [])
        if not runs and any(s.name == "nginx" for s in available):
            say("== measuring nginx's plaintext peak to set the latency test's rate")
            running = servers.start(servers.BY_NAME["nginx"], self.env)
            try:
                workloads.run_wrk(workloads.BY_NAME["plaintext"], running.port, self.args.warmup)
                calibration = workloads.run_wrk(
                    workloads.BY_NAME["plaintext"], running.port, self.args.duration
                )
            finally:
                servers.stop(running)
            if "rps" in calibration:
                runs = [{"value": calibration["rps"]}]
        if runs:
            peak = statistics.median(run["value"] for run in runs)
            self.latency_rate = round(peak / 2, -2)
            say(
                f"== latency test rate: {self.latency_rate:.0f} req/s (half of nginx's {peak:.0f})"
            )
        else:
            self.latency_rate = 20000.0
            say("!! no nginx measurement: the latency test uses 20000 req/s (set --rate)")

    # -- instructions ------------------------------------------------------------------

    def instructions(self, available: list[Server]) -> None:
        for server in available:
            if server.name not in INSTRUCTION_SERVERS:
                continue
            cell = self.cell("instructions", server.name)
            result = workloads.instructions_per_request(
                server, self.env, requests=self.args.callgrind_requests
            )
            if "error" in result:
                cell["errors"].append(one_line(result["error"]))
                outcome = f"FAILED: {one_line(result['error'])}"
            else:
                cell["runs"].append(result)
                outcome = f"{result['value']:,.0f} instructions/request ({result['seconds']} s)"
            self.progress("once", "instructions", server.name, outcome)


def one_line(message: str) -> str:
    """A failure in one line: its first line and the last line of the log it quotes."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    quoted = [line for line in lines[1:] if not line.startswith("==")]  # valgrind's own
    return f"{lines[0]} {quoted[-1]}" if quoted else (lines[0] if lines else message)


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02}"


def _describe(workload: Workload, result: dict[str, Any]) -> str:
    if workload.kind == "wrk":
        text = f"{result['rps']:>10,.0f} req/s"
        if "p99_ms" in result and workload.name != "pipelined":
            text += f"  (wrk p50 {result.get('p50_ms', 0):.2f} ms, p99 {result['p99_ms']:.2f} ms)"
        return text
    if workload.kind == "idle":
        return (
            f"{result['value']:,.0f} bytes/connection "
            f"({result['alive']} open, {result['baseline_kib']} -> {result['loaded_kib']} KiB)"
        )
    text = (
        f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
        f"at {result['achieved_rps']:,.0f}/{result['target_rps']:,.0f} req/s"
    )
    if "warning" in result:
        text += f"  [{result['warning']}]"
    return text


def check_servers(selected: list[Server], env: Env) -> tuple[list[Server], dict[str, str]]:
    """Start each server once and compare its three answers with the expected ones."""
    available, problems = [], {}
    for server in selected:
        try:
            running = servers.start(server, env)
        except StartError as exc:
            problems[server.name] = str(exc)
            say(
                f"!! {server.name}: skipped, it did not start:\n   "
                + str(exc).replace("\n", "\n   ")
            )
            continue
        try:
            found = [
                problem
                for path in ("/plaintext", "/json", "/?year=2003")
                if (problem := workloads.check_endpoint(running.port, path))
            ]
        finally:
            servers.stop(running)
        if found:
            problems[server.name] = "; ".join(found)
            say(f"!! {server.name}: skipped, wrong answers: {problems[server.name]}")
        else:
            available.append(server)
            say(f"ok {server.name}: 2xx and the expected body for all three endpoints")
    return available, problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, short cells: a smoke test")
    parser.add_argument("--servers", help="comma-separated: " + ",".join(servers.BY_NAME))
    parser.add_argument("--workloads", help="comma-separated: " + ",".join(workloads.BY_NAME))
    parser.add_argument("--rounds", type=int, help="rounds, interleaved (default 3)")
    parser.add_argument("--duration", type=float, help="seconds measured per cell (default 5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per cell (default 1)")
    parser.add_argument("--rate", type=float, help="latency test rate (default: nginx peak / 2)")
    parser.add_argument("--idle-connections", type=int, help="default 10000")
    parser.add_argument("--callgrind-requests", type=int, help="default 2000")
    parser.add_argument("--python", default=sys.executable, help="python for bench/.peers")
    parser.add_argument(
        "--report",
        action="store_true",
        help="write BENCHMARKS.md and docs/benchmarks.svg even for a quick or partial run",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="write latest.json only, not BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "rounds": 1 if quick else 3,
        "duration": 2.0 if quick else 5.0,
        "warmup": 1.0,
        "idle_connections": 2000 if quick else 10_000,
        "callgrind_requests": 200 if quick else 2000,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def select(names: str | None, known: dict[str, Any], what: str) -> list[Any]:
    if not names:
        return list(known.values())
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in chosen]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python3 bench/run.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    chosen_servers: list[Server] = select(args.servers, servers.BY_NAME, "servers")
    chosen_workloads: list[Workload] = select(args.workloads, workloads.BY_NAME, "workloads")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores: one for the server, one for the load generator")

    ensure_tools()
    venv = ensure_peers(args.python)
    openloop = build_openloop()
    files = workloads.raise_file_limit()
    # The driver itself (idle-connection client, HTTP checks) stays off the server core.
    os.sched_setaffinity(0, {int(servers.CLIENT_CORE)})
    workdir = Path(tempfile.mkdtemp(prefix="dibble-bench-"))
    workdir.chmod(0o755)  # nginx's worker process (an unprivileged user) reads files below it
    env = Env(venv=venv, workdir=workdir, dibble_flags=dibble_flags(venv))
    info = {"machine": machine(), "versions": versions(venv), "command": command}
    say(f"== {info['machine']['cpu']}, {info['machine']['cores']} cores; file limit {files}")
    say("== checking every server's answers")
    available, problems = check_servers(chosen_servers, env)

    run = Run(args, env, openloop)
    per_round = [w for w in chosen_workloads if w.kind != "instructions"]
    with_instructions = any(w.kind == "instructions" for w in chosen_workloads)
    instruction_servers = [s for s in available if s.name in INSTRUCTION_SERVERS]
    run.total = args.rounds * len(per_round) * len(available)
    run.total += len(instruction_servers) if with_instructions else 0
    say(
        f"== {args.rounds} round(s) x {len(per_round)} workload(s) x {len(available)} server(s), "
        f"{args.duration:g} s per cell after {args.warmup:g} s of warm-up"
    )
    try:
        for round_no in range(1, args.rounds + 1):
            # Rotate the server order each round so no server always follows the same one.
            shift = (round_no - 1) % max(1, len(available))
            order = available[shift:] + available[:shift]
            for workload in per_round:
                if workload.kind == "latency":
                    run.ensure_latency_rate(available)
                for server in order:
                    run.measure(round_no, workload, server)
        if with_instructions:
            say("== instructions per request under callgrind (slow: valgrind runs python)")
            run.instructions(available)
    except KeyboardInterrupt:
        say("!! interrupted: writing what was measured so far")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results = {
        **info,
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "minutes": round((time.monotonic() - run.started) / 60, 1),
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": 64,
            "pipeline_depth": 16,
            "idle_connections": args.idle_connections,
            "latency_rate": run.latency_rate,
            "callgrind_requests": args.callgrind_requests,
            "keep_alive_s": env.keep_alive,
        },
        "servers": {
            s.name: {
                "label": s.label,
                "notes": s.notes,
                "kind": s.kind,
                "available": s in available,
                "problem": problems.get(s.name),
            }
            for s in chosen_servers
        },
        "workloads": [w.name for w in chosen_workloads],
        "cells": run.cells,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    say(f"== raw results: {(RESULTS / 'latest.json').relative_to(REPO)}")
    say(report.summary(results))
    # A smoke test or a partial run must not replace the published report by accident.
    complete = not (args.quick or args.servers or args.workloads) and args.rounds >= 3
    if args.report or (complete and not args.no_report):
        written = report.write(results)
        say("== wrote " + ", ".join(str(p.relative_to(REPO)) for p in written))
    elif not args.no_report:
        say("== BENCHMARKS.md left as it was (quick or partial run; --report writes it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
