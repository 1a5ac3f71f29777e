"""The data directory's health: is there room, and do writes work?

Writes that fail (`Database.storage_error`) and a data directory with less free space than the
options need (`Options.free_space_needed_bytes`) both make health ``degraded``, with a reason
that says how much space there is and how much is needed. After a failed write the watchdog
tries a small write every ``storage_retry_s``, so the service notices by itself (no restart)
when space is back; otherwise it looks at the free space every ``storage_check_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from vision_tutor_teacher.options import MEGABYTE, Options

from .database import Database, StorageError, Transaction


def _megabytes(value: int) -> str:
    return f"{value / MEGABYTE:.0f} MB"


def _free_bytes(path: os.PathLike[str]) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _touch(tx: Transaction) -> None:
    tx.bump("storage_checks")


class StorageWatch:
    """See the module docstring."""

    def __init__(self, db: Database, options: Options) -> None:
        self.db = db
        self.options = options
        self.free_bytes: int | None = None
        """Free space in the data directory at the last check."""

    def problem(self) -> str | None:
        """Why storage is not healthy, with the space there is and the space needed; or None."""
        needed = self.options.free_space_needed_bytes
        space = (
            f"the data directory {self.db.data_dir} has "
            f"{'an unknown amount' if self.free_bytes is None else _megabytes(self.free_bytes)} "
            f"free and needs at least {_megabytes(needed)} free "
            f"({_megabytes(self.options.data_dir_size_bytes)} in all with these options)"
        )
        if self.db.storage_error is not None:
            return f"{self.db.storage_error}; {space}"
        if self.free_bytes is not None and self.free_bytes < needed:
            return f"low on disk space: {space}"
        return None

    async def check(self) -> None:
        try:
            self.free_bytes = await asyncio.to_thread(_free_bytes, self.db.data_dir)
        except OSError:
            self.free_bytes = None
        if self.db.storage_error is not None:
            with contextlib.suppress(StorageError):
                await self.db.run(_touch)  # a success clears the database's storage error

    async def watch(self) -> None:
        while True:
            failing = self.db.storage_error is not None
            await asyncio.sleep(
                self.options.storage_retry_s if failing else self.options.storage_check_s
            )
            await self.check()
