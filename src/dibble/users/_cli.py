"""``dibble user``: add, change, list and remove users from the command line.

::

    dibble user add NAME [--project P [--privilege N]] [--admin]
    dibble user passwd NAME
    dibble user list
    dibble user remove NAME

The database is the configured one: ``--database FILE``, else ``[database]
url`` or ``[paths] data_dir`` of the configuration file given with ``-c``.
Passwords are asked for twice on a terminal, or read from the first line
of standard input with ``--password-stdin`` (for scripts).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ._store import MAX_PRIVILEGE, READ, UserError, UserStore

__all__ = ["add_user_commands", "run_user_command"]


def _privilege(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid privilege {text!r}") from None
    if not 1 <= level <= MAX_PRIVILEGE:
        raise argparse.ArgumentTypeError(f"a privilege is a level from 1 to {MAX_PRIVILEGE}")
    return level


def add_user_commands(commands: Any) -> None:
    """Add ``user`` and its subcommands to an argparse subparsers object."""
    user = commands.add_parser("user", help="add, change, list or remove users")
    actions = user.add_subparsers(dest="user_command", metavar="ACTION")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-c", "--config", metavar="FILE", help="the TOML configuration file")
        parser.add_argument(
            "--database", metavar="FILE", help="the SQLite database of users (overrides -c)"
        )

    add = actions.add_parser("add", help="add a user")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--project", action="append", default=[], help="a project to join")
    add.add_argument(
        "--privilege",
        type=_privilege,
        default=READ,
        help=f"privilege level in the projects, 1-{MAX_PRIVILEGE} (default {READ})",
    )
    add.add_argument("--admin", action="store_true", help="an administrator (every privilege)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    common(add)
    passwd = actions.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    common(passwd)
    listing = actions.add_parser("list", help="list the users")
    common(listing)
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("name", metavar="NAME")
    common(remove)


def _database(args: argparse.Namespace) -> str:
    if args.database:
        return str(args.database)
    from ..config import load_config
    from ._database import database_path

    config = load_config(args.config, check_imports=False)
    path = database_path(config)
    if path is None:
        raise UserError(
            "no user database: give --database FILE, or -c FILE with [database] url "
            "or [paths] data_dir set"
        )
    return path


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password on; use --password-stdin")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("the passwords differ")
    if not password:
        raise UserError("the password is empty")
    return password


def run_user_command(args: argparse.Namespace) -> int:
    """Run a parsed ``dibble user ...`` command; the exit status."""
    from ..config import ConfigError

    if not getattr(args, "user_command", None):
        print("dibble user: say add, passwd, list or remove (see --help)", file=sys.stderr)
        return 2
    try:
        path = _database(args)
        store = UserStore(path)
    except (UserError, ConfigError, OSError) as exc:
        print(f"dibble: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, store)
    except (UserError, ValueError) as exc:
        print(f"dibble: error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _run(args: argparse.Namespace, store: UserStore) -> int:
    command = args.user_command
    if command == "add":
        password = _read_password(args)
        projects = dict.fromkeys(args.project, args.privilege)
        user = store.add(args.name, password, admin=args.admin, projects=projects)
        print(f"added {user.name}")
    elif command == "passwd":
        if store.get(args.name) is None:
            raise UserError(f"no user named {args.name!r}")
        store.set_password(args.name, _read_password(args))
        print(f"changed the password of {args.name}")
    elif command == "list":
        for user in store.users():
            memberships = ", ".join(f"{p}:{level}" for p, level in sorted(user.projects.items()))
            flags = " admin" if user.admin else ""
            print(f"{user.name}{flags}{'  ' + memberships if memberships else ''}")
    else:
        store.remove(args.name)
        print(f"removed {args.name}")
    return 0
