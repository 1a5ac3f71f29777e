"""The durable review queue: admission (idempotency, coalescing, shedding), dispatch and results.

Every operation is one job on the database thread (`vision_tutor_teacher.storage`), so it is
atomic with the events it emits: a review is never ``done`` without its ``verdict`` event, nor
``shed`` without the ``review`` event that tells the integration.

Admission of a new review, in this order:

1. **Idempotency**: a known key with the same request (meta and frame) returns the existing
   review; with a different request it is a conflict (409): nothing new is stored either way.
2. **Coalescing**: queued reviews of the same camera and reason created within the batch window
   are marked ``superseded`` by the new one, which inherits the earliest dispatch time among them
   (so a camera escalating faster than the window cannot postpone its review forever).
3. **Bound**: when the queue is still full, the lowest-priority, oldest queued review is shed if
   its priority is strictly lower than the new one's; otherwise the new review is refused (429).
   Safety is the highest priority, so a safety review is never shed, and when the queue is full
   of them a new one is refused loudly rather than dropped.

**Dispatch** is by priority, then age. Non-safety reviews wait out the batch window before they are
dispatched, so a burst from one camera costs one teacher call; safety reviews go at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
import hashlib
import math
import sqlite3
from typing import Final, Literal
import uuid

from vision_tutor_teacher.models import (
    PRIORITY,
    Latency,
    Reason,
    ReviewContract,
    ReviewEvent,
    ReviewMeta,
    ReviewOut,
    ReviewPage,
    ReviewStatus,
    Stats,
    StudentReport,
    Verdict,
)
from vision_tutor_teacher.storage.database import Database, Transaction
from vision_tutor_teacher.storage.retention import frame

LATENCY_WINDOW: Final = 200
"""Teacher latency percentiles are over this many most recent verdicts."""
COUNTERS: Final = ("accepted", "processed", "shed", "superseded", "failed", "refused", "agreed")


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    limit: int
    """Queued reviews at most (in-progress ones are not counted)."""
    batch_window_s: float


@dataclass(frozen=True, slots=True)
class Admission:
    """What became of a submitted review."""

    outcome: Literal["accepted", "duplicate", "conflict", "refused"]
    review_id: str | None
    """The new or existing review (also for a conflict); None when refused."""
    cursor: int
    """Event sequence number of the ``review`` event announcing an accepted review."""


@dataclass(frozen=True, slots=True)
class ClaimedReview:
    """A review handed to a worker: everything the teacher call needs."""

    id: str
    idempotency_key: str
    camera: str
    reason: Reason
    priority: int
    attempts: int
    """Including this one; together with the id it identifies this attempt."""
    student: StudentReport
    contract: ReviewContract
    frame: bytes


@dataclass(frozen=True, slots=True)
class Idle:
    """No review is due; the earliest queued one (if any) becomes due at `next_due`."""

    next_due: float | None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile of a non-empty sequence (fraction in 0..1)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _epoch_to_datetime(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _review_out(row: sqlite3.Row) -> ReviewOut:
    verdict = row["verdict"]
    return ReviewOut(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        camera=row["camera"],
        camera_name=row["camera_name"],
        reason=Reason(row["reason"]),
        priority=row["priority"],
        detail=row["detail"],
        status=ReviewStatus(row["status"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        superseded_by=row["superseded_by"],
        captured_at=datetime.fromisoformat(row["captured_at"]),
        created_at=_epoch_to_datetime(row["created_at"]),
        updated_at=_epoch_to_datetime(row["updated_at"]),
        cursor=row["seq"],
        verdict=None if verdict is None else Verdict.model_validate_json(verdict),
    )


def _announce(
    tx: Transaction,
    row: sqlite3.Row,
    status: ReviewStatus,
    *,
    attempts: int | None = None,
    error: str | None = None,
    superseded_by: str | None = None,
) -> int:
    """Emit the ``review`` event for a status change and point the review's cursor at it."""
    event = ReviewEvent(
        review_id=row["id"],
        idempotency_key=row["idempotency_key"],
        camera=row["camera"],
        reason=Reason(row["reason"]),
        priority=row["priority"],
        status=status,
        attempts=row["attempts"] if attempts is None else attempts,
        error=error,
        superseded_by=superseded_by,
    )
    return tx.emit("review", event.model_dump(mode="json"))


def _drop_frame(tx: Transaction, review_id: str) -> None:
    tx.execute("DELETE FROM frames WHERE review_id = ?", (review_id,))


def _request_hash(meta: ReviewMeta, jpeg: bytes) -> str:
    """The same for the same review sent again, as JSON or as multipart."""
    fields = set(ReviewMeta.model_fields)  # a ReviewRequest also carries the image
    digest = hashlib.sha256(meta.model_dump_json(include=fields, by_alias=True).encode())
    digest.update(b"\0")
    digest.update(jpeg)
    return digest.hexdigest()


def admit(
    tx: Transaction, policy: QueuePolicy, meta: ReviewMeta, jpeg: bytes, review_id: str
) -> Admission:
    """Admit one review (see the module docstring for the rules)."""
    request_hash = _request_hash(meta, jpeg)
    existing = tx.one(
        "SELECT id, request_hash FROM reviews WHERE idempotency_key = ?", (meta.idempotency_key,)
    )
    if existing is not None:
        same = existing["request_hash"] in (None, request_hash)
        return Admission("duplicate" if same else "conflict", existing["id"], 0)

    now = tx.now
    priority = PRIORITY[meta.reason]
    not_before = now if meta.reason is Reason.SAFETY else now + policy.batch_window_s
    if policy.batch_window_s > 0:
        older = tx.execute(
            "SELECT * FROM reviews WHERE camera = ? AND reason = ? AND status = 'queued' "
            "AND created_at >= ?",
            (meta.camera, meta.reason.value, now - policy.batch_window_s),
        ).fetchall()
        for row in older:
            not_before = min(not_before, row["not_before"])
            seq = _announce(tx, row, ReviewStatus.SUPERSEDED, superseded_by=review_id)
            tx.execute(
                "UPDATE reviews SET status = 'superseded', superseded_by = ?, updated_at = ?, "
                "seq = ? WHERE id = ?",
                (review_id, now, seq, row["id"]),
            )
            _drop_frame(tx, row["id"])
            tx.bump("superseded")

    depth = int(tx.scalar("SELECT count(*) FROM reviews WHERE status = 'queued'"))
    if depth >= policy.limit:
        victim = tx.one(
            "SELECT * FROM reviews WHERE status = 'queued' "
            "ORDER BY priority ASC, created_at ASC, rowid ASC LIMIT 1"
        )
        if victim is None or victim["priority"] >= priority:
            tx.bump("refused")
            return Admission("refused", None, 0)
        seq = _announce(tx, victim, ReviewStatus.SHED)
        tx.execute(
            "UPDATE reviews SET status = 'shed', updated_at = ?, seq = ? WHERE id = ?",
            (now, seq, victim["id"]),
        )
        _drop_frame(tx, victim["id"])
        tx.bump("shed")

    contract_json = meta.contract.model_dump_json(by_alias=True)
    contract_hash = hashlib.sha256(contract_json.encode()).hexdigest()
    tx.execute(
        "INSERT OR IGNORE INTO contracts (hash, body) VALUES (?, ?)",
        (contract_hash, contract_json),
    )
    # The event first, so the review row is written once, already pointing at it.
    seq = tx.emit(
        "review",
        ReviewEvent(
            review_id=review_id,
            idempotency_key=meta.idempotency_key,
            camera=meta.camera,
            reason=meta.reason,
            priority=priority,
            status=ReviewStatus.QUEUED,
            attempts=0,
        ).model_dump(mode="json"),
    )
    tx.execute(
        "INSERT INTO reviews (id, idempotency_key, camera, camera_name, reason, priority, detail, "
        "captured_at, student, contract_hash, status, attempts, created_at, updated_at, "
        "not_before, seq, request_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)",
        (
            review_id,
            meta.idempotency_key,
            meta.camera,
            meta.camera_name,
            meta.reason.value,
            priority,
            meta.detail,
            meta.captured_at.isoformat(),
            meta.student.model_dump_json(),
            contract_hash,
            now,
            now,
            not_before,
            seq,
            request_hash,
        ),
    )
    tx.execute(
        "INSERT INTO frames (review_id, jpeg, bytes, created_at) VALUES (?, ?, ?, ?)",
        (review_id, jpeg, len(jpeg), now),
    )
    tx.bump("accepted")
    return Admission("accepted", review_id, seq)


def claim(tx: Transaction) -> ClaimedReview | Idle:
    """Take the most important due review and mark it in progress (one more attempt)."""
    row = tx.one(
        "SELECT * FROM reviews WHERE status = 'queued' AND not_before <= ? "
        "ORDER BY priority DESC, created_at ASC, rowid ASC LIMIT 1",
        (tx.now,),
    )
    if row is None:
        return Idle(tx.scalar("SELECT min(not_before) FROM reviews WHERE status = 'queued'"))
    attempts = row["attempts"] + 1
    seq = _announce(tx, row, ReviewStatus.IN_PROGRESS, attempts=attempts)
    tx.execute(
        "UPDATE reviews SET status = 'in_progress', attempts = ?, updated_at = ?, seq = ? "
        "WHERE id = ?",
        (attempts, tx.now, seq, row["id"]),
    )
    contract = tx.scalar("SELECT body FROM contracts WHERE hash = ?", (row["contract_hash"],))
    jpeg = frame(tx, row["id"])
    assert contract is not None
    assert jpeg is not None
    return ClaimedReview(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        camera=row["camera"],
        reason=Reason(row["reason"]),
        priority=row["priority"],
        attempts=attempts,
        student=StudentReport.model_validate_json(row["student"]),
        contract=ReviewContract.model_validate_json(contract),
        frame=jpeg,
    )


def _in_flight(tx: Transaction, claimed: ClaimedReview) -> sqlite3.Row | None:
    """The review if this attempt still owns it (not recovered and re-claimed meanwhile)."""
    return tx.one(
        "SELECT * FROM reviews WHERE id = ? AND status = 'in_progress' AND attempts = ?",
        (claimed.id, claimed.attempts),
    )


def complete(tx: Transaction, claimed: ClaimedReview, verdict: Verdict) -> bool:
    """Record the verdict, once: False when this attempt no longer owns the review."""
    row = _in_flight(tx, claimed)
    if row is None:
        return False
    # The verdict first: a client that stops at the "done" status has already seen it.
    tx.emit("verdict", verdict.model_dump(mode="json"))
    seq = _announce(tx, row, ReviewStatus.DONE)
    tx.execute(
        "UPDATE reviews SET status = 'done', verdict = ?, agrees = ?, latency_ms = ?, "
        "last_error = NULL, updated_at = ?, seq = ? WHERE id = ?",
        (
            verdict.model_dump_json(),
            int(verdict.agrees_with_student),
            verdict.latency_ms,
            tx.now,
            seq,
            claimed.id,
        ),
    )
    tx.bump("processed")
    if verdict.agrees_with_student:
        tx.bump("agreed")
    return True


def retry(
    tx: Transaction, claimed: ClaimedReview, error: str, delay_s: float, *, counts: bool
) -> bool:
    """Put the review back in the queue for another attempt after `delay_s`.

    ``counts=False`` gives the attempt back: the teacher was unavailable, the review did nothing
    wrong, and a long outage must not dead-letter the whole queue.
    """
    row = _in_flight(tx, claimed)
    if row is None:
        return False
    attempts = claimed.attempts if counts else claimed.attempts - 1
    seq = _announce(tx, row, ReviewStatus.QUEUED, attempts=attempts, error=error)
    tx.execute(
        "UPDATE reviews SET status = 'queued', attempts = ?, last_error = ?, not_before = ?, "
        "updated_at = ?, seq = ? WHERE id = ?",
        (attempts, error, tx.now + delay_s, tx.now, seq, claimed.id),
    )
    return True


def give_back(tx: Transaction, review_id: str, attempts: int, error: str) -> bool:
    """Undo the count of a failed attempt that turned out to be the teacher's fault.

    Only a review still queued with that count: one claimed again meanwhile is left alone.
    """
    row = tx.one(
        "SELECT * FROM reviews WHERE id = ? AND status = 'queued' AND attempts = ?",
        (review_id, attempts),
    )
    if row is None:
        return False
    seq = _announce(tx, row, ReviewStatus.QUEUED, attempts=attempts - 1, error=error)
    tx.execute(
        "UPDATE reviews SET attempts = ?, last_error = ?, updated_at = ?, seq = ? WHERE id = ?",
        (attempts - 1, error, tx.now, seq, review_id),
    )
    return True


def fail(tx: Transaction, claimed: ClaimedReview, error: str) -> bool:
    """Dead-letter the review: the teacher failed on it too many times."""
    row = _in_flight(tx, claimed)
    if row is None:
        return False
    seq = _announce(tx, row, ReviewStatus.FAILED, error=error)
    tx.execute(
        "UPDATE reviews SET status = 'failed', last_error = ?, updated_at = ?, seq = ? "
        "WHERE id = ?",
        (error, tx.now, seq, claimed.id),
    )
    tx.bump("failed")
    return True


def recover_in_flight(tx: Transaction) -> int:
    """After a crash: reviews that were in progress go back to the queue, due at once."""
    rows = tx.execute("SELECT * FROM reviews WHERE status = 'in_progress'").fetchall()
    for row in rows:
        error = "interrupted by a restart"
        seq = _announce(tx, row, ReviewStatus.QUEUED, error=error)
        tx.execute(
            "UPDATE reviews SET status = 'queued', last_error = ?, not_before = ?, "
            "updated_at = ?, seq = ? WHERE id = ?",
            (error, tx.now, tx.now, seq, row["id"]),
        )
    return len(rows)


def get(tx: Transaction, review_id: str) -> ReviewOut | None:
    row = tx.one("SELECT * FROM reviews WHERE id = ?", (review_id,))
    return None if row is None else _review_out(row)


def changed_after(tx: Transaction, cursor: int, limit: int) -> ReviewPage:
    rows = tx.execute(
        "SELECT * FROM reviews WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
    ).fetchall()
    reviews = [_review_out(row) for row in rows]
    return ReviewPage(reviews=reviews, cursor=reviews[-1].cursor if reviews else cursor)


def recent(tx: Transaction, statuses: Sequence[ReviewStatus], limit: int) -> list[ReviewOut]:
    """Reviews in the given states, most recently changed first (for the web page)."""
    marks = ", ".join("?" for _ in statuses)
    rows = tx.execute(
        f"SELECT * FROM reviews WHERE status IN ({marks}) ORDER BY updated_at DESC LIMIT ?",
        (*[status.value for status in statuses], limit),
    ).fetchall()
    return [_review_out(row) for row in rows]


def queued_count(tx: Transaction) -> int:
    return int(tx.scalar("SELECT count(*) FROM reviews WHERE status = 'queued'"))


def stats(tx: Transaction) -> Stats:
    depth = dict.fromkeys(Reason, 0)
    for row in tx.execute(
        "SELECT reason, count(*) AS n FROM reviews WHERE status = 'queued' GROUP BY reason"
    ):
        depth[Reason(row["reason"])] = row["n"]
    counters = dict.fromkeys(COUNTERS, 0)
    for row in tx.execute("SELECT name, value FROM counters"):
        counters[row["name"]] = row["value"]
    latencies = [
        row[0]
        for row in tx.execute(
            "SELECT latency_ms FROM reviews WHERE status = 'done' ORDER BY updated_at DESC LIMIT ?",
            (LATENCY_WINDOW,),
        )
    ]
    processed = counters["processed"]
    return Stats(
        queue_depth=depth,
        queued=sum(depth.values()),
        in_progress=int(tx.scalar("SELECT count(*) FROM reviews WHERE status = 'in_progress'")),
        accepted=counters["accepted"],
        processed=processed,
        shed=counters["shed"],
        superseded=counters["superseded"],
        failed=counters["failed"],
        refused=counters["refused"],
        teacher_latency_ms=(
            Latency(p50=percentile(latencies, 0.5), p95=percentile(latencies, 0.95))
            if latencies
            else None
        ),
        agreement_rate=counters["agreed"] / processed if processed else None,
    )


class ReviewQueue:
    """The queue's operations as coroutines, each one transaction on the database thread."""

    def __init__(self, db: Database, policy: QueuePolicy) -> None:
        self.db = db
        self.policy = policy

    async def submit(self, meta: ReviewMeta, jpeg: bytes) -> Admission:
        review_id = str(uuid.uuid7())
        return await self.db.run(lambda tx: admit(tx, self.policy, meta, jpeg, review_id))

    async def claim(self) -> ClaimedReview | Idle:
        return await self.db.run(claim)

    async def complete(self, claimed: ClaimedReview, verdict: Verdict) -> bool:
        return await self.db.run(lambda tx: complete(tx, claimed, verdict))

    async def retry(
        self, claimed: ClaimedReview, error: str, delay_s: float, *, counts: bool
    ) -> bool:
        return await self.db.run(lambda tx: retry(tx, claimed, error, delay_s, counts=counts))

    async def fail(self, claimed: ClaimedReview, error: str) -> bool:
        return await self.db.run(lambda tx: fail(tx, claimed, error))

    async def give_back(self, review_id: str, attempts: int, error: str) -> bool:
        return await self.db.run(lambda tx: give_back(tx, review_id, attempts, error))

    async def recover_in_flight(self) -> int:
        return await self.db.run(recover_in_flight)

    async def get(self, review_id: str) -> ReviewOut | None:
        return await self.db.run(lambda tx: get(tx, review_id))

    async def frame(self, review_id: str) -> bytes | None:
        return await self.db.run(lambda tx: frame(tx, review_id))

    async def changed_after(self, cursor: int, limit: int) -> ReviewPage:
        return await self.db.run(lambda tx: changed_after(tx, cursor, limit))

    async def recent(self, statuses: Sequence[ReviewStatus], limit: int) -> list[ReviewOut]:
        return await self.db.run(lambda tx: recent(tx, statuses, limit))

    async def queued_count(self) -> int:
        return await self.db.run(queued_count)

    async def stats(self) -> Stats:
        return await self.db.run(stats)
