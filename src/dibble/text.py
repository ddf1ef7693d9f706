"""Text helpers for pages: human-readable sizes."""

from __future__ import annotations

__all__ = ["human_size"]

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def human_size(size: float, *, precision: int = 1) -> str:
    """A byte count as people read it: ``1536`` → ``"1.5 KB"``, ``3 * 2**30`` → ``"3.0 GB"``.

    Units are powers of 1024 labelled B, KB, MB, GB, TB, PB, EB (the labels
    file listings have always used).  Sizes under 1 KB are whole bytes
    (``"512 B"``); larger ones have ``precision`` decimals.  A value that
    would round up to 1024 of a unit is shown in the next unit instead
    (``"1.0 MB"``, never ``"1024.0 KB"``).  Negative sizes keep their sign.
    """
    if precision < 0:
        raise ValueError("precision must not be negative")
    sign = "-" if size < 0 else ""
    value = float(abs(size))
    if value < 1024:
        return f"{sign}{int(value)} B"
    unit = 0
    while unit < len(_UNITS) - 1 and round(value, precision) >= 1024:
        value /= 1024
        unit += 1
    return f"{sign}{value:.{precision}f} {_UNITS[unit]}"
