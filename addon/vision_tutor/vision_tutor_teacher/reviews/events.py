"""The ordered, resumable event log (its Server-Sent Events stream is `api.events`).

Events are rows of the database (see `vision_tutor_teacher.storage`), appended in the transaction
that makes the change they announce, and numbered by a monotonic sequence: the cursor. A client
that reconnects with the last sequence number it saw (``?after=`` or the standard
``Last-Event-ID`` header) receives every later event exactly once, in order, because the stream
is read back from the log rather than from an in-memory fan-out that a disconnect would lose.

Types: ``review`` (a status change), ``verdict`` (the teacher's verdict), ``stats`` (queue and
teacher statistics, at most once per ``stats_interval_s`` and only when they changed), ``prompt``
(the prompt lab's active prompt changed) and ``job`` (a lab job's progress). Each stream starts
with a ``hello`` event without an ``id:`` (it is not in the log): the database's id and the
log's last sequence number, so that a client whose saved cursor is about another database, or
is above everything this one has (restored from an older backup), knows to start again from 0.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Final

from vision_tutor_teacher.storage.database import Database, Transaction

MAX_CURSOR: Final = 2**63 - 1
"""Sequence numbers are SQLite integers: a cursor beyond this cannot name an event."""
PAGE: Final = 500
"""Events read from the log per round trip to the database."""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: str
    data: str
    """The JSON text, stored compact (no newlines), as it goes on the wire."""

    def encode(self) -> bytes:
        return f"id: {self.seq}\nevent: {self.type}\ndata: {self.data}\n\n".encode()


def events_after(tx: Transaction, cursor: int, limit: int) -> list[Event]:
    rows = tx.execute(
        "SELECT seq, type, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
    ).fetchall()
    return [Event(row["seq"], row["type"], row["data"]) for row in rows]


def last_seq(tx: Transaction) -> int:
    """The newest sequence number ever given, also when retention has deleted every event."""
    return int(
        tx.scalar(
            "SELECT max(coalesce((SELECT max(seq) FROM events), 0), "
            "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))"
        )
    )


def database_id(tx: Transaction) -> str:
    """The id made with the database (migration 3): a cursor is only meaningful with it."""
    return str(tx.scalar("SELECT value FROM meta WHERE name = 'database_id'"))


class EventLog:
    """Reads the log and wakes streams when a commit appended events."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.generation = 0
        """Bumped on every commit with events; a stream compares it to skip a needless wait."""
        self.closed = False
        self._database_id: str | None = None
        self._appended = asyncio.Event()
        db.on_commit(self._notify)

    def _notify(self) -> None:
        self.generation += 1
        # set() wakes every current waiter; clear() makes the next wait block again.
        self._appended.set()
        self._appended.clear()

    def close(self) -> None:
        """End every open stream (at shutdown)."""
        self.closed = True
        self._notify()

    async def after(self, cursor: int, limit: int = PAGE) -> list[Event]:
        return await self.db.run(lambda tx: events_after(tx, cursor, limit))

    async def database_id(self) -> str:
        """The database's identity (it never changes while the database is open)."""
        if self._database_id is None:
            self._database_id = await self.db.run(database_id)
        return self._database_id

    async def last_seq(self) -> int:
        return await self.db.run(last_seq)

    async def wait(self, generation: int, within_s: float) -> bool:
        """Wait until events newer than `generation` are committed; False on timeout."""
        if self.generation != generation or self.closed:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._appended.wait()
                return True
        return False
