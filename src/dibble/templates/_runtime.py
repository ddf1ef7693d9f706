"""The few functions that compiled templates call while rendering.

They are on the hot path (``escape_value`` runs once per inserted value), so
they are written for speed: exact-type checks before anything general, no
allocation for a value that needs no escaping.  Their behaviour is the
contract documented for template users:

* ``None`` renders as the empty string; every other value is ``str(value)``;
* with autoescape, ``& < > " '`` are replaced by character references,
  unless the value is trusted HTML (it has an ``__html__`` method, like
  :class:`dibble.html.TrustedHTML`);
* a block value is a list (or any iterable) of mappings; ``None`` and
  ``False`` mean zero repetitions, ``True`` one repetition with no values of
  its own, a single mapping one repetition.  Rows that are not dicts but
  mappings, or row objects with ``keys()`` (``sqlite3.Row``), are copied to
  dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..html import escape_text
from ._errors import TemplateValueError

__all__ = ["as_row", "block_rows", "escape_value", "text_value"]


def escape_value(value: Any) -> str:
    """``value`` as HTML-escaped text (the autoescape filter compiled into templates).

    ``value`` is typed ``Any`` on purpose: the exact-class checks below are
    the fast path and mypy cannot narrow on ``__class__``.
    """
    if value.__class__ is str:
        # escape_text(), inlined: this line runs once per value rendered.
        if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
            return (
                value.replace("&", "&amp;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
                .replace('"', "&#34;")
                .replace("'", "&#39;")
            )
        return value
    if value is None:
        return ""
    # The decimal text of an int or a float never contains a special character.
    if value.__class__ is int or value.__class__ is float:
        return str(value)
    html_method = getattr(value, "__html__", None)
    if html_method is not None:
        # str() turns a str subclass (Markup, TrustedHTML) into an exact str,
        # which the f-strings in compiled code format fastest.
        return str(html_method())
    return escape_text(str(value))


def text_value(value: object) -> str:
    """``value`` as text without escaping (templates compiled with ``autoescape=False``)."""
    if value is None:
        return ""
    return str(value)


_NO_ROWS: tuple[dict[str, object], ...] = ()
_ONE_EMPTY_ROW: tuple[dict[str, object], ...] = ({},)


def block_rows(value: object, block: str, template: str, line: int) -> Iterable[object]:
    """The repetitions of ``block`` for the value given for it."""
    # Exact-class test first: it is the common case and several times cheaper
    # than isinstance with a union of classes.
    if value.__class__ is list or isinstance(value, list | tuple):
        return value
    if value is None or value is False:
        return _NO_ROWS
    if value is True:
        return _ONE_EMPTY_ROW
    if isinstance(value, Mapping):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray):
        return value
    raise TemplateValueError(
        f"block {block} needs a list of mappings (or None, True/False, one mapping), "
        f"got {type(value).__name__}",
        template=template,
        line=line,
    )


def as_row(row: object, block: str, template: str, line: int) -> dict[str, object]:
    """A repetition's values as a dict (compiled code calls this only for non-dicts)."""
    if isinstance(row, Mapping):
        return dict(row)
    keys = getattr(row, "keys", None)
    if keys is not None:
        try:
            return {key: row[key] for key in keys()}  # type: ignore[index]
        except (TypeError, KeyError, IndexError):
            pass
    raise TemplateValueError(
        f"a row of block {block} must be a mapping, got {type(row).__name__}",
        template=template,
        line=line,
    )
