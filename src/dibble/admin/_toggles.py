"""Runtime toggles: switches an administrator flips without a restart.

``verbose`` (the error log at DEBUG level), ``sql_log`` (every SQL
statement to the ``dibble.sql`` logger) and ``performance_log`` (time per
request to ``dibble.performance``).  The switching itself is
``dibble.stats``'s (``set_toggle``, ``toggles``), which also arranges what
a log needs (a file of its own, the timing of requests); this module adds
what the Config page calls them and refuses names that are not toggles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .. import stats

if TYPE_CHECKING:
    from ..app import HTTPServer

__all__ = ["TOGGLES", "set_toggle", "toggle_states"]

#: The toggles, with what the Config page calls them.
TOGGLES: Final = {
    "verbose": "Verbose error log (DEBUG level)",
    "sql_log": "SQL log (every statement)",
    "performance_log": "Performance log (time per request)",
}


def toggle_states(server: HTTPServer) -> dict[str, bool]:
    """Each toggle's state now."""
    states = stats.toggles(server)
    return {name: bool(states.get(name, False)) for name in TOGGLES}


def set_toggle(server: HTTPServer, name: str, on: bool) -> None:
    """Turn toggle ``name`` on or off; ValueError for a name that is not one."""
    if name not in TOGGLES:
        raise ValueError(f"no toggle named {name!r} (known: {', '.join(TOGGLES)})")
    stats.set_toggle(server, name, on)
