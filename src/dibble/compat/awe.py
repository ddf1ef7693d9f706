"""The Astro-WISE web-services names, on top of dibble's templates and helpers.

Code written for the Astro-WISE ``HtmlTemplate``, ``HtmlUtil`` and
``TextUtil`` runs with only its imports changed::

    from dibble.compat.awe import HtmlTemplate, HtmlUtil, TextUtil

    template = HtmlTemplate("page.html")
    template.setVariable("TITLE", "Observations")
    for obs in observations:
        template.beginBlock("ROW")
        template.setBlockVariable("NAME", obs.name)
        template.setBlockVariable("SIZE", TextUtil.humanSize(obs.size))
        template.updateBlock("ROW")
    html = template.getHtml()

Everything here is a thin layer of old names over :class:`dibble.Template`
(``HtmlTemplate.template`` is the wrapped object) and the functions of
:mod:`dibble.html`, :mod:`dibble.text`, :mod:`dibble.colour` and
:mod:`dibble.sql`; behaviour, and its documentation, live there.

One difference is deliberate: values are HTML-escaped by default.  Markup
made by ``HtmlUtil`` is trusted and goes in unchanged; a string of HTML built
by hand must be wrapped in ``TrustedHTML(...)``, or the template made with
``autoescape=False`` to keep the old unescaped behaviour for a whole page.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Self

from ..colour import darken, join_colour, lighten, split_colour
from ..html import (
    TOOLTIP_CSS,
    TrustedHTML,
    escape,
    obfuscate_email,
    options,
    radio_buttons,
    select,
    tooltip,
    unescape,
)
from ..sql import count_query, paged_query
from ..templates import Template
from ..text import human_size

__all__ = ["HtmlTemplate", "HtmlUtil", "TextUtil", "TrustedHTML"]


def _pair(item: object) -> tuple[str, object]:
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[0]), item[1]
    raise TypeError(f"expected a (name, value) pair, got {item!r}")


class HtmlTemplate:
    """The Astro-WISE ``HtmlTemplate``: a template file filled block by block.

    ``HtmlTemplate(filename)`` reads the file; see :class:`dibble.Template`
    for the syntax and the fill model.  ``None`` values render as empty text.
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        warn_on_not_used_vars: bool = False,
        *,
        autoescape: bool = True,
        encoding: str = "utf-8",
    ) -> None:
        self._attach(
            Template.from_file(
                filename,
                encoding=encoding,
                autoescape=autoescape,
                warn_on_not_used_vars=warn_on_not_used_vars,
            )
        )

    def _attach(self, template: Template) -> None:
        self.template = template
        template._warning_depth = 1  # point warnings past this wrapper

    @classmethod
    def fromString(
        cls, text: str, warn_on_not_used_vars: bool = False, *, autoescape: bool = True
    ) -> Self:
        """A template from text instead of a file."""
        wrapper = cls.__new__(cls)
        wrapper._attach(
            Template(text, autoescape=autoescape, warn_on_not_used_vars=warn_on_not_used_vars)
        )
        return wrapper

    def setVariable(self, name: str, value: object) -> None:
        self.template.set_variable(name, value)

    def setVariableDict(self, values: Mapping[str, object]) -> None:
        self.template.set_variables(values)

    def setVariableList(
        self, names: Iterable[object], values: Iterable[object] | None = None
    ) -> None:
        """Set variables from ``(name, value)`` pairs, or from parallel names and values."""
        if values is None:
            pairs = [_pair(item) for item in names]
        else:
            pairs = [(str(name), value) for name, value in zip(names, values, strict=True)]
        self.template.set_variables(pairs)

    def beginBlock(self, name: str) -> None:
        self.template.begin_block(name)

    def setBlockVariable(self, name: str, value: object) -> None:
        self.template.set_block_variable(name, value)

    def setBlockVariableDict(self, values: Mapping[str, object]) -> None:
        self.template.set_block_variables(values)

    def updateBlock(self, name: str) -> None:
        self.template.update_block(name)

    def insertRepeatingBlock(self, name: str) -> None:
        self.template.update_block(name)

    def insertBlock(self, name: str, values: Mapping[str, object] | None = None) -> None:
        self.template.insert_block(name, values)

    def getHtml(self) -> str:
        return self.template.get_html()

    def saveHtml(self, filename: str | os.PathLike[str]) -> None:
        self.template.save(filename)

    def reset(self) -> None:
        self.template.reset()


def _choices(values: Iterable[object], labels: Iterable[object] | None) -> list[object]:
    if labels is None:
        return list(values)
    return list(zip(values, labels, strict=True))


class HtmlUtil:
    """The Astro-WISE ``HtmlUtil`` helpers; every one returns trusted markup or plain text."""

    escape = staticmethod(escape)
    unescape = staticmethod(unescape)
    getToolTip = staticmethod(tooltip)
    obfuscateEmail = staticmethod(obfuscate_email)
    splitColour = staticmethod(split_colour)
    joinColour = staticmethod(join_colour)
    darkenColour = staticmethod(darken)
    lightenColour = staticmethod(lighten)

    @staticmethod
    def getToolTipCss() -> TrustedHTML:
        """The style sheet the tooltips need, for a ``<style>`` element."""
        return TOOLTIP_CSS

    @staticmethod
    def getOptions(
        values: Iterable[object],
        selected: object = None,
        labels: Iterable[object] | None = None,
        disabled: object = None,
    ) -> TrustedHTML:
        """``<option>`` elements; ``labels`` is an optional list parallel to ``values``."""
        return options(_choices(values, labels), selected=selected, disabled=disabled)

    @staticmethod
    def getSelect(
        name: str,
        values: Iterable[object],
        selected: object = None,
        labels: Iterable[object] | None = None,
        disabled: object = None,
        multiple: bool = False,
        **attributes: object,
    ) -> TrustedHTML:
        """A ``<select>``; extra keyword arguments are attributes (``class_=`` for ``class``)."""
        return select(
            name,
            _choices(values, labels),
            selected=selected,
            disabled=disabled,
            multiple=multiple,
            attrs=attributes,
        )

    @staticmethod
    def getRadioButtons(
        name: str,
        values: Iterable[object],
        checked: object = None,
        labels: Iterable[object] | None = None,
        disabled: object = None,
        separator: str = "\n",
        **attributes: object,
    ) -> TrustedHTML:
        """Radio buttons, one per value; extra keyword arguments go on each ``<input>``."""
        return radio_buttons(
            name,
            _choices(values, labels),
            checked=checked,
            disabled=disabled,
            attrs=attributes,
            separator=separator,
        )


class TextUtil:
    """The Astro-WISE ``TextUtil`` helpers."""

    humanSize = staticmethod(human_size)
    getPagedQuery = staticmethod(paged_query)
    getCountQuery = staticmethod(count_query)

    @staticmethod
    def getSizeString(size: float) -> str:
        """Alias of :func:`dibble.text.human_size`."""
        return human_size(size)
