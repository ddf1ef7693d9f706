"""The ``dibble`` command.

``dibble serve TARGET`` serves plugins or servers found in TARGET;
``dibble --version`` prints the version.  A bad TARGET or option prints one
line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from ._logging import configure_logging
from ._target import TargetError, load_target
from .app import HTTPServer
from .server import Context, default_context


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dibble", description="A batteries-included Python web server.")
    parser.add_argument("--version", action="version", version=f"dibble {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = commands.add_parser("serve", help="serve plugins or an HTTPServer")
    serve.add_argument(
        "target",
        metavar="TARGET",
        help="module:attr, module, path/file.py or path/file.py:attr",
    )
    serve.add_argument("-H", "--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("-p", "--port", type=_port, help="port to listen on (default 8888)")
    serve.add_argument(
        "-t",
        "--test",
        action="store_true",
        help="test mode: log to the screen, show tracebacks in error pages",
    )
    serve.add_argument("--open", action="store_true", help="open the site in a web browser")
    serve.add_argument("--no-access-log", action="store_true", help="do not write the access log")
    serve.add_argument(
        "--keep-alive-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close idle keep-alive connections after this long (default 5)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {}
    if args.host is not None:
        settings["host"] = args.host
    if args.port is not None:
        settings["port"] = args.port
    if args.test:
        settings["test_mode"] = True
    if args.no_access_log:
        settings["access_log"] = False
    if args.keep_alive_timeout is not None:
        settings["keep_alive_timeout"] = args.keep_alive_timeout
    configure_logging(test_mode=args.test, access_log=not args.no_access_log)
    try:
        target = load_target(args.target)
    except TargetError as exc:
        print(f"dibble: error: {exc}", file=sys.stderr)
        return 2
    if target.servers:
        if len(target.servers) > 1 and ("host" in settings or "port" in settings):
            print(
                "dibble: error: TARGET defines several servers; -H/-p cannot apply to all",
                file=sys.stderr,
            )
            return 2
        for server in target.servers:
            server.configure(**settings)
        contexts = {id(s.context): s.context for s in target.servers}
        if len(contexts) > 1:
            print("dibble: error: TARGET's servers are in different contexts", file=sys.stderr)
            return 2
        context: Context = target.servers[0].context
    else:
        context = Context()
        server = HTTPServer(context=context, **settings)
        server.register(*target.plugins)
    # Servers created at import time that are not being served would keep the
    # default context non-empty; only the chosen context runs.
    if context is not default_context:
        for site in list(default_context.sites):
            default_context.remove(site)
    try:
        context.run(launch_browser=args.open)
    except OSError as exc:
        print(f"dibble: error: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
