"""The statistics' compiled helpers (``_speedups.c``), when they can be used.

They are built at install where a C compiler is at hand (setup.py) and
do what their Python versions do, faster: the collector's fast way and
the request log's row encoder.  ``DIBBLE_NO_EXTENSIONS`` (any non-empty
value, read at import) makes dibble use the Python versions even when
they were built, to compare the two or to rule them out.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Final

__all__ = ["speedups"]


def _load() -> ModuleType | None:
    if os.environ.get("DIBBLE_NO_EXTENSIONS"):
        return None
    try:
        from . import _speedups
    except ImportError:  # not built: no C compiler at install, or another Python
        return None
    return _speedups


#: The compiled module, or None: the Python versions are in use.
speedups: Final = _load()
