"""Reading the configuration: a TOML file, merged with command-line settings.

``load_config(path, overrides)`` reads the file, lays the overrides (dotted
keys such as ``"server.port"``, from the command line) over it so that the
command line wins, and validates the result in one pass.  The first
problem found raises :class:`ConfigError` naming the setting, e.g.
``[server] port: expected an integer, got "abc"``.

Relative paths in the file are taken relative to the file's folder, so a
service can be started from anywhere; ``[paths] root`` defaults to that
folder.  The folder is also appended to ``sys.path`` (after everything
else, so it can never shadow the standard library), which lets
``[services]`` name modules that sit next to the file.  Every service's
import path is imported here, so a typo fails at start with the key named,
not at the first request.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import tomllib
import typing
from collections.abc import Mapping
from typing import Any

from ._schema import ConfigError, Origin, convert, describe_value, parse_section, section_fields
from ._sections import Config, url_name

__all__ = ["import_object", "load_config", "parse_config"]


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    check_imports: bool = True,
) -> Config:
    """The configuration in TOML file ``path`` (None: defaults) with ``overrides`` on top."""
    if path is None:
        return parse_config({}, overrides=overrides, check_imports=check_imports)
    shown = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(shown, f"cannot read it: {exc.strerror or exc}") from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, f"not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, f"not valid TOML: {exc}") from None
    base = os.path.dirname(os.path.abspath(shown))
    if check_imports and base not in sys.path:
        sys.path.append(base)
    try:
        config = parse_config(
            table, base_dir=base, overrides=overrides, check_imports=check_imports
        )
    except ConfigError as exc:
        exc.source = shown
        raise
    return dataclasses.replace(config, source=shown)


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    check_imports: bool = True,
) -> Config:
    """A :class:`Config` from a dict shaped like the TOML file.

    ``base_dir`` is what relative paths are relative to (and the default
    ``[paths] root``); without it they are relative to the working folder
    and there is no default root.
    """
    table = _merge(data, overrides or {})
    fields = {f.name: f for f in section_fields(Config)}
    for name, value in table.items():
        if name not in fields:
            if not isinstance(value, dict):
                raise ConfigError(
                    name, "settings belong in a section (such as [server]), not at the top"
                )
            raise ConfigError(f"[{name}]", f"unknown section (known: {', '.join(fields)})")
    hints = typing.get_type_hints(Config)
    given: set[str] = set()
    sections: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in table:
            continue
        tp = hints[name]
        origin = Origin(name, name)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            sections[name] = parse_section(tp, table[name], origin, given)
        else:
            sections[name] = _free_table(tp, table[name], origin, given)
        check = field.metadata.get("check")
        if check is not None:
            try:
                check(sections[name])
            except ValueError as exc:
                raise ConfigError(f"[{name}]", str(exc)) from None
    config = Config(**sections, given=frozenset(given))
    config = _resolve_paths(config, base_dir)
    if check_imports:
        for name, target in config.services.items():
            try:
                import_object(target)
            except ImportError as exc:
                raise ConfigError(f"[services] {name}", str(exc)) from None
    return config


def _free_table(tp: Any, value: Any, origin: Origin, given: set[str]) -> dict[str, Any]:
    """A section whose keys are free (``[services]``), each value checked."""
    if not isinstance(value, dict):
        raise ConfigError(f"[{origin.header}]", f"expected a table, got {describe_value(value)}")
    item_type = typing.get_args(tp)[1]
    result: dict[str, Any] = {}
    for key, item in value.items():
        where = origin.setting(key)
        try:
            url_name(key)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
        result[key] = convert(item_type, item, where, origin.child(key), given)
        given.add(f"{origin.key}.{key}")
    given.add(origin.key)
    return result


def _merge(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with dotted-key ``overrides`` laid over it (copies, not changes)."""
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        table = merged.setdefault(section, {})
        if isinstance(table, dict):
            table[key] = value
    return merged


def _resolve_paths(config: Config, base_dir: str | None) -> Config:
    def absolute(path: str, against: str | None) -> str:
        if not path:
            return ""
        path = os.path.expanduser(path)
        if against is not None and not os.path.isabs(path):
            path = os.path.join(against, path)
        return os.path.abspath(path)

    paths = config.paths
    root = absolute(paths.root, base_dir) if paths.root else (base_dir or "")
    paths = dataclasses.replace(
        paths,
        root=root,
        templates=absolute(paths.templates, base_dir),
        data_dir=absolute(paths.data_dir, base_dir),
    )
    logging = dataclasses.replace(
        config.logging, directory=absolute(config.logging.directory, base_dir)
    )
    maintenance = config.maintenance
    if root and not os.path.isabs(maintenance.file):
        maintenance = dataclasses.replace(maintenance, file=os.path.join(root, maintenance.file))
    return dataclasses.replace(config, paths=paths, logging=logging, maintenance=maintenance)


def import_object(spec: str) -> Any:
    """The object a ``"module:attr"`` import path names; ImportError saying why not."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ImportError(f'expected "module:attr", got {describe_value(spec)}')
    if not all(part.isidentifier() for part in module_name.split(".")) or not all(
        part.isidentifier() for part in attr.split(".")
    ):
        raise ImportError(f'expected "module:attr", got {describe_value(spec)}')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import {describe_value(spec)}: {exc}") from None
    except Exception as exc:
        raise ImportError(
            f"importing {describe_value(module_name)} failed: {type(exc).__name__}: {exc}"
        ) from None
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ImportError(
                f"cannot import {describe_value(spec)}: "
                f"{describe_value(module_name)} has no attribute {describe_value(attr)}"
            ) from None
    return value
