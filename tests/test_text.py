"""dibble.text.human_size."""

from __future__ import annotations

import pytest

from dibble.text import human_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (1536, "1.5 KB"),
        (int(1.5 * 2**20), "1.5 MB"),
        (3 * 2**30, "3.0 GB"),
        (2**40, "1.0 TB"),
        (5 * 2**50, "5.0 PB"),
        (2**70, "1024.0 EB"),
        (2**20 - 1, "1.0 MB"),
        (2**20 - 52, "1023.9 KB"),
        (-1536, "-1.5 KB"),
        (1536.7, "1.5 KB"),
    ],
)
def test_human_size(size: float, shown: str) -> None:
    assert human_size(size) == shown


def test_precision() -> None:
    assert human_size(1_234_567, precision=2) == "1.18 MB"
    assert human_size(1_234_567, precision=0) == "1 MB"
    with pytest.raises(ValueError, match="precision"):
        human_size(1, precision=-1)
