"""The secret key file: made once with mode 0600, then reused."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from dibble.ops import load_or_create_secret


def test_created_private_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "nested"
    key = load_or_create_secret(folder)
    assert len(key) >= 32
    path = folder / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    assert load_or_create_secret(folder) == key
    assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no temporary left


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_bytes(b"short")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        load_or_create_secret(tmp_path)


def test_a_readable_key_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secret_key"
    path.write_bytes(b"k" * 40)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "dibble.error"):
        assert load_or_create_secret(tmp_path) == b"k" * 40
    assert "readable by other users" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_an_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            load_or_create_secret(tmp_path / "data")
    finally:
        tmp_path.chmod(0o700)


def test_a_file_in_place_of_the_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(OSError):  # noqa: PT011 - NotADirectoryError or FileExistsError
        load_or_create_secret(tmp_path / "data")
