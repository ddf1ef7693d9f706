"""dibble.sql: paging any query, checked against a real SQLite database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from dibble.sql import count_query, page_bounds, paged_query


@pytest.fixture
def database() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (n INTEGER, name TEXT)")
    connection.executemany("INSERT INTO t VALUES (?, ?)", [(n, f"row {n}") for n in range(50)])
    yield connection
    connection.close()


QUERY = "SELECT n, name FROM t WHERE n % 2 = 0 ORDER BY n DESC;"


def test_paged_query_returns_the_slice(database: sqlite3.Connection) -> None:
    everything = database.execute(QUERY).fetchall()
    for start, stop in [(0, 5), (5, 10), (20, 30), (24, 40), (3, 3)]:
        rows = database.execute(paged_query(QUERY, start, stop)).fetchall()
        assert rows == everything[start:stop]


def test_paged_query_text() -> None:
    assert paged_query("SELECT 1 ;  ", 20, 40) == (
        "SELECT * FROM (SELECT 1) dibble_page LIMIT 20 OFFSET 20"
    )
    assert paged_query("SELECT 1", 20, 40, style="fetch") == (
        "SELECT * FROM (SELECT 1) dibble_page OFFSET 20 ROWS FETCH NEXT 20 ROWS ONLY"
    )


def test_query_with_its_own_limit_and_union(database: sqlite3.Connection) -> None:
    query = "SELECT n FROM t WHERE n < 3 UNION ALL SELECT n FROM t WHERE n > 47 LIMIT 4"
    assert database.execute(paged_query(query, 1, 3)).fetchall() == [(1,), (2,)]


def test_count_query(database: sqlite3.Connection) -> None:
    assert database.execute(count_query(QUERY)).fetchone() == (25,)


@pytest.mark.parametrize(
    ("start", "stop"), [(-1, 5), (5, 4), (1.5, 3), (True, 3), (0, "9"), (0, None)]
)
def test_bad_bounds(start: object, stop: object) -> None:
    with pytest.raises(ValueError, match=r"start|stop"):
        paged_query("SELECT 1", start, stop)  # type: ignore[arg-type]


def test_bad_query_and_style() -> None:
    with pytest.raises(ValueError, match="empty query"):
        paged_query(" ; ", 0, 1)
    with pytest.raises(ValueError, match="paging style"):
        paged_query("SELECT 1", 0, 1, style="rownum")  # type: ignore[arg-type]


def test_page_bounds() -> None:
    assert page_bounds(1, 20) == (0, 20)
    assert page_bounds(3, 20) == (40, 60)
    for page, per_page in [(0, 20), (1, 0), (True, 5), (2, 2.5)]:
        with pytest.raises(ValueError, match="page"):
            page_bounds(page, per_page)  # type: ignore[arg-type]
