"""The workloads: what is sent to a running server, and how it is measured.

Throughput cells run wrk (closed loop, 64 connections, pinned to the client
core) and parse its report; a cell fails when wrk saw a non-2xx response or
a socket error. Bodies are checked with a plain HTTP client before and after
every cell (wrk itself does not read bodies), and on every response by the
open-loop client in the latency test.

Three workloads are not throughput:

* ``idle``: memory per idle keep-alive connection. 10,000 connections each
  send one request and read the answer, then sit idle; the growth of the
  server's process-tree RSS over a warmed-up baseline is divided by the
  number of connections still open.
* ``latency``: p50/p99 at a fixed, open-loop request rate (bench/openloop.c).
* ``instructions``: instructions per plaintext request under callgrind, which
  counts instructions instead of timing them, so it repeats on a busy machine:
  (total after W + N requests - total after W requests) / N.
"""

from __future__ import annotations

import http.client
import json
import re
import resource
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import (
    BENCH,
    CLIENT_CORE,
    Env,
    Running,
    Server,
    calendar_page,
    spawn,
    stop,
    tree_rss_kib,
)

PLAINTEXT = b"Hello, World!"
JSON_VALUE = {"message": "Hello, World!"}


@dataclass(frozen=True)
class Workload:
    name: str  # the id used by --workloads and in results
    title: str
    kind: str  # "wrk", "idle", "latency" or "instructions"
    description: str
    path: str = "/plaintext"
    wrk_args: tuple[str, ...] = ()
    unit: str = "req/s"


WORKLOADS: list[Workload] = [
    Workload(
        "plaintext",
        "Plaintext, keep-alive",
        "wrk",
        "GET /plaintext over 64 keep-alive connections.",
    ),
    Workload(
        "close",
        "Plaintext, Connection: close",
        "wrk",
        "GET /plaintext with `Connection: close`: one TCP connection per request.",
        wrk_args=("-H", "Connection: close"),
    ),
    Workload(
        "pipelined",
        "Plaintext, pipelined 16 deep",
        "wrk",
        "GET /plaintext, 16 requests written at once per connection (bench/pipeline.lua).",
        wrk_args=("-s", str(BENCH / "pipeline.lua")),
    ),
    Workload("json", "Small JSON", "wrk", 'GET /json, `{"message":"Hello, World!"}`.', "/json"),
    Workload(
        "calendar",
        "Calendar page",
        "wrk",
        "GET /?year=2003: `calendar.calendar(2003)` HTML-escaped into a page, per request.",
        "/?year=2003",
    ),
    Workload(
        "idle",
        "Memory per idle keep-alive connection",
        "idle",
        "RSS growth of the server's process tree over 10,000 idle keep-alive "
        "connections, divided by the connections still open.",
        unit="bytes/conn",
    ),
    Workload(
        "latency",
        "Latency at a fixed request rate",
        "latency",
        "GET /plaintext at half of nginx's measured keep-alive peak, open loop, "
        "64 connections; p50 and p99 from the intended send time.",
        unit="ms",
    ),
    Workload(
        "instructions",
        "Instructions per request (callgrind)",
        "instructions",
        "GET /plaintext over one keep-alive connection under callgrind: "
        "(instructions for W + N requests - instructions for W) / N.",
        unit="instr/req",
    ),
]

BY_NAME = {workload.name: workload for workload in WORKLOADS}
THROUGHPUT = [w.name for w in WORKLOADS if w.kind == "wrk"]


def raise_file_limit(want: int = 65536) -> int:
    """Raise RLIMIT_NOFILE for this process and the servers and clients it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):  # not root: go as high as the hard limit allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- correctness -----------------------------------------------------------------


def expected(path: str) -> tuple[str, bytes | dict[str, str]]:
    """The content type prefix and body every server must return for ``path``."""
    if path == "/plaintext":
        return "text/plain", PLAINTEXT
    if path == "/json":
        return "application/json", JSON_VALUE
    if path.startswith("/?year="):
        return "text/html", calendar_page(int(path.split("=", 1)[1])).encode()
    raise ValueError(path)


def check_endpoint(port: int, path: str) -> str | None:
    """Fetch ``path`` once; return what is wrong with the answer, or None."""
    content_type, body = expected(path)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        got = response.read()
        connection.close()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {path}: {exc!r}"
    if not 200 <= response.status < 300:
        return f"GET {path}: status {response.status}"
    got_type = response.getheader("Content-Type", "")
    if not got_type.startswith(content_type):
        return f"GET {path}: Content-Type {got_type!r}, expected {content_type}"
    if isinstance(body, dict):
        try:
            same = json.loads(got) == body
        except ValueError:
            same = False
    else:
        same = got == body
    if not same:
        return f"GET {path}: body differs: {got[:80]!r}..."
    return None


# --- wrk -------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(text)
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """The numbers of a wrk report: rate, counts, errors and latency percentiles."""
    result: dict[str, Any] = {"non2xx": 0, "socket_errors": {}}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result["rps"] = float(match[1])
    if match := re.search(r"(\d+) requests in ([\d.]+\w+)", output):
        result["requests"] = int(match[1])
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        result["non2xx"] = int(match[1])
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        names = ("connect", "read", "write", "timeout")
        result["socket_errors"] = {n: int(v) for n, v in zip(names, match.groups(), strict=True)}
    for percent in ("50", "99"):
        if match := re.search(rf"^\s+{percent}%\s+(\S+)", output, re.MULTILINE):
            result[f"p{percent}_ms"] = _ms(match[1])
    return result


def run_wrk(
    workload: Workload, port: int, duration: float, connections: int = 64
) -> dict[str, Any]:
    """Run wrk once on the client core; the result carries ``error`` when the cell failed."""
    script_args = ["16"] if workload.name == "pipelined" else []
    return wrk(port, workload.path, duration, connections, workload.wrk_args, script_args)


def wrk(
    port: int,
    path: str,
    duration: float,
    connections: int = 64,
    options: Sequence[str] = (),
    script_args: Sequence[str] = (),
) -> dict[str, Any]:
    """wrk on ``path`` from the client core (``options`` before the URL, ``script_args``
    after ``--``); the result carries ``error`` when the cell failed."""
    argv = [
        "taskset",
        "-c",
        CLIENT_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "4s",
        "--latency",
        *options,
        f"http://127.0.0.1:{port}{path}",
    ]
    if script_args:
        argv += ["--", *script_args]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    result = parse_wrk(completed.stdout)
    problems = []
    if completed.returncode != 0 or "rps" not in result:
        problems.append(f"wrk failed ({completed.returncode}): {completed.stderr.strip()[-300:]}")
    if result["non2xx"]:
        problems.append(f"{result['non2xx']} non-2xx responses")
    errors = {k: v for k, v in result["socket_errors"].items() if v}
    if errors:
        problems.append("socket errors " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    if problems:
        result["error"] = "; ".join(problems)
    return result


# --- memory per idle connection --------------------------------------------------


def _response_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if match:
        return len(body) >= int(match[1])
    return body.endswith(b"0\r\n\r\n")  # chunked; our bodies are tiny


def _still_open(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True  # nothing to read: open and idle
    except OSError:
        return False


def idle_connections(
    running: Running, count: int = 10_000, batch: int = 500, settle: float = 1.0
) -> dict[str, Any]:
    """Open ``count`` keep-alive connections, one request each, and weigh them."""
    request = f"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n\r\n".encode()
    baseline = tree_rss_kib(running.pid)
    selector = selectors.DefaultSelector()
    held: list[socket.socket] = []
    failed = closed = 0
    started = time.monotonic()
    try:
        for first in range(0, count, batch):
            pending: dict[socket.socket, bytearray] = {}
            for _ in range(min(batch, count - first)):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", running.port))
                pending[sock] = bytearray()
                selector.register(sock, selectors.EVENT_WRITE)
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for key, mask in selector.select(timeout=1.0):
                    sock = key.fileobj  # type: ignore[assignment]
                    if mask & selectors.EVENT_WRITE:
                        try:
                            sock.send(request)
                            selector.modify(sock, selectors.EVENT_READ)
                        except OSError:
                            selector.unregister(sock)
                            del pending[sock]
                            sock.close()
                            failed += 1
                        continue
                    try:
                        chunk = sock.recv(65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        selector.unregister(sock)
                        del pending[sock]
                        sock.close()
                        failed += 1
                        continue
                    pending[sock] += chunk
                    if _response_complete(pending[sock]):
                        selector.unregister(sock)
                        head = bytes(pending.pop(sock)).partition(b"\r\n\r\n")[0]
                        if re.search(rb"(?im)^connection:\s*close", head):
                            # Closed by the server (gunicorn's sync worker): let go at once,
                            # since a server may wait for our FIN before its next accept.
                            sock.close()
                            closed += 1
                        else:
                            held.append(sock)
            for sock in pending:  # no answer in time
                selector.unregister(sock)
                sock.close()
                failed += 1
            if closed + failed > batch // 2:
                break  # this server keeps no idle connections: weighing them is moot
        opened_in = time.monotonic() - started
        time.sleep(settle)
        loaded = tree_rss_kib(running.pid)
        alive = sum(_still_open(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()
        selector.close()
    result: dict[str, Any] = {
        "connections": count,
        "answered": len(held),
        "alive": alive,
        "failed": failed,
        "closed_by_server": closed,
        "baseline_kib": baseline,
        "loaded_kib": loaded,
        "open_seconds": round(opened_in, 2),
    }
    if closed > batch // 2:
        result["not_applicable"] = "closes every connection after its response"
    elif alive < 0.95 * count:
        result["error"] = f"only {alive} of {count} connections stayed open"
    else:
        result["value"] = (loaded - baseline) * 1024 / alive
    return result


# --- latency at a fixed rate -----------------------------------------------------


def open_loop(
    binary: Path, port: int, rate: float, duration: float, connections: int = 64
) -> dict[str, Any]:
    """Run bench/openloop.c at ``rate`` requests/s; p50/p99 in milliseconds."""
    argv = [
        "taskset",
        "-c",
        CLIENT_CORE,
        str(binary),
        "-p",
        str(port),
        "-r",
        f"{rate:.0f}",
        "-c",
        str(connections),
        "-d",
        str(duration),
        "-w",
        "1",
        "-u",
        "/plaintext",
        "-e",
        PLAINTEXT.decode(),
    ]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except ValueError:
        return {"error": f"openloop failed ({completed.returncode}): {completed.stderr[-300:]}"}
    problems = [
        f"{result[key]} {key}" for key in ("non2xx", "mismatched", "errors") if result[key]
    ]
    if problems:
        result["error"] = "; ".join(problems)
        return result
    # A server that cannot keep up is still reported, as a lower bound (see openloop.c).
    if result["achieved_rps"] < 0.97 * result["target_rps"] or result["unanswered"]:
        result["overloaded"] = True
        result["warning"] = (
            f"overloaded: {result['achieved_rps']:,.0f} of {result['target_rps']:,.0f} req/s "
            "answered; percentiles are lower bounds"
        )
    if not result["samples"]:
        result["error"] = result.get("warning", "no answers") + "; nothing measured"
        return result
    result["value"] = result["p99_ms"]
    return result


# --- instructions per request ----------------------------------------------------


def _callgrind_total(path: Path) -> int:
    text = path.read_text(errors="replace")
    match = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^totals:\s+(\d+)", text, re.MULTILINE
    )
    if not match:
        raise ValueError(f"no instruction total in {path}")
    return int(match[1])


def _callgrind_run(server: Server, env: Env, requests: int) -> int:
    out = env.workdir / f"callgrind-{server.name}-{requests}.out"
    running = spawn(
        server,
        env,
        wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"],
        extra_env={"PYTHONHASHSEED": "0"},
    )
    try:
        # The first connection that the server accepts is the one that carries the
        # requests: no readiness probe may add work to one run and not the other.
        deadline = time.monotonic() + 300
        while True:
            if running.process.poll() is not None:
                raise RuntimeError(f"exited while starting:\n{running.log_tail()}")
            try:
                sock = socket.create_connection(("127.0.0.1", running.port), timeout=120)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("did not listen within 300 s") from None
                time.sleep(0.2)
        request = f"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n\r\n".encode()
        with sock:
            for _ in range(requests):
                sock.sendall(request)
                data = b""
                while not _response_complete(data):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError("connection closed mid-run")
                    data += chunk
                if PLAINTEXT not in data:
                    raise RuntimeError(f"unexpected response {data[:80]!r}")
        time.sleep(0.5)
    finally:
        # SIGINT: a clean exit, so that callgrind writes its totals.
        stop(running, signal.SIGINT, timeout=180)
    if not out.exists():
        raise RuntimeError(f"callgrind wrote no output:\n{running.log_tail()}")
    return _callgrind_total(out)


def instructions_per_request(
    server: Server, env: Env, requests: int = 2000, warm: int = 100
) -> dict[str, Any]:
    """Instructions the server spends per plaintext request, startup and shutdown removed.

    Both runs first send ``warm`` requests, so that one-time work done by the
    first requests (lazy imports, caches filled) cancels out with startup.
    """
    started = time.monotonic()
    try:
        base = _callgrind_run(server, env, warm)
        loaded = _callgrind_run(server, env, warm + requests)
    except (OSError, RuntimeError, ValueError) as exc:
        return {"error": str(exc)}
    return {
        "requests": requests,
        "warm_requests": warm,
        "instructions_base": base,
        "instructions_loaded": loaded,
        "value": (loaded - base) / requests,
        "seconds": round(time.monotonic() - started, 1),
    }
