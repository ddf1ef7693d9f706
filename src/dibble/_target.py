"""Finding what ``dibble serve TARGET`` should serve.

TARGET is ``module:attr``, ``module``, ``path/file.py`` or ``path/file.py:attr``.
The attribute (or, without one, what the module defines) may be an
``HTTPServer``, a plugin instance, a plugin class (instantiated with no
arguments), or a list of plugins.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .app import HTTPServer, Plugin


class TargetError(Exception):
    """TARGET cannot be imported or does not name anything servable."""


@dataclass
class Target:
    """What was found: either servers (already configured in code) or plugins."""

    servers: list[HTTPServer] = field(default_factory=list)
    plugins: list[Plugin] = field(default_factory=list)


def load_target(spec: str) -> Target:
    module_part, _, attr = _split(spec)
    module = _import(module_part)
    if attr:
        try:
            value = getattr(module, attr)
        except AttributeError:
            raise TargetError(f"{module_part!r} has no attribute {attr!r}") from None
        return _from_value(value, f"{module_part}:{attr}")
    return _from_module(module, module_part)


def _split(spec: str) -> tuple[str, str, str]:
    if not spec:
        raise TargetError("empty TARGET")
    # A Windows drive letter would be the only colon before a path separator.
    head, sep, attr = spec.rpartition(":")
    if not sep or "/" in attr or "\\" in attr or attr.endswith(".py"):
        return spec, "", ""
    if not attr.isidentifier():
        raise TargetError(f"{attr!r} is not a valid attribute name")
    return head, sep, attr


def _import(name: str) -> ModuleType:
    if name.endswith(".py") or os.sep in name or "/" in name:
        return _import_file(name)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise TargetError(f"cannot import module {name!r}: {exc}") from exc
    except Exception as exc:
        raise TargetError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(path: str) -> ModuleType:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise TargetError(f"no such file: {path}")
    directory = os.path.dirname(full)
    stem = os.path.splitext(os.path.basename(full))[0]
    # Use the file's own name unless that would shadow a standard or already
    # imported module (examples/calendar.py must not replace ``calendar``).
    name = stem
    if not stem.isidentifier() or stem in sys.stdlib_module_names or stem in sys.modules:
        name = f"_dibble_target_{abs(hash(full)):x}"
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Sibling modules of the file are importable, but never ahead of the
    # standard library or installed packages.
    if directory not in sys.path:
        sys.path.append(directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TargetError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _from_value(value: Any, where: str) -> Target:
    if isinstance(value, HTTPServer):
        return Target(servers=[value])
    if isinstance(value, list | tuple):
        plugins = [_plugin(v, where) for v in value]
        if not plugins:
            raise TargetError(f"{where} is an empty list")
        return Target(plugins=plugins)
    return Target(plugins=[_plugin(value, where)])


def _plugin(value: Any, where: str) -> Plugin:
    if isinstance(value, Plugin):
        return value
    if inspect.isclass(value) and issubclass(value, Plugin):
        try:
            return value()
        except TypeError as exc:
            raise TargetError(
                f"cannot create {value.__name__}() without arguments: {exc}"
            ) from exc
    raise TargetError(
        f"{where} is {type(value).__name__}, not an HTTPServer, a dibble.Plugin, "
        "a Plugin class or a list of plugins"
    )


def _from_module(module: ModuleType, where: str) -> Target:
    values = list(vars(module).values())
    servers = [v for v in values if isinstance(v, HTTPServer)]
    if servers:
        return Target(servers=servers)
    plugins = [v for v in values if isinstance(v, Plugin)]
    if plugins:
        return Target(plugins=plugins)
    classes = [
        v
        for v in values
        if inspect.isclass(v)
        and issubclass(v, Plugin)
        and v.__module__ == module.__name__
        and not inspect.isabstract(v)
    ]
    if classes:
        return Target(plugins=[_plugin(c, where) for c in classes])
    raise TargetError(
        f"{where} defines no HTTPServer, plugin or Plugin subclass; name one as {where}:NAME"
    )
