"""The ``dibble`` command.

``dibble serve [TARGET] [-c FILE]`` serves plugins or servers found in
TARGET and the services listed in the configuration file; ``dibble
check-config -c FILE`` validates a configuration and prints it in full;
``dibble user add|passwd|list|remove`` manages users (``dibble.users``);
``dibble --version`` prints the version.

Settings come from three places, later ones winning: the defaults, the
configuration file, and the command-line options.  A bad TARGET, option or
configuration prints one line and exits with status 2.
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
from .config import Config, ConfigError, dump_toml, load_config
from .server import Context, default_context
from .users._cli import add_user_commands, run_user_command


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


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """The options that override configuration settings (shared by both commands)."""
    parser.add_argument("-c", "--config", metavar="FILE", help="the TOML configuration file")
    parser.add_argument("-H", "--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=_port, help="port to listen on (default 8888)")
    parser.add_argument(
        "-d", "--domain", metavar="DOMAIN", help="the Domain of the cookies pages set"
    )
    parser.add_argument(
        "-s", "--default-service", metavar="SERVICE", help="the service that answers /"
    )
    parser.add_argument(
        "-t",
        "--test",
        action="store_true",
        help="test mode: log to the screen, show tracebacks in error pages",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not write the access log")
    parser.add_argument(
        "--keep-alive-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close idle keep-alive connections after this long (default 5)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dibble", description="A batteries-included Python web server.")
    parser.add_argument("--version", action="version", version=f"dibble {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = commands.add_parser(
        "serve", help="serve plugins, an HTTPServer or configured services"
    )
    serve.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help="module:attr, module, path/file.py or path/file.py:attr "
        "(optional when the configuration lists [services])",
    )
    _add_settings(serve)
    serve.add_argument("--open", action="store_true", help="open the site in a web browser")
    check = commands.add_parser(
        "check-config", help="validate a configuration and print it with every default"
    )
    _add_settings(check)
    add_user_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return _check_config(args)
    if args.command == "user":
        return run_user_command(args)
    parser.print_help()
    return 2


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration settings the command line sets, as dotted keys."""
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["server.host"] = args.host
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.domain is not None:
        overrides["cookies.domain"] = args.domain
    if args.default_service is not None:
        overrides["server.default_service"] = args.default_service
    if args.test:
        overrides["server.test_mode"] = True
    if args.no_access_log:
        overrides["logging.access_log"] = False
    if args.keep_alive_timeout is not None:
        overrides["server.keep_alive_timeout"] = args.keep_alive_timeout
    return overrides


def _fail(message: str) -> int:
    print(f"dibble: {message}", file=sys.stderr)
    return 2


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, _overrides(args))
        # Building a server (never started) checks what only a server can:
        # that each service is a page or a plugin, and that names exist.
        HTTPServer.from_config(config, Context(), prepare=False)
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    # Secrets (keys, passwords, credentials in URLs) are never printed: this
    # output ends up in tickets and logs.
    from .admin import masked_config

    config = masked_config(config)
    sys.stdout.write(dump_toml(config))
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, _overrides(args))
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    try:
        configure_logging(config.logging, test_mode=config.server.test_mode)
    except OSError as exc:
        return _fail(f"config error: [logging] directory: {exc.strerror or exc}")
    if args.target is None and not config.services:
        return _fail(
            "error: the following arguments are required: TARGET "
            "(or a configuration file with [services])"
        )
    try:
        context = _site(args.target, config)
    except TargetError as exc:
        return _fail(f"error: {exc}")
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
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


def _site(target_spec: str | None, config: Config) -> Context:
    """The context to run: TARGET's servers, or a new server for plugins and services."""
    target = load_target(target_spec) if target_spec is not None else None
    if target is not None and target.servers:
        given = config.given
        if len(target.servers) > 1 and ({"server.host", "server.port"} & given):
            raise TargetError("TARGET defines several servers; -H/-p cannot apply to all")
        contexts = {id(s.context): s.context for s in target.servers}
        if len(contexts) > 1:
            raise TargetError("TARGET's servers are in different contexts")
        for server in target.servers:
            # The server's own settings stand unless the file or the command
            # line set them explicitly.
            server.apply_config(config, explicit_only=True)
        return target.servers[0].context
    context = Context()
    server = HTTPServer.from_config(config, context)
    if target is not None:
        server.register(*target.plugins)
    return context


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
