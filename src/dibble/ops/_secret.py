"""The server's secret key: made once, kept private, reused on every start.

The key signs url objects (and, later, sessions and login tokens), so it
must survive restarts and be shared by every worker, yet never be readable
by other users.  It is stored as ``secret_key`` in the data directory: made
with ``secrets`` on the first start, written to a temporary file created
with mode 0600 and renamed into place (so a crash or a second process never
sees half a key), and refused if it is later found too short.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from typing import Final

__all__ = ["KEY_FILE", "MIN_KEY_BYTES", "load_or_create_secret"]

error_log: Final = logging.getLogger("dibble.error")

KEY_FILE: Final = "secret_key"
MIN_KEY_BYTES: Final = 32


def load_or_create_secret(directory: str | os.PathLike[str]) -> bytes:
    """The key stored in ``directory``, creating both when missing.

    Raises ``OSError`` when the directory or file cannot be made or read,
    and ``ValueError`` for a key file that is too short.
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, KEY_FILE)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = secrets.token_urlsafe(48).encode("ascii")
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(key + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            # link() fails if another process made the key meanwhile; then
            # theirs is the one everybody uses.
            os.link(temporary, path)
        except FileExistsError:
            return _read(path)
    finally:
        os.unlink(temporary)
    error_log.info("created a new secret key in %s", path)
    return key


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        key = file.read(4096).strip()
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        error_log.warning("the secret key file %s is readable by other users; chmod 600 it", path)
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the secret key in {path} is shorter than {MIN_KEY_BYTES} bytes")
    return key
