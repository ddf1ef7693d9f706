"""Log set-up for the command line: errors to stderr, access lines to stdout."""

from __future__ import annotations

import logging
import sys


def configure_logging(*, test_mode: bool, access_log: bool) -> None:
    """Send ``dibble.error`` to stderr and ``dibble.access`` to stdout.

    Test mode lowers the error log to DEBUG.  Called by ``dibble serve``;
    programs that embed dibble configure the two loggers as they like.
    """
    error = logging.getLogger("dibble")
    if not any(getattr(h, "_dibble", False) for h in error.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._dibble = True  # type: ignore[attr-defined]
        error.addHandler(handler)
    error.setLevel(logging.DEBUG if test_mode else logging.INFO)

    access = logging.getLogger("dibble.access")
    access.propagate = False
    if access_log and not access.handlers:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(out)
    access.setLevel(logging.INFO if access_log else logging.WARNING)
