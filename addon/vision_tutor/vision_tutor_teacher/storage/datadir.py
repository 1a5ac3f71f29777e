"""The data directory's own files: the lock that keeps a second service out, and the API token.

The data directory is locked with ``flock`` while the database is open: two services on one queue
would review everything twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
import secrets
from typing import IO, Final

_LOGGER = logging.getLogger(__name__)

TOKEN_FILE: Final = "token"
LOCK_FILE: Final = "lock"
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


class DataDirLocked(Exception):
    """Another service already uses this data directory."""


def secure(data_dir: Path) -> None:
    """Owner-only access: the directory 0700, every file in it 0600 (frames are private).

    Run on every start, so a data directory restored from a backup or made by an older version
    is tightened too. Blocking: the database thread's.
    """
    data_dir.chmod(DIR_MODE)
    for path in data_dir.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(FILE_MODE)


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    data_dir.chmod(DIR_MODE)
    fd = os.open(data_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    handle = os.fdopen(fd, "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirLocked(f"another Vision Tutor service is using {data_dir}") from None
    return handle


def load_or_create_token(data_dir: Path) -> str:
    """The API token: generated on first start, then read back on every start (blocking).

    Written to a temporary file, fsynced and renamed, so a crash during the first start never
    leaves an empty token behind.
    """
    path = data_dir / TOKEN_FILE
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    _LOGGER.info("Generated a new API token in %s", path)
    return token
