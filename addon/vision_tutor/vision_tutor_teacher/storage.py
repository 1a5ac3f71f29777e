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

The data directory is locked with ``flock`` while the database is open: two services on one queue
would review everything twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import fcntl
import json
import logging
import os
from pathlib import Path
import queue
import secrets
import sqlite3
import threading
import time
from typing import IO, Any, Final

from .lab_schema import LAB_TABLES

_LOGGER = logging.getLogger(__name__)

DATABASE_FILE: Final = "vision_tutor.db"
TOKEN_FILE: Final = "token"
LOCK_FILE: Final = "lock"
MAX_BATCH: Final = 512
"""Jobs per transaction at most, so one commit never holds up readers for long."""

# Each entry migrates the schema from version N to N+1 (PRAGMA user_version).
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE contracts (
        hash TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
    CREATE TABLE reviews (
        id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        camera TEXT NOT NULL,
        reason TEXT NOT NULL,
        priority INTEGER NOT NULL,
        detail TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        student TEXT NOT NULL,
        contract_hash TEXT NOT NULL REFERENCES contracts(hash),
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        superseded_by TEXT,
        verdict TEXT,
        agrees INTEGER,
        latency_ms REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        not_before REAL NOT NULL,
        seq INTEGER NOT NULL
    );
    -- In the orders the queue reads: dispatch (most important, then oldest) and shedding
    -- (least important, then oldest), so neither sorts the whole queue.
    CREATE INDEX reviews_dispatch ON reviews (status, priority DESC, created_at);
    CREATE INDEX reviews_shedding ON reviews (status, priority, created_at);
    CREATE INDEX reviews_coalescing ON reviews (camera, reason, status);
    CREATE INDEX reviews_seq ON reviews (seq);
    CREATE INDEX reviews_updated ON reviews (status, updated_at);
    CREATE TABLE frames (
        review_id TEXT PRIMARY KEY,
        jpeg BLOB NOT NULL,
        bytes INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX events_created ON events (created_at);
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    """,
    LAB_TABLES,
)


class DataDirLocked(Exception):
    """Another service already uses this data directory."""


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
            lock = _lock_data_dir(self.data_dir)
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


def _lock_data_dir(data_dir: Path) -> IO[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_FILE).open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirLocked(f"another Vision Tutor service is using {data_dir}") from None
    return handle


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the database and bring its schema up to date (blocking; the database thread's)."""
    conn = _connect(path)
    try:
        _migrate(conn)
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


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database {DATABASE_FILE} is schema version {version}, newer than this "
            f"add-on knows ({len(MIGRATIONS)}); update the add-on"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        _LOGGER.info("Migrating the database to schema version %d", number)
        conn.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;")


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
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    _LOGGER.info("Generated a new API token in %s", path)
    return token


# --- Frames and retention ------------------------------------------------------------------------


def frame(tx: Transaction, review_id: str) -> bytes | None:
    """The JPEG of a review, while it is kept."""
    value = tx.scalar("SELECT jpeg FROM frames WHERE review_id = ?", (review_id,))
    return None if value is None else bytes(value)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    reviews_deleted: int
    frames_deleted: int
    events_deleted: int
    frame_bytes: int
    """Bytes of frames kept afterwards."""


def apply_retention(tx: Transaction, retention_s: float, frame_cap_bytes: int) -> RetentionReport:
    """Forget finished reviews (with their frames) and events older than the retention; then,
    while the frames still exceed the disk cap, drop the frames of the oldest finished reviews.

    Queued and in-progress reviews keep their frames whatever their age: the teacher needs them.
    """
    cutoff = tx.now - retention_s
    frames_deleted = tx.execute(
        "DELETE FROM frames WHERE review_id IN (SELECT id FROM reviews "
        "WHERE status NOT IN ('queued', 'in_progress') AND updated_at < ?)",
        (cutoff,),
    ).rowcount
    reviews_deleted = tx.execute(
        "DELETE FROM reviews WHERE status NOT IN ('queued', 'in_progress') AND updated_at < ?",
        (cutoff,),
    ).rowcount
    tx.execute(
        "DELETE FROM contracts WHERE hash NOT IN (SELECT DISTINCT contract_hash FROM reviews)"
    )
    # Keep the newest event so the sequence (AUTOINCREMENT) and the stream cursor stay valid.
    events_deleted = tx.execute(
        "DELETE FROM events WHERE created_at < ? AND seq < (SELECT max(seq) FROM events)",
        (cutoff,),
    ).rowcount
    total = int(tx.scalar("SELECT coalesce(sum(bytes), 0) FROM frames"))
    if total > frame_cap_bytes:
        rows = tx.execute(
            "SELECT f.review_id, f.bytes FROM frames f JOIN reviews r ON r.id = f.review_id "
            "WHERE r.status NOT IN ('queued', 'in_progress') ORDER BY r.updated_at"
        ).fetchall()
        doomed = []
        for row in rows:
            if total <= frame_cap_bytes:
                break
            doomed.append((row["review_id"],))
            total -= int(row["bytes"])
        tx.conn.executemany("DELETE FROM frames WHERE review_id = ?", doomed)
        frames_deleted += len(doomed)
    if frames_deleted or reviews_deleted or events_deleted:
        tx.execute("PRAGMA incremental_vacuum")
    return RetentionReport(reviews_deleted, frames_deleted, events_deleted, total)
