"""A read-only, case-insensitive view of a request's header fields.

The parser keeps headers as a list of ``(lower-cased name, value)`` byte pairs
in arrival order; this class decodes lazily (latin-1, as RFC 9110 asks) and
only when application code looks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar, overload

_T = TypeVar("_T")


class Headers(Mapping[str, str]):
    """Header fields by name, case-insensitively; repeated fields join with ", "."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The fields as received: lower-cased names, undecoded values."""
        return self._raw

    def _decoded(self) -> dict[str, str]:
        if self._map is None:
            joined: dict[str, str] = {}
            for name, value in self._raw:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                if key in joined:
                    # Cookie fields are joined with "; " (RFC 6265), others with ", ".
                    sep = "; " if key == "cookie" else ", "
                    joined[key] = joined[key] + sep + text
                else:
                    joined[key] = text
            self._map = joined
        return self._map

    def __getitem__(self, name: str) -> str:
        return self._decoded()[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...

    def get(self, name: str, /, default: object = None) -> object:
        # Mapping.get would look up through __getitem__ and catch a KeyError:
        # a raised exception for every absent field (If-None-Match, Range...).
        return self._decoded().get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in arrival order, unjoined."""
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for n, value in self._raw if n == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._decoded()

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return f"Headers({self._raw!r})"
