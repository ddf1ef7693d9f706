"""Files benchmark: a 1 MiB static file and a 100 MB multipart upload, dibble beside its peers.

    python3 bench/files.py                # 3 rounds of 5-second cells, about 6 minutes
    python3 bench/files.py --quick        # 1 round of 2-second cells
    python3 bench/files.py --servers dibble,nginx --workloads static
    python3 bench/files.py --quick --servers dibble,nginx --workloads static --syscalls

Static: ``wrk -t1 -c16`` fetches ``/static/f1m.bin`` (1 MiB) from nginx
(``sendfile on``), dibble (``server.static``, zero-copy ``sendfile`` and with
``sendfile=False``), Starlette's ``StaticFiles`` under uvicorn, and aiohttp's
``add_static``; bytes per second, the share of nginx's, and the CPU time the
server spent per response (from /proc, over the measured run: a figure that
moves far less than the rate when other work shares the machine).
``--syscalls`` also counts each server's system calls per response with
``strace -c`` during a further 1-second run.

Upload: a client streams a 100 MiB file as ``multipart/form-data`` to
``/upload``, where each framework parses the form its usual way (dibble: an
``Upload`` parameter; Starlette: ``await request.form()``; aiohttp:
``await request.post()``), which stores the file in a temporary file, and
answers its size.  Throughput is payload bytes over the time from the first
byte sent to the answer; the server's peak RSS growth is sampled every 5 ms
(summed over its process tree) against its RSS just before the upload.

As in bench/run.py, every server runs as one process pinned to core 0 and
the client to core 1; servers come from bench/.peers (made by bench/run.py)
except dibble, which runs from the repository's .venv.  Starlette needs
python-multipart for forms, which the peers do not pin: it is installed into
bench/results/files-deps/ on first use.  Writes bench/results/files.md (a
section for BENCHMARKS.md) and bench/results/files.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import servers  # noqa: E402 - bench/servers.py: ports, environment, process trees

RESULTS = BENCH / "results"
PEERS = BENCH / ".peers"
DEPS = RESULTS / "files-deps"
DIBBLE_PYTHON = REPO / ".venv" / "bin" / "python"
STATIC_SIZE = 1 << 20
UPLOAD_SIZE = 100 << 20
BOUNDARY = "dibblebenchboundary7MA4YWxkTrZu0gW"

DIBBLE_APP = """
import sys
import dibble

port, root, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Upload(dibble.Plugin):
    @dibble.max_body_size(256 << 20)
    def onUpload(self, file: dibble.Upload) -> dict:
        return {"size": file.size}


server = dibble.HTTPServer(("127.0.0.1", port), access_log=False, keep_alive_timeout=120)
server.static("/static", root, sendfile=(mode == "sendfile"))
server.register(Upload())
dibble.run()
"""

STARLETTE_APP = """
import os
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles


async def upload(request: Request) -> JSONResponse:
    async with request.form() as form:
        file = form["file"]
        file.file.seek(0, os.SEEK_END)
        return JSONResponse({"size": file.file.tell()})


app = Starlette(routes=[
    Route("/upload", upload, methods=["POST"]),
    Mount("/static", StaticFiles(directory=os.environ["BENCH_ROOT"])),
])
"""

AIOHTTP_APP = """
import sys
import uvloop
from aiohttp import web


async def upload(request: web.Request) -> web.Response:
    form = await request.post()
    field = form["file"]
    field.file.seek(0, 2)
    return web.json_response({"size": field.file.tell()})


app = web.Application(client_max_size=256 << 20)
app.router.add_post("/upload", upload)
app.router.add_static("/static", sys.argv[2])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
            print=None, loop=uvloop.new_event_loop())
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {scratch}/nginx.pid;
error_log {scratch}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path {scratch}/body;
    proxy_temp_path {scratch}/proxy;
    fastcgi_temp_path {scratch}/fastcgi;
    uwsgi_temp_path {scratch}/uwsgi;
    scgi_temp_path {scratch}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /static/ {{ alias {root}/; }}
    }}
}}
"""


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    workloads: tuple[str, ...]


PEER_LIST = [
    Peer("nginx", "nginx (sendfile on)", ("static",)),
    Peer("dibble", "dibble (sendfile)", ("static", "upload")),
    Peer("dibble-write", "dibble (sendfile=False)", ("static",)),
    Peer("starlette", "uvicorn + Starlette", ("static", "upload")),
    Peer("aiohttp", "aiohttp", ("static", "upload")),
]
BY_NAME = {peer.name: peer for peer in PEER_LIST}


def command(peer: Peer, port: int, scratch: Path, root: Path) -> tuple[list[str], dict[str, str]]:
    env: dict[str, str] = {}
    if peer.name == "nginx":
        scratch.chmod(0o755)
        conf = scratch / "nginx.conf"
        conf.write_text(NGINX_CONF.format(scratch=scratch, port=port, root=root))
        log = str(scratch / "error.log")
        return ["nginx", "-p", str(scratch), "-c", str(conf), "-e", log], env
    if peer.name.startswith("dibble"):
        app = scratch / "dibble_files.py"
        app.write_text(DIBBLE_APP)
        mode = "sendfile" if peer.name == "dibble" else "write"
        return [str(DIBBLE_PYTHON), str(app), str(port), str(root), mode], env
    if peer.name == "starlette":
        (scratch / "starlette_files.py").write_text(STARLETTE_APP)
        env = {"BENCH_ROOT": str(root), "PYTHONPATH": str(DEPS)}
        argv = [
            str(PEERS / "bin" / "uvicorn"), "starlette_files:app", "--app-dir", str(scratch),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--timeout-keep-alive", "120",
        ]  # fmt: skip
        return argv, env
    app = scratch / "aiohttp_files.py"
    app.write_text(AIOHTTP_APP)
    return [str(PEERS / "bin" / "python"), str(app), str(port), str(root)], env


class Started:
    def __init__(self, peer: Peer, root: Path, workdir: Path) -> None:
        self.peer = peer
        self.port = servers.free_port()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{peer.name}-", dir=workdir))
        argv, extra = command(peer, self.port, self.scratch, root)
        env = servers.child_env()
        env.update(extra)
        self.log = self.scratch / "server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", servers.SERVER_CORE, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.scratch,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{peer.name} exited:\n{self.log.read_text(errors='replace')}")
            try:
                status, body = http_get(self.port, "/static/f1m.bin")
                if status == 200 and len(body) == STATIC_SIZE:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{peer.name} did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        shutil.rmtree(self.scratch, ignore_errors=True)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# --- workloads -----------------------------------------------------------------------


def wrk_run(port: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, responses, non-2xx responses) of one wrk run on the 1 MiB file."""
    url = f"http://127.0.0.1:{port}/static/f1m.bin"
    wrk = ["taskset", "-c", servers.CLIENT_CORE, "wrk", "-t1", "-c16", f"-d{seconds:g}s", url]
    out = subprocess.run(wrk, capture_output=True, check=True, text=True).stdout
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, done, float(errors.group(1)) if errors else 0.0


def static_cell(started: Started, duration: float, warmup: float) -> dict[str, float]:
    wrk_run(started.port, warmup)
    pid = started.process.pid
    before = servers.tree_cpu_seconds(pid)
    requests, done, errors = wrk_run(started.port, duration)
    cpu = servers.tree_cpu_seconds(pid) - before
    return {
        "requests_per_s": requests,
        "mb_per_s": requests * STATIC_SIZE / 1e6,
        "errors": errors,
        # CPU the server spent per response: unlike the rate, it hardly moves
        # when other work shares the machine.
        "server_cpu_us": 1e6 * cpu / done if done else float("nan"),
    }


def syscalls_per_response(started: Started, seconds: float = 1.0) -> dict[str, float]:
    """System calls per response of the server during a short wrk run (``strace -c``)."""
    out = started.scratch / "strace.txt"
    attach = [arg for pid in servers.process_tree(started.process.pid) for arg in ("-p", str(pid))]
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(out), *attach],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # attached
    _, done, _ = wrk_run(started.port, seconds)
    time.sleep(0.2)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(10)
    calls: dict[str, float] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3]) / done
    return dict(sorted(calls.items(), key=lambda item: -item[1]))


CLIENT = r"""
import socket, sys, time
port, path, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with open(path, "rb") as body, socket.create_connection(("127.0.0.1", port)) as sock:
    sock.sendall(("POST /upload HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
                  "Content-Type: multipart/form-data; boundary=%s\r\n"
                  "Content-Length: %d\r\n\r\n" % (sys.argv[4], total)).encode())
    start = time.perf_counter()
    sock.sendfile(body)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    elapsed = time.perf_counter() - start
print(elapsed)
print(data.split(b"\r\n\r\n", 1)[-1].decode())
"""


def make_upload_body(path: Path) -> int:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        out.write(head)
        for _ in range(UPLOAD_SIZE >> 20):
            out.write(block)
        out.write(tail)
    return path.stat().st_size


def upload_cell(started: Started, body: Path, total: int) -> dict[str, float]:
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(servers.tree_rss_kib(started.process.pid))
            time.sleep(0.005)

    baseline = servers.tree_rss_kib(started.process.pid)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = subprocess.run(
            ["taskset", "-c", servers.CLIENT_CORE, sys.executable, "-c", CLIENT,
             str(started.port), str(body), str(total), BOUNDARY],
            capture_output=True, check=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        stop.set()
        sampler.join()
    elapsed_text, answer = result.stdout.split("\n", 1)
    size = json.loads(answer)["size"]
    if size != UPLOAD_SIZE:
        raise RuntimeError(f"{started.peer.name} stored {size} bytes, not {UPLOAD_SIZE}")
    elapsed = float(elapsed_text)
    return {
        "mb_per_s": UPLOAD_SIZE / elapsed / 1e6,
        "seconds": elapsed,
        "rss_growth_mib": (max(samples, default=baseline) - baseline) / 1024,
    }


# --- the run ---------------------------------------------------------------------------


def ensure_deps() -> None:
    if not (PEERS / "bin" / "python").exists():
        sys.exit("bench/.peers is missing: run python3 bench/run.py --quick once to make it")
    if not (DEPS / "python_multipart").exists():
        subprocess.run(
            [str(PEERS / "bin" / "python"), "-m", "pip", "install", "--quiet", "--target",
             str(DEPS), "python-multipart==0.0.34"],
            check=True,
        )  # fmt: skip
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: dict[str, dict[str, list[dict[str, float]]]], meta: dict[str, str]) -> str:
    lines = ["## Files: static 1 MiB file and 100 MB upload", ""]
    lines.append(
        f"{meta['rounds']} round(s); static: `wrk -t1 -c16`, {meta['duration']} s per cell; "
        f"upload: {meta['uploads']} uploads of 100 MiB per server and round. Server on core 0, "
        f"client on core 1 ({meta['machine']}). Medians; `python3 bench/files.py` reproduces it."
    )
    lines += ["", "### Static 1 MiB file", ""]
    lines.append("| server | requests/s | MB/s | share of nginx | server CPU µs/response |")
    lines.append("|---|---:|---:|---:|---:|")
    nginx = median([c["mb_per_s"] for c in results.get("nginx", {}).get("static", [])])
    for peer in PEER_LIST:
        cells = results.get(peer.name, {}).get("static", [])
        if not cells:
            continue
        rate = median([c["mb_per_s"] for c in cells])
        share = f"{100 * rate / nginx:.0f} %" if nginx == nginx and nginx else "-"
        requests = median([c["requests_per_s"] for c in cells])
        cpu = median([c.get("server_cpu_us", float("nan")) for c in cells])
        lines.append(f"| {peer.label} | {requests:,.0f} | {rate:,.0f} | {share} | {cpu:,.0f} |")
    traced = [p for p in PEER_LIST if results.get(p.name, {}).get("syscalls")]
    if traced:
        lines += ["", "System calls per response (`strace -c -f`, a 1 s run per server):", ""]
        lines.append("| server | total | calls |")
        lines.append("|---|---:|---|")
        for peer in traced:
            calls = results[peer.name]["syscalls"][-1]
            shown = ", ".join(
                f"{name} {count:.2f}" for name, count in calls.items() if count >= 0.05
            )
            lines.append(f"| {peer.label} | {sum(calls.values()):.1f} | {shown} |")
    lines += ["", "### 100 MiB multipart upload", ""]
    lines.append("| server | MB/s | seconds | peak RSS growth (MiB) |")
    lines.append("|---|---:|---:|---:|")
    for peer in PEER_LIST:
        cells = results.get(peer.name, {}).get("upload", [])
        if not cells:
            continue
        lines.append(
            f"| {peer.label.split(' (')[0]} | {median([c['mb_per_s'] for c in cells]):,.0f} "
            f"| {median([c['seconds'] for c in cells]):.2f} "
            f"| {max(c['rss_growth_mib'] for c in cells):.1f} |"
        )
    lines += [
        "",
        "Targets (issue 6): static ≥ 70 % of nginx's bytes/s; upload ≥ 300 MB/s with peak RSS "
        "growth under 32 MB. The upload column is the worst growth seen in any run.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--uploads", type=int, default=3, help="measured uploads per cell")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--servers", default=",".join(BY_NAME))
    parser.add_argument("--workloads", default="static,upload")
    parser.add_argument(
        "--syscalls",
        action="store_true",
        help="after each static cell, count the server's system calls per response (strace)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.uploads = 1, 2.0, 1
    chosen = [BY_NAME[name] for name in args.servers.split(",")]
    workloads = args.workloads.split(",")
    ensure_deps()
    if args.syscalls and shutil.which("strace") is None:
        sys.exit("strace is not installed (needed by --syscalls)")
    RESULTS.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="files-bench-", dir=RESULTS))
    workdir.chmod(0o755)
    root = workdir / "www"
    root.mkdir()
    (root / "f1m.bin").write_bytes(os.urandom(STATIC_SIZE))
    for path in (workdir, root, root / "f1m.bin"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    body = workdir / "upload.body"
    total = make_upload_body(body) if "upload" in workloads else 0
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for round_number in range(args.rounds):
            order = chosen[round_number % len(chosen) :] + chosen[: round_number % len(chosen)]
            for peer in order:
                for workload in workloads:
                    if workload not in peer.workloads:
                        continue
                    started = Started(peer, root, workdir)
                    try:
                        if workload == "static":
                            cells = [static_cell(started, args.duration, args.warmup)]
                            if args.syscalls:
                                traced = syscalls_per_response(started)
                                results.setdefault(peer.name, {}).setdefault(
                                    "syscalls", []
                                ).append(traced)
                        else:
                            upload_cell(started, body, total)  # warm-up
                            cells = [
                                upload_cell(started, body, total) for _ in range(args.uploads)
                            ]
                    finally:
                        started.stop()
                    results.setdefault(peer.name, {}).setdefault(workload, []).extend(cells)
                    shown = ", ".join(f"{k}={v:,.1f}" for k, v in cells[-1].items())
                    print(f"round {round_number + 1} {peer.name:13s} {workload:7s} {shown}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "rounds": str(args.rounds),
        "duration": f"{args.duration:g}",
        "uploads": str(args.uploads),
        "machine": f"{os.cpu_count()} cores, Linux {os.uname().release}",
    }
    text = report(results, meta)
    (RESULTS / "files.md").write_text(text)
    (RESULTS / "files.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print()
    print(text)


if __name__ == "__main__":
    main()
