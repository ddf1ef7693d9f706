"""Turning path segments and request fields into a methlet's arguments.

A ``Binder`` is built once per methlet from its signature and type hints, so
a request only pays for the parameters the methlet actually declares; a
methlet without parameters never has its query string parsed.

Conversion follows the annotation: ``str`` (or none), ``int``, ``float``,
``bool``, ``list[...]`` of those, and ``X | None``.  A value that does not
convert is a ``ParameterError`` (400) naming the parameter, never a 500.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Union

from ._errors import ParameterError

Converter = Callable[[str], Any]

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def _to_int(text: str) -> int:
    text = text.strip()
    # int() accepts "1_000" and non-ASCII digits; a URL parameter should not.
    if not text or not text.lstrip("+-").isascii() or not text.lstrip("+-").isdigit():
        raise ValueError("expected an integer")
    return int(text)


def _to_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return value


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def _to_str(text: str) -> str:
    return text


_SCALARS: Final[dict[Any, Converter]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    Any: _to_str,
    object: _to_str,
}


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter: how to find it and how to convert it."""

    name: str
    convert: Converter
    is_list: bool
    required: bool
    positional: bool


def _converter_for(annotation: Any, where: str) -> tuple[Converter, bool]:
    """(converter, is_list) for an annotation; TypeError for unsupported ones."""
    if annotation is inspect.Parameter.empty:
        return _to_str, False
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{where}: only 'X | None' unions are supported, not {annotation}")
        return _converter_for(args[0], where)
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        convert, nested = _converter_for(item, where)
        if nested:
            raise TypeError(f"{where}: nested lists are not supported")
        return convert, True
    if annotation is list:
        return _to_str, True
    scalar = _SCALARS.get(annotation)
    if scalar is None:
        custom = getattr(annotation, "from_param", None)
        if callable(custom):
            return custom, False
        raise TypeError(
            f"{where}: cannot convert request parameters to {annotation!r} "
            "(use str, int, float, bool, list[...] or X | None)"
        )
    return scalar, False


class Binder:
    """Builds ``(args, kwargs)`` for one methlet from a request."""

    __slots__ = (
        "max_positional",
        "needs_params",
        "params",
        "var_keyword",
        "var_positional",
    )

    def __init__(self, func: Callable[..., Any], skip: int = 0) -> None:
        where = getattr(func, "__qualname__", repr(func))
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception as exc:
            raise TypeError(f"{where}: cannot resolve type hints: {exc}") from exc
        params: list[Param] = []
        self.var_positional: Param | None = None
        self.var_keyword = False
        for param in list(signature.parameters.values())[skip:]:
            annotation = hints.get(param.name, inspect.Parameter.empty)
            convert, is_list = _converter_for(annotation, f"{where}({param.name})")
            required = param.default is inspect.Parameter.empty
            if param.kind is param.VAR_POSITIONAL:
                self.var_positional = Param(param.name, convert, False, False, True)
            elif param.kind is param.VAR_KEYWORD:
                self.var_keyword = True
            else:
                positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
                params.append(Param(param.name, convert, is_list, required, positional))
        self.params = tuple(params)
        self.max_positional = sum(1 for p in params if p.positional)
        self.needs_params = bool(params) or self.var_keyword

    def accepts_segments(self, count: int) -> bool:
        """Whether ``count`` extra path segments can be passed positionally."""
        return count <= self.max_positional or self.var_positional is not None

    def bind(
        self, segments: tuple[str, ...], fields: dict[str, list[str]]
    ) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        used = 0
        for param in self.params:
            if used < len(segments) and param.positional:
                args.append(_convert(param, [segments[used]]))
                used += 1
                continue
            values = fields.get(param.name)
            if values is None:
                if param.required:
                    raise ParameterError(param.name, "missing")
                continue
            kwargs[param.name] = _convert(param, values)
        if used < len(segments):
            extra = self.var_positional
            assert extra is not None  # accepts_segments() was checked by routing
            args.extend(_convert(extra, [s]) for s in segments[used:])
        if self.var_keyword:
            for name, values in fields.items():
                if name not in kwargs and not any(p.name == name for p in self.params):
                    kwargs[name] = values[-1] if len(values) == 1 else list(values)
        return args, kwargs


def _convert(param: Param, values: list[str]) -> Any:
    try:
        if param.is_list:
            return [param.convert(v) for v in values]
        return param.convert(values[-1])
    except ValueError as exc:
        shown = values[-1] if len(values[-1]) <= 40 else values[-1][:37] + "..."
        raise ParameterError(param.name, f"{exc} (got {shown!r})") from None
