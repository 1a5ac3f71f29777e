"""Frames, and retention: what is forgotten after ``retention_days`` or beyond the disk cap."""

from __future__ import annotations

from dataclasses import dataclass

from .database import Transaction


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
