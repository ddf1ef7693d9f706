"""The machinery behind the configuration: sections declared as dataclasses.

A section is a frozen dataclass whose fields are its settings.  The field's
type says what TOML value it takes, its default is the default, and an
optional check in the field's metadata validates the value further::

    @dataclass(frozen=True, slots=True)
    class MailSection:
        host: str = ""
        port: int = setting(25, check=port_number)

Everything else (reading a TOML table into the dataclass, the error
message that names the key, printing the effective configuration as TOML,
knowing which keys a file set) is derived from those declarations here, so
adding a section is declaring it and adding it to ``Config``.

Supported types: ``str``, ``int``, ``float`` (an integer is accepted),
``bool``, ``Literal[...]`` of strings, ``tuple[T, ...]`` (a TOML array),
``dict[str, T]`` (a TOML table with free keys) and nested section
dataclasses.  TOML's own types are kept strictly: ``"8080"`` is not an
integer and ``1`` is not ``true``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "ConfigError",
    "Origin",
    "describe_value",
    "dump_toml",
    "parse_section",
    "section_fields",
    "setting",
]

Check = Callable[[Any], None]


class ConfigError(Exception):
    """A configuration problem, naming the setting: ``[server] port: expected ...``."""

    def __init__(self, where: str, problem: str, *, source: str | None = None) -> None:
        self.where = where
        self.problem = problem
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        return f"{text} (in {self.source})" if self.source else text


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a section's table sits: ``[vhosts.hosts."a.example"]`` and its dotted key."""

    header: str
    key: str

    def child(self, name: str) -> Origin:
        bare = _BARE_KEY.fullmatch(name) is not None
        part = name if bare else json.dumps(name)
        return Origin(f"{self.header}.{part}", f"{self.key}.{name}")

    def setting(self, name: str) -> str:
        return f"[{self.header}] {_quote_key(name)}"


def setting(default: Any, *, check: Check | None = None) -> Any:
    """A dataclass field with an immutable ``default`` and a ``check`` raising ValueError.

    (Mutable defaults, such as a dict, need ``field(default_factory=...,
    metadata={"check": ...})``.)
    """
    metadata = {"check": check} if check is not None else {}
    return dataclasses.field(default=default, metadata=metadata)


_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def describe_value(value: Any) -> str:
    """A value as the message shows it: TOML-like, strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_section(cls: type[Any], table: Any, origin: Origin, given: set[str]) -> Any:
    """An instance of section ``cls`` from a TOML ``table``; ConfigError naming the key.

    The dotted names of the settings the table set are added to ``given``.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"[{origin.header}]", f"expected a table, got {describe_value(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ConfigError(origin.setting(key), f"unknown setting (known: {known})")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in table:
            continue
        where = origin.setting(name)
        value = convert(hints[name], table[name], where, origin.child(name), given)
        check = field.metadata.get("check")
        if check is not None:
            try:
                check(value)
            except ValueError as exc:
                raise ConfigError(where, str(exc)) from None
        values[name] = value
        given.add(f"{origin.key}.{name}")
    try:
        return cls(**values)
    except ValueError as exc:  # a rule across settings, from __post_init__
        raise ConfigError(f"[{origin.header}]", str(exc)) from None


def convert(tp: Any, value: Any, where: str, origin: Origin, given: set[str]) -> Any:
    """``value`` checked against type ``tp``; ConfigError mentioning ``where``."""
    origin_type = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(where, f"expected true or false, got {describe_value(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(where, f"expected an integer, got {describe_value(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ConfigError(where, f"expected a finite number, got {describe_value(value)}")
            return number
        raise ConfigError(where, f"expected a number, got {describe_value(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(where, f"expected a string, got {describe_value(value)}")
    if origin_type is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[0]):
            return value
        shown = ", ".join(describe_value(c) for c in choices)
        raise ConfigError(where, f"expected one of {shown}, got {describe_value(value)}")
    if origin_type is tuple:
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise ConfigError(where, f"expected an array, got {describe_value(value)}")
        return tuple(
            convert(item_type, item, f"{where}[{i}]", origin, given)
            for i, item in enumerate(value)
        )
    if origin_type is dict:
        item_type = typing.get_args(tp)[1]
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a table, got {describe_value(value)}")
        if isinstance(item_type, type) and dataclasses.is_dataclass(item_type):
            return {
                key: parse_section(item_type, item, origin.child(key), set())
                for key, item in value.items()
            }
        return {
            key: convert(item_type, item, f"{where}.{_quote_key(key)}", origin, given)
            for key, item in value.items()
        }
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return parse_section(tp, value, origin, given)
    raise TypeError(f"configuration type {tp!r} is not supported")  # a bug in a section


def _quote_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


# --- printing -------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string with non-ASCII kept is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _tables(value: Any, header: str) -> Iterator[tuple[str, list[str]]]:
    """(table header, its ``key = value`` lines) for a section, sub-tables after."""
    lines: list[str] = []
    later: list[tuple[str, Any]] = []
    items: Mapping[str, Any]
    if dataclasses.is_dataclass(value):
        items = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    else:
        items = value
    for key, item in items.items():
        if dataclasses.is_dataclass(item) or isinstance(item, dict):
            later.append((key, item))
        else:
            lines.append(f"{_quote_key(key)} = {_toml_value(item)}")
    yield header, lines
    for key, item in later:
        sections = isinstance(item, dict) and all(
            dataclasses.is_dataclass(v) for v in item.values()
        )
        if sections and item:
            for name, sub in item.items():
                yield from _tables(sub, f"{header}.{_quote_key(key)}.{_quote_key(name)}")
        elif isinstance(item, dict) and not item and _is_section_map(value, key):
            continue  # an empty table of sub-sections prints as nothing
        else:
            yield from _tables(item, f"{header}.{_quote_key(key)}")


def _is_section_map(owner: Any, key: str) -> bool:
    if not dataclasses.is_dataclass(owner):
        return False
    hint = _hints(type(owner)).get(key)
    args = typing.get_args(hint)
    return typing.get_origin(hint) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1])


def section_fields(cls: Any) -> list[dataclasses.Field[Any]]:
    """The fields of a configuration class that are sections (not internal data)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def dump_toml(config: Any) -> str:
    """A configuration (a dataclass of sections) as a TOML document."""
    out: list[str] = []
    for field in section_fields(config):
        for header, lines in _tables(getattr(config, field.name), _quote_key(field.name)):
            if out:
                out.append("")
            out.append(f"[{header}]")
            out.extend(lines)
    return "\n".join(out) + "\n"
