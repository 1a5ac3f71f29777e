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

from .datadir import lock_data_dir, secure
from .migrations import DATABASE_FILE, migrate

_LOGGER = logging.getLogger(__name__)

MAX_BATCH: Final = 512
"""Jobs per transaction at most, so one commit never holds up readers for long."""


class DatabaseClosed(Exception):
    """A job was submitted after (or while) the database closed."""


class StorageError(Exception):
    """The database cannot write (the message says why); what was committed is kept."""


class StorageFull(StorageError):
    """The data directory has no room left: answered 507 by the API."""


class StorageFailed(StorageError):
    """Any other storage failure (I/O error, read-only or damaged file): answered 503."""


_STORAGE_CODES: Final = frozenset(
    {
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_PROTOCOL,
    }
)


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
        self.storage_error: str | None = None
        """Why the last write failed, until a write succeeds again (None: writes work)."""
        self._thread_storage_error: str | None = None
        self._storage_listeners: list[Callable[[str | None], None]] = []

    def on_storage(self, listener: Callable[[str | None], None]) -> None:
        """Call `listener(problem)` on the event loop when writes start or stop failing."""
        self._storage_listeners.append(listener)

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
            secure(self.data_dir)
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
                jobs = [item for item in batch if isinstance(item, _Pending)]
                while jobs:
                    try:
                        jobs = self._run_batch(conn, jobs)
                    except Exception as err:  # a bug here must not end the thread
                        _LOGGER.exception("The database thread failed a batch")
                        self._fail_all(jobs, err)
                        jobs = []
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

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> list[_Pending]:
        """Run `batch` in one transaction; the jobs left to run in a fresh one.

        A storage error (full disk, I/O error) may make SQLite roll the whole transaction back:
        then the jobs run so far fail with it too (nothing of theirs was kept) and the rest
        are handed back, so one failed write never takes reads or the thread down with it.
        """
        tx = Transaction(conn, time.time())
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        changes = conn.total_changes
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            self._fail_all(batch, err)
            return []
        for index, pending in enumerate(batch):
            try:
                conn.execute("SAVEPOINT job")
            except sqlite3.Error as err:
                return self._abandon(conn, outcomes, err, batch[index:])
            try:
                result = pending.job(tx)
            except Exception as err:  # the job's caller receives it
                if not conn.in_transaction:  # SQLite rolled everything back
                    outcomes.append((pending, None, err))
                    return self._abandon(conn, outcomes, err, batch[index + 1 :])
                try:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                except sqlite3.Error as rollback_err:
                    outcomes.append((pending, None, err))
                    return self._abandon(conn, outcomes, rollback_err, batch[index + 1 :])
                outcomes.append((pending, None, _as_storage_error(err, self.data_dir)))
            else:
                outcomes.append((pending, result, None))
                try:
                    conn.execute("RELEASE job")
                except sqlite3.Error as err:
                    return self._abandon(conn, outcomes, err, batch[index + 1 :])
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            return self._abandon(conn, outcomes, err, [])
        failed = [str(e) for _, _, e in outcomes if isinstance(e, StorageError)]
        if failed:
            self._storage_changed(failed[-1])
        elif conn.total_changes != changes:
            self._storage_changed(None)
        for pending, result, error in outcomes:
            self._call_soon(self._settle, pending.future, result, error)
        if tx.events_emitted:
            for listener in self._listeners:
                self._call_soon(listener)
        return []

    def _abandon(
        self,
        conn: sqlite3.Connection,
        outcomes: list[tuple[_Pending, Any, BaseException | None]],
        err: BaseException,
        rest: list[_Pending],
    ) -> list[_Pending]:
        """The transaction is lost: fail the jobs it ran, hand back the ones it did not."""
        _LOGGER.error("A transaction failed, %d jobs rolled back: %s", len(outcomes), err)
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        self._fail_all([pending for pending, _, _ in outcomes], err)
        return rest

    def _fail_all(self, batch: list[_Pending], err: BaseException) -> None:
        error = _as_storage_error(err, self.data_dir)
        if isinstance(error, StorageError):
            self._storage_changed(str(error))
        for pending in batch:
            self._call_soon(self._settle, pending.future, None, error)

    def _storage_changed(self, problem: str | None) -> None:
        """Tell the loop whether writes work (only when that changed)."""
        if problem == self._thread_storage_error:
            return
        self._thread_storage_error = problem
        self._call_soon(self._set_storage_error, problem)

    def _set_storage_error(self, problem: str | None) -> None:
        if problem is None:
            _LOGGER.info("Writes to the data directory %s work again", self.data_dir)
        else:
            _LOGGER.error("Writes to the data directory fail: %s", problem)
        self.storage_error = problem
        for listener in self._storage_listeners:
            listener(problem)


def _as_storage_error(err: BaseException, data_dir: Path) -> BaseException:
    """A storage failure as `StorageFull` or `StorageFailed`; any other error as it is."""
    if not isinstance(err, sqlite3.Error) or isinstance(err, sqlite3.IntegrityError):
        return err
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        failure: StorageError = StorageFull(
            f"insufficient storage: the data directory {data_dir} is full ({err})"
        )
    elif code in _STORAGE_CODES:
        failure = StorageFailed(f"storage failure in the data directory {data_dir}: {err}")
    else:
        return err
    failure.__cause__ = err
    return failure


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
