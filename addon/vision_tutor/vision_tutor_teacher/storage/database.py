"""The data directory: one SQLite database (WAL) written by one dedicated thread, and the token.

Everything the service must not lose lives in ``<data>/vision_tutor.db``: reviews, their frames,
the event log and the counters. SQLite calls block, so none of them runs on the event loop: a
single daemon thread owns the connection and executes *jobs* (functions of a `Transaction`) that
coroutines submit with `Database.run`.

**Group commit.** The thread takes every job waiting in its inbox, runs them in one transaction
(each inside its own savepoint, so one failing job does not undo the others), commits once with
``synchronous=FULL`` and only then resolves their futures. A 202 therefore always means the review
is on disk, and under load hundreds of enqueues share one fsync.

**Events** are rows of the same database, appended inside the transaction that makes the change
they announce (`Transaction.emit`), so the event log and the state can never disagree after a
crash. Listeners registered with `Database.on_commit` are told (on the event loop) after each
commit that appended events.

The data directory is locked (`vision_tutor_teacher.storage.datadir`) while the database is open;
the schema comes from `vision_tutor_teacher.storage.migrations`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import json
import logging
from pathlib import Path
import queue
import sqlite3
import threading
import time
from typing import IO, Any, Final

from .datadir import lock_data_dir
from .migrations import DATABASE_FILE, migrate

_LOGGER = logging.getLogger(__name__)

MAX_BATCH: Final = 512
"""Jobs per transaction at most, so one commit never holds up readers for long."""


class DatabaseClosed(Exception):
    """A job was submitted after (or while) the database closed."""


def dumps(value: object) -> str:
    """Compact JSON, as stored in the database and sent in events."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Transaction:
    """What a job sees: the connection inside an open transaction, and the event log."""

    __slots__ = ("conn", "events_emitted", "now")

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        """The batch's wall-clock time (epoch seconds), one value for every job in it."""
        self.events_emitted = False

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def emit(self, event_type: str, data: dict[str, Any]) -> int:
        """Append an event; its sequence number is the stream's cursor."""
        cursor = self.conn.execute(
            "INSERT INTO events (type, data, created_at) VALUES (?, ?, ?)",
            (event_type, dumps(data), self.now),
        )
        self.events_emitted = True
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def bump(self, counter: str, by: int = 1) -> None:
        self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (counter, by),
        )


type Job[T] = Callable[[Transaction], T]


@dataclass(slots=True)
class _Pending:
    job: Job[Any]
    future: asyncio.Future[Any]


_STOP: Final = object()


class Database:
    """The SQLite database, served by one thread; see the module docstring."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DATABASE_FILE
        self._inbox: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[], None]] = []
        self._closing = False
        self._opened: asyncio.Future[None] | None = None
        self._finished: asyncio.Future[None] | None = None

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the event loop after every commit that appended events."""
        self._listeners.append(listener)

    async def open(self) -> None:
        """Start the thread, lock the data directory, and migrate the schema."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._opened = loop.create_future()
        self._finished = loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, name="vision-tutor-db", args=(loop,), daemon=True
        )
        self._thread.start()
        try:
            await self._opened
        except BaseException:
            await self._finished
            self._thread.join()
            raise

    async def run[T](self, job: Job[T]) -> T:
        """Run `job` in a transaction on the database thread; its result once committed."""
        if self._closing or self._loop is None:
            raise DatabaseClosed("the database is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._inbox.put(_Pending(job, future))
        return await future

    async def close(self) -> None:
        """Finish the jobs already submitted, then close the connection and stop the thread."""
        if self._thread is None or self._finished is None or self._closing:
            return
        self._closing = True
        self._inbox.put(_STOP)
        await self._finished
        self._thread.join()

    # --- The database thread ---------------------------------------------------------------------

    def _settle(
        self, future: asyncio.Future[Any], result: Any, error: BaseException | None
    ) -> None:
        if future.done():  # the caller gave up (cancelled); the work is committed regardless
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody is waiting
            self._loop.call_soon_threadsafe(callback, *args)

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._opened is not None
        assert self._finished is not None
        lock: IO[bytes] | None = None
        conn: sqlite3.Connection | None = None
        try:
            lock = lock_data_dir(self.data_dir)
            conn = connect(self.path)
        except BaseException as err:  # handed to the opener, which re-raises
            if conn is not None:
                conn.close()
            if lock is not None:
                lock.close()
            self._call_soon(self._settle, self._opened, None, err)
            self._call_soon(self._settle, self._finished, None, None)
            return
        self._call_soon(self._settle, self._opened, None, None)
        try:
            stopping = False
            while not stopping:
                first = self._inbox.get()
                if first is _STOP:
                    break
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                self._run_batch(conn, [item for item in batch if isinstance(item, _Pending)])
        finally:
            conn.close()
            lock.close()
            # Jobs that raced with close() must not wait forever.
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Pending):
                    self._call_soon(
                        self._settle, item.future, None, DatabaseClosed("the database closed")
                    )
            self._call_soon(self._settle, self._finished, None, None)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        tx = Transaction(conn, time.time())
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        for pending in batch:
            conn.execute("SAVEPOINT job")
            try:
                result = pending.job(tx)
            except Exception as err:  # the job's caller receives it
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((pending, None, err))
            else:
                conn.execute("RELEASE job")
                outcomes.append((pending, result, None))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            _LOGGER.exception("Commit failed; %d jobs rolled back", len(batch))
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            outcomes = [(pending, None, err) for pending, _, _ in outcomes]
            tx.events_emitted = False
        for pending, result, error in outcomes:
            self._call_soon(self._settle, pending.future, result, error)
        if tx.events_emitted:
            for listener in self._listeners:
                self._call_soon(listener)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the database and bring its schema up to date (blocking; the database thread's)."""
    conn = _connect(path)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _connect(path: Path | str) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) per batch.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # Must precede the first table, so the file can shrink after retention deletes frames.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: each commit is fsynced, so an accepted review survives a power cut, not only kill -9.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
