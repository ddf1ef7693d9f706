"""SQL paging: wrap any query so that it returns rows *start* to *stop*.

``paged_query(sql, 20, 40)`` returns the 21st to 40th row of ``sql`` (the
bounds work like a Python slice: zero-based, ``stop`` excluded).  The query
is wrapped, not edited, so it may have its own ``ORDER BY``, ``UNION`` or
``LIMIT``::

    SELECT * FROM (<query>) dibble_page LIMIT 20 OFFSET 20

That form is understood by SQLite, PostgreSQL and MySQL/MariaDB, and both
SQLite and PostgreSQL keep the order of the inner query for such a plain
wrapper.  ``style="fetch"`` gives the SQL:2008 form
(``OFFSET 20 ROWS FETCH NEXT 20 ROWS ONLY``) for PostgreSQL, Oracle 12c and
later, and SQL Server.  The table alias is written without ``AS`` because
Oracle refuses it there.

The bounds are validated integers written into the SQL; the query itself is
the caller's SQL and is never built from user input here.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["count_query", "page_bounds", "paged_query"]


def _strip(query: str) -> str:
    stripped = query.strip().rstrip(";").rstrip()
    if not stripped:
        raise ValueError("empty query")
    return stripped


def _check_bound(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def paged_query(
    query: str, start: int, stop: int, *, style: Literal["limit", "fetch"] = "limit"
) -> str:
    """``query`` wrapped to return its rows ``start`` (included) to ``stop`` (excluded)."""
    first = _check_bound("start", start)
    end = _check_bound("stop", stop)
    if end < first:
        raise ValueError(f"stop ({end}) is before start ({first})")
    inner = _strip(query)
    if style == "limit":
        # S608: the bounds are validated ints and the query is the caller's own SQL.
        return f"SELECT * FROM ({inner}) dibble_page LIMIT {end - first} OFFSET {first}"  # noqa: S608
    if style == "fetch":
        return (
            f"SELECT * FROM ({inner}) dibble_page "  # noqa: S608
            f"OFFSET {first} ROWS FETCH NEXT {end - first} ROWS ONLY"
        )
    raise ValueError(f"unknown paging style {style!r}; use 'limit' or 'fetch'")


def count_query(query: str) -> str:
    """A query counting the rows of ``query``: the total a pager shows."""
    return f"SELECT COUNT(*) FROM ({_strip(query)}) dibble_count"  # noqa: S608


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    """The ``(start, stop)`` of 1-based page number ``page`` for :func:`paged_query`."""
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise ValueError(f"page must be an int of at least 1, got {page!r}")
    if not isinstance(per_page, int) or isinstance(per_page, bool) or per_page < 1:
        raise ValueError(f"per_page must be an int of at least 1, got {per_page!r}")
    start = (page - 1) * per_page
    return start, start + per_page
