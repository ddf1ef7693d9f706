"""How each server in the comparison is started, watched and stopped.

Every server runs as ONE process tree (one worker) pinned to core 0 with
``taskset -c 0``; the load generators run on core 1. Every start is a fresh
process on a fresh port, so no cell inherits another's warm caches or leaked
connections. Access logs are off everywhere, and idle keep-alive timeouts are
raised to ``keep_alive`` seconds where a server has the setting, so that the
idle-connection test (which takes a few seconds to open 10,000 connections)
measures memory, not a timeout.
"""

from __future__ import annotations

import calendar
import contextlib
import html
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
APPS = BENCH / "apps"
SERVER_CORE = "0"
CLIENT_CORE = "1"

CALENDAR_HEAD = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>"
)


def calendar_page(year: int = 2003) -> str:
    """The calendar page every server must return for ``/?year=YEAR``."""
    return CALENDAR_HEAD + html.escape(calendar.calendar(year)) + "</pre></body></html>"


@dataclass
class Env:
    """What the command lines need: where things are and what they support."""

    venv: Path
    workdir: Path  # scratch space for this run (nginx prefix, logs)
    keep_alive: int = 120
    dibble_flags: set[str] = field(default_factory=set)  # optional flags `dibble serve` takes

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@dataclass(frozen=True)
class Server:
    name: str  # the id used by --servers and in results
    label: str  # how tables and charts name it
    notes: str  # one line for BENCHMARKS.md
    command: Callable[[Env, int, Path], list[str]]  # (env, port, scratch dir) -> argv
    kind: str = "peer"  # "peer", "ceiling" (nginx) or "dibble"
    pipelining: bool = True  # False: the pipelined workload is not applicable
    static: bool = False  # serves precomputed bodies (nginx)


def _uvicorn(app: str) -> Callable[[Env, int, Path], list[str]]:
    def command(env: Env, port: int, scratch: Path) -> list[str]:
        return [
            env.bin("uvicorn"),
            app,
            "--app-dir",
            str(APPS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            "--timeout-keep-alive",
            str(env.keep_alive),
        ]

    return command


def _granian(env: Env, port: int, scratch: Path) -> list[str]:
    return [
        env.bin("granian"),
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--http",
        "1",
        "--no-ws",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
        # At most this many connections are served at once (default backlog/workers);
        # above it granian stops reading new ones, and the idle test holds 10,000.
        "--backpressure",
        "16384",
        "--working-dir",
        str(APPS),
        "asgi_bare:app",
    ]


def _aiohttp(env: Env, port: int, scratch: Path) -> list[str]:
    return [env.bin("python"), str(APPS / "aiohttp_app.py"), str(port), str(env.keep_alive)]


def _cherrypy(env: Env, port: int, scratch: Path) -> list[str]:
    return [env.bin("python"), str(APPS / "cherrypy_app.py"), str(port), str(env.keep_alive)]


def _gunicorn_flask(env: Env, port: int, scratch: Path) -> list[str]:
    return [
        env.bin("gunicorn"),
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--backlog",
        "4096",
        "--log-level",
        "warning",
        "--chdir",
        str(APPS),
        "flask_app:app",
    ]


def _dibble(app: str) -> Callable[[Env, int, Path], list[str]]:
    def command(env: Env, port: int, scratch: Path) -> list[str]:
        argv = [
            env.bin("dibble"),
            "serve",
            str(APPS / app),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "--no-access-log",
        ]
        if "--keep-alive-timeout" in env.dibble_flags:
            argv += ["--keep-alive-timeout", str(env.keep_alive)]
        return argv

    return command


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {scratch}/nginx.pid;
error_log {scratch}/error.log warn;
worker_rlimit_nofile 65536;
events {{
    worker_connections 20000;
}}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 100000000;
    keepalive_timeout {keep_alive}s;
    client_body_temp_path {scratch}/body;
    proxy_temp_path {scratch}/proxy;
    fastcgi_temp_path {scratch}/fastcgi;
    uwsgi_temp_path {scratch}/uwsgi;
    scgi_temp_path {scratch}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /plaintext {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
        location = /json {{
            default_type application/json;
            return 200 '{{"message":"Hello, World!"}}';
        }}
        # STATIC: the calendar page for 2003, rendered once before the run.
        location = / {{
            root {scratch};
            default_type text/html;
            charset utf-8;
            try_files /calendar-2003.html =404;
        }}
    }}
}}
"""


def _nginx(env: Env, port: int, scratch: Path) -> list[str]:
    scratch.chmod(0o755)  # the worker process drops to an unprivileged user
    (scratch / "calendar-2003.html").write_text(calendar_page(2003), encoding="utf-8")
    (scratch / "calendar-2003.html").chmod(0o644)
    conf = scratch / "nginx.conf"
    conf.write_text(NGINX_CONF.format(scratch=scratch, port=port, keep_alive=env.keep_alive))
    return ["nginx", "-p", str(scratch), "-c", str(conf), "-e", str(scratch / "error.log")]


SERVERS: list[Server] = [
    Server(
        "nginx",
        "nginx",
        "the ceiling: `return 200` bodies; the calendar is a STATIC pre-rendered file",
        _nginx,
        kind="ceiling",
        static=True,
    ),
    Server(
        "dibble-sync",
        "dibble (sync methlet)",
        "`dibble serve bench/apps/dibble_sync.py`, plain `def` methlets",
        _dibble("dibble_sync.py"),
        kind="dibble",
    ),
    Server(
        "dibble-async",
        "dibble (async methlet)",
        "`dibble serve bench/apps/dibble_async.py`, `async def` methlets",
        _dibble("dibble_async.py"),
        kind="dibble",
    ),
    Server(
        "granian",
        "granian, bare ASGI",
        "granian, ASGI interface, 1 worker, 1 runtime thread, HTTP/1, uvloop, "
        "backpressure raised to 16384 connections",
        _granian,
    ),
    Server(
        "uvicorn",
        "uvicorn, bare ASGI",
        "uvicorn with httptools + uvloop, a bare ASGI callable",
        _uvicorn("asgi_bare:app"),
    ),
    Server(
        "uvicorn-starlette",
        "uvicorn + Starlette",
        "uvicorn with httptools + uvloop serving a Starlette app",
        _uvicorn("starlette_app:app"),
    ),
    Server(
        "aiohttp",
        "aiohttp",
        "aiohttp.web on uvloop, `run_app`, access log off",
        _aiohttp,
    ),
    Server(
        "cherrypy",
        "CherryPy",
        "CherryPy's own cheroot server, 10 threads, production environment",
        _cherrypy,
    ),
    Server(
        "flask-gunicorn",
        "Flask + gunicorn",
        "Flask under gunicorn, one sync worker (closes the connection after each response)",
        _gunicorn_flask,
        pipelining=False,
    ),
]

BY_NAME = {server.name: server for server in SERVERS}


class StartError(Exception):
    """A server did not come up; the message carries the tail of its log."""


@dataclass
class Running:
    server: Server
    port: int
    process: subprocess.Popen[bytes]
    scratch: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LANG"] = env["LC_ALL"] = "C.UTF-8"  # calendar day names must not follow a locale
    env.pop("PYTHONPATH", None)
    return env


def spawn(
    server: Server,
    env: Env,
    *,
    wrapper: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Running:
    """Start ``server`` pinned to the server core, without waiting for it."""
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix=f"{server.name}-", dir=env.workdir))
    log = scratch / "server.log"
    argv = ["taskset", "-c", SERVER_CORE, *(wrapper or []), *server.command(env, port, scratch)]
    process_env = child_env()
    process_env.update(extra_env or {})
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=scratch,
            env=process_env,
            start_new_session=True,
        )
    return Running(server, port, process, scratch, log)


def start(server: Server, env: Env, *, ready_timeout: float = 30.0) -> Running:
    """Start ``server``; return once it answers ``GET /plaintext``."""
    running = spawn(server, env)
    deadline = time.monotonic() + ready_timeout
    while True:
        if running.process.poll() is not None:
            raise StartError(
                f"{server.name} exited with status {running.process.returncode} while starting:\n"
                + running.log_tail()
            )
        try:
            connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
            connection.request("GET", "/plaintext")
            connection.getresponse().read()
            connection.close()
            return running
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                stop(running)
                raise StartError(
                    f"{server.name} did not answer on port {running.port} "
                    f"within {ready_timeout:.0f} s:\n" + running.log_tail()
                ) from None
            time.sleep(0.05)


def stop(running: Running, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
    """Ask the server to exit; kill its process group if it does not in time."""
    process = running.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    # Whatever is left of the group (gunicorn/granian/nginx workers) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(5)
    return process.returncode


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name may hold spaces and parentheses; ppid follows the last ')'.
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_rss_kib(pid: int) -> int:
    """Resident set size of a process tree, summed over its processes (VmRSS, KiB)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process tree has used so far, threads included."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")
