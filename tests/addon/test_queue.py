"""The durable queue's rules, on a real database: priority order, shedding, coalescing,
idempotency, exactly-once results, events and retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import json
import os
from pathlib import Path
import sqlite3
import stat
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from tests.addon.conftest import review_body
from vision_tutor_teacher.models import (
    PRIORITY,
    Agreement,
    Observation,
    Reason,
    ReviewRequest,
    ReviewStatus,
    Verdict,
)
from vision_tutor_teacher.reviews import queue as review_queue
from vision_tutor_teacher.reviews.queue import (
    Admission,
    ClaimedReview,
    Idle,
    QueuePolicy,
    ReviewQueue,
    percentile,
)
from vision_tutor_teacher.storage.database import Database, DatabaseClosed, Transaction, connect
from vision_tutor_teacher.storage.datadir import DataDirLocked, load_or_create_token
from vision_tutor_teacher.storage.migrations import MIGRATIONS
from vision_tutor_teacher.storage.retention import apply_retention


def meta(key: str, **kwargs: Any) -> ReviewRequest:
    return ReviewRequest.model_validate_json(json.dumps(review_body(key, **kwargs)))


FRAME = b"\xff\xd8\xff\xe0 a small frame"


def verdict_for(claimed: ClaimedReview) -> Verdict:
    return Verdict(
        review_id=claimed.id,
        idempotency_key=claimed.idempotency_key,
        camera=claimed.camera,
        reason=claimed.reason,
        verdict=Observation(summary="An empty kitchen.", safety_flags=[], confidence=0.9),
        agrees_with_student=True,
        agreement=Agreement(flags=True, summary_similarity=0.9, basis="flags_and_summary"),
        teacher_model="gemma4:26b",
        latency_ms=12.5,
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(tmp_path / "data")
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def make_queue(db: Database, limit: int = 20, window_s: float = 0.0) -> ReviewQueue:
    return ReviewQueue(db, QueuePolicy(limit=limit, batch_window_s=window_s))


async def submit(queue: ReviewQueue, key: str, **kwargs: Any) -> Admission:
    return await queue.submit(meta(key, **kwargs), FRAME)


async def claim_all(queue: ReviewQueue) -> list[str]:
    keys = []
    while not isinstance(claimed := await queue.claim(), Idle):
        keys.append(claimed.idempotency_key)
    return keys


async def events(db: Database) -> list[sqlite3.Row]:
    return await db.run(lambda tx: tx.execute("SELECT * FROM events ORDER BY seq").fetchall())


# --- Order ---------------------------------------------------------------------------------------


async def test_claims_follow_priority_then_age(database: Database) -> None:
    queue = make_queue(database)
    for key, reason in [
        ("audit-old", "audit"),
        ("low-old", "low_confidence"),
        ("safety-old", "safety"),
        ("temporal", "temporal"),
        ("error", "student_error"),
        ("low-new", "low_confidence"),
        ("safety-new", "safety"),
        ("audit-new", "audit"),
    ]:
        await submit(queue, key, reason=reason, camera=f"camera.{key}")

    assert await claim_all(queue) == [
        "safety-old",
        "safety-new",
        "error",
        "low-old",
        "low-new",
        "temporal",
        "audit-old",
        "audit-new",
    ]


async def test_non_safety_reviews_wait_out_the_batch_window_and_safety_goes_at_once(
    database: Database,
) -> None:
    queue = make_queue(database, window_s=30)
    await submit(queue, "audit", reason="audit", camera="camera.a")
    await submit(queue, "fire", reason="safety", camera="camera.b")

    first = await queue.claim()
    assert isinstance(first, ClaimedReview)
    assert first.idempotency_key == "fire"
    idle = await queue.claim()
    assert isinstance(idle, Idle)
    created = await database.run(
        lambda tx: tx.scalar("SELECT created_at FROM reviews WHERE idempotency_key = 'audit'")
    )
    assert idle.next_due == pytest.approx(created + 30)
    stats = await queue.stats()
    assert stats.queue_depth[Reason.AUDIT] == 1


# --- Bound and shedding -------------------------------------------------------------------------


async def test_a_full_queue_sheds_the_oldest_of_the_lowest_priority(database: Database) -> None:
    queue = make_queue(database, limit=4)
    for key, reason in [
        ("low-1", "low_confidence"),
        ("audit-1", "audit"),
        ("temporal-1", "temporal"),
        ("audit-2", "audit"),
    ]:
        assert (
            await submit(queue, key, reason=reason, camera=f"camera.{key}")
        ).outcome == "accepted"

    shed_by_temporal = await submit(queue, "temporal-2", reason="temporal", camera="camera.t2")
    shed_by_safety = await submit(queue, "safety-1", reason="safety", camera="camera.s1")
    shed_by_low = await submit(queue, "low-2", reason="low_confidence", camera="camera.l2")

    assert shed_by_temporal.outcome == shed_by_safety.outcome == shed_by_low.outcome == "accepted"
    rows = await database.run(
        lambda tx: tx.execute("SELECT idempotency_key, status FROM reviews").fetchall()
    )
    status = {row["idempotency_key"]: row["status"] for row in rows}
    # audit-1 went first (oldest audit), then audit-2, then the oldest temporal.
    assert status == {
        "low-1": "queued",
        "audit-1": "shed",
        "temporal-1": "shed",
        "audit-2": "shed",
        "temporal-2": "queued",
        "safety-1": "queued",
        "low-2": "queued",
    }
    shed_frames = await database.run(
        lambda tx: tx.scalar(
            "SELECT count(*) FROM frames JOIN reviews ON reviews.id = frames.review_id "
            "WHERE reviews.status = 'shed'"
        )
    )
    assert shed_frames == 0
    stats = await queue.stats()
    assert stats.shed == 3
    assert stats.queued == 4
    shed_events = [e for e in await events(database) if '"status":"shed"' in e["data"]]
    assert len(shed_events) == 3
    assert '"idempotency_key":"audit-1"' in shed_events[0]["data"]


async def test_a_full_queue_refuses_a_review_no_more_important_than_any_queued(
    database: Database,
) -> None:
    queue = make_queue(database, limit=2)
    await submit(queue, "low-1", reason="low_confidence", camera="camera.1")
    await submit(queue, "low-2", reason="low_confidence", camera="camera.2")

    same = await submit(queue, "low-3", reason="low_confidence", camera="camera.3")
    lower = await submit(queue, "audit", reason="audit", camera="camera.4")

    assert same == Admission("refused", None, 0)
    assert lower.outcome == "refused"
    stats = await queue.stats()
    assert (stats.refused, stats.shed, stats.queued) == (2, 0, 2)


async def test_safety_reviews_are_never_shed(database: Database) -> None:
    queue = make_queue(database, limit=2)
    await submit(queue, "fire-1", reason="safety", camera="camera.1")
    await submit(queue, "fire-2", reason="safety", camera="camera.2")

    assert (await submit(queue, "fire-3", reason="safety", camera="camera.3")).outcome == "refused"
    assert (
        await submit(queue, "error", reason="student_error", camera="camera.4")
    ).outcome == "refused"
    assert await claim_all(queue) == ["fire-1", "fire-2"]


async def test_in_progress_reviews_count_neither_towards_the_limit_nor_as_victims(
    database: Database,
) -> None:
    queue = make_queue(database, limit=1)
    await submit(queue, "audit-1", reason="audit", camera="camera.1")
    assert isinstance(await queue.claim(), ClaimedReview)

    assert (await submit(queue, "audit-2", reason="audit", camera="camera.2")).outcome == "accepted"
    assert (
        await submit(queue, "low", reason="low_confidence", camera="camera.3")
    ).outcome == "accepted"
    rows = await database.run(
        lambda tx: tx.execute(
            "SELECT idempotency_key, status FROM reviews ORDER BY rowid"
        ).fetchall()
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("audit-1", "in_progress"),
        ("audit-2", "shed"),
        ("low", "queued"),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(Reason)), st.integers(min_value=0, max_value=3)),
        min_size=1,
        max_size=25,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_admission_never_sheds_upwards_nor_overfills(
    submissions: list[tuple[Reason, int]], limit: int
) -> None:
    conn = connect(":memory:")
    policy = QueuePolicy(limit=limit, batch_window_s=0)
    try:
        for number, (reason, camera) in enumerate(submissions):
            tx = Transaction(conn, now=1000.0 + number)
            before = {
                row["id"]: row["priority"]
                for row in tx.execute("SELECT id, priority FROM reviews WHERE status = 'queued'")
            }
            admission = review_queue.admit(
                tx,
                policy,
                meta(f"k{number}", reason=reason.value, camera=f"camera.{camera}"),
                FRAME,
                f"id{number}",
            )
            after = {
                row["id"]: row["priority"]
                for row in tx.execute("SELECT id, priority FROM reviews WHERE status = 'queued'")
            }
            assert len(after) <= limit
            dropped = set(before) - set(after)
            if admission.outcome == "refused":
                assert after == before
                assert min(before.values()) >= PRIORITY[reason]
            else:
                assert dropped == set() or (
                    len(dropped) == 1 and before[dropped.pop()] < PRIORITY[reason]
                )
            safety_before = {k for k, p in before.items() if p == PRIORITY[Reason.SAFETY]}
            assert safety_before <= set(after)
    finally:
        conn.close()


# --- Coalescing ----------------------------------------------------------------------------------


async def test_a_newer_review_of_the_same_camera_and_reason_supersedes_a_queued_one(
    database: Database,
) -> None:
    queue = make_queue(database, window_s=5)
    first = await submit(queue, "door-1", camera="camera.door", reason="low_confidence")
    other_reason = await submit(queue, "door-audit", camera="camera.door", reason="audit")
    other_camera = await submit(queue, "yard-1", camera="camera.yard", reason="low_confidence")
    newer = await submit(queue, "door-2", camera="camera.door", reason="low_confidence")

    first_review = await queue.get(first.review_id or "")
    assert first_review is not None
    assert first_review.status == "superseded"
    assert first_review.superseded_by == newer.review_id
    for untouched in (other_reason, other_camera, newer):
        review = await queue.get(untouched.review_id or "")
        assert review is not None
        assert review.status == "queued"
    # The newer review is due when the first would have been: bursts cannot starve a camera.
    due = await database.run(
        lambda tx: tx.execute(
            "SELECT idempotency_key, not_before FROM reviews WHERE idempotency_key IN "
            "('door-1', 'door-2')"
        ).fetchall()
    )
    not_before = {row[0]: row[1] for row in due}
    assert not_before["door-2"] == not_before["door-1"]
    assert (await queue.stats()).superseded == 1
    assert await queue.frame(first.review_id or "") is None


async def test_reviews_older_than_the_batch_window_are_not_superseded(database: Database) -> None:
    queue = make_queue(database, window_s=5)
    old = await submit(queue, "door-1", camera="camera.door")
    await database.run(lambda tx: tx.execute("UPDATE reviews SET created_at = created_at - 6"))
    await submit(queue, "door-2", camera="camera.door")

    review = await queue.get(old.review_id or "")
    assert review is not None
    assert review.status == "queued"


async def test_no_window_means_no_coalescing(database: Database) -> None:
    queue = make_queue(database, window_s=0)
    await submit(queue, "door-1", camera="camera.door")
    await submit(queue, "door-2", camera="camera.door")
    assert await claim_all(queue) == ["door-1", "door-2"]


# --- Results, exactly once ----------------------------------------------------------------------


async def test_a_review_gets_exactly_one_verdict_even_when_an_old_attempt_finishes(
    database: Database,
) -> None:
    queue = make_queue(database)
    await submit(queue, "once")
    first_attempt = await queue.claim()
    assert isinstance(first_attempt, ClaimedReview)

    # A crash: the restart puts the review back and another attempt takes it.
    assert await queue.recover_in_flight() == 1
    second_attempt = await queue.claim()
    assert isinstance(second_attempt, ClaimedReview)
    assert second_attempt.attempts == 2

    assert await queue.complete(second_attempt, verdict_for(second_attempt))
    assert not await queue.complete(first_attempt, verdict_for(first_attempt))
    assert not await queue.complete(second_attempt, verdict_for(second_attempt))
    assert not await queue.retry(first_attempt, "late", 0, counts=True)
    assert not await queue.fail(first_attempt, "late")

    verdict_events = [e for e in await events(database) if e["type"] == "verdict"]
    assert len(verdict_events) == 1
    stats = await queue.stats()
    assert stats.processed == 1
    assert stats.agreement_rate == 1.0
    assert stats.teacher_latency_ms is not None
    assert stats.teacher_latency_ms.p50 == 12.5


async def test_retries_count_attempts_unless_the_teacher_was_unavailable(
    database: Database,
) -> None:
    queue = make_queue(database)
    added = await submit(queue, "retry")
    claimed = await queue.claim()
    assert isinstance(claimed, ClaimedReview)
    assert await queue.retry(claimed, "teacher down", 0, counts=False)
    review = await queue.get(added.review_id or "")
    assert review is not None
    assert (review.status, review.attempts, review.last_error) == ("queued", 0, "teacher down")

    claimed = await queue.claim()
    assert isinstance(claimed, ClaimedReview)
    assert await queue.retry(claimed, "500 from the teacher", 60, counts=True)
    assert isinstance(await queue.claim(), Idle)  # backing off
    review = await queue.get(added.review_id or "")
    assert review is not None
    assert review.attempts == 1

    await database.run(lambda tx: tx.execute("UPDATE reviews SET not_before = 0"))
    claimed = await queue.claim()
    assert isinstance(claimed, ClaimedReview)
    assert await queue.fail(claimed, "gave up")
    review = await queue.get(added.review_id or "")
    assert review is not None
    assert (review.status, review.attempts, review.last_error) == ("failed", 2, "gave up")
    assert (await queue.stats()).failed == 1


async def test_every_change_is_one_event_and_the_review_cursor_follows_it(
    database: Database,
) -> None:
    queue = make_queue(database)
    added = await submit(queue, "events")
    claimed = await queue.claim()
    assert isinstance(claimed, ClaimedReview)
    await queue.complete(claimed, verdict_for(claimed))

    log = await events(database)
    assert [row["type"] for row in log] == ["review", "review", "verdict", "review"]
    assert [row["seq"] for row in log] == [1, 2, 3, 4]
    assert added.cursor == 1
    review = await queue.get(added.review_id or "")
    assert review is not None
    assert review.cursor == 4
    page = await queue.changed_after(0, 10)
    assert [r.id for r in page.reviews] == [added.review_id]
    assert (await queue.changed_after(4, 10)).reviews == []


# --- Storage ------------------------------------------------------------------------------------


async def test_retention_forgets_old_finished_reviews_and_caps_frame_bytes(
    database: Database,
) -> None:
    queue = make_queue(database)
    for number in range(4):
        await submit(queue, f"r{number}", camera=f"camera.{number}")
    for _ in range(3):
        claimed = await queue.claim()
        assert isinstance(claimed, ClaimedReview)
        await queue.complete(claimed, verdict_for(claimed))
    # r0 finished long ago; r1 and r2 recently; r3 is still queued (and old).
    await database.run(
        lambda tx: tx.execute(
            "UPDATE reviews SET updated_at = updated_at - 100, created_at = created_at - 100 "
            "WHERE idempotency_key IN ('r0', 'r3')"
        )
    )
    await database.run(lambda tx: tx.execute("UPDATE events SET created_at = created_at - 100"))

    report = await database.run(
        lambda tx: apply_retention(tx, retention_s=50, frame_cap_bytes=len(FRAME) * 2)
    )

    assert report.reviews_deleted == 1
    assert report.events_deleted > 0
    remaining = await database.run(
        lambda tx: {
            row[0]: row[1]
            for row in tx.execute(
                "SELECT r.idempotency_key, f.bytes FROM reviews r "
                "LEFT JOIN frames f ON f.review_id = r.id"
            )
        }
    )
    # Over the cap the oldest finished frame goes (r1's); the queued review keeps its frame.
    assert remaining == {"r1": None, "r2": len(FRAME), "r3": len(FRAME)}
    assert report.frame_bytes == len(FRAME) * 2
    # The newest event survives, so the cursor sequence carries on.
    assert await database.run(lambda tx: tx.scalar("SELECT count(*) FROM events")) == 1


async def test_a_failing_job_rolls_back_alone(database: Database) -> None:
    def broken(tx: Transaction) -> None:
        tx.bump("accepted")
        raise ValueError("boom")

    def fine(tx: Transaction) -> None:
        tx.bump("processed")

    results = await asyncio.gather(database.run(broken), database.run(fine), return_exceptions=True)
    assert isinstance(results[0], ValueError)
    counters = await database.run(
        lambda tx: dict(tx.execute("SELECT name, value FROM counters").fetchall())
    )
    assert counters == {"processed": 1}


async def test_one_data_directory_serves_one_service(database: Database) -> None:
    second = Database(database.data_dir)
    with pytest.raises(DataDirLocked):
        await second.open()


async def test_a_closed_database_refuses_jobs(tmp_path: Path) -> None:
    db = Database(tmp_path)
    await db.open()
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(DatabaseClosed):
        await db.run(lambda tx: None)


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "vision_tutor.db")) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db = Database(tmp_path)
    with pytest.raises(RuntimeError, match="update the add-on"):
        await db.open()
    # The lock was released: a fixed database opens.
    with contextlib.closing(sqlite3.connect(tmp_path / "vision_tutor.db")) as conn:
        conn.execute("PRAGMA user_version = 0")
    await db.open()
    await db.close()


def test_the_token_is_made_once_private_and_kept(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    assert len(token) >= 40
    assert stat.S_IMODE(os.stat(tmp_path / "token").st_mode) == 0o600
    assert load_or_create_token(tmp_path) == token
    (tmp_path / "token").write_text("\n")
    assert load_or_create_token(tmp_path) != token  # an empty file is replaced


def test_percentiles_interpolate() -> None:
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 0.0], 1.0) == 10.0


async def test_reviews_from_before_camera_names_keep_everything_and_have_none(
    tmp_path: Path,
) -> None:
    """Migration 6 adds the camera's name to a database made before it, reviews intact."""
    db = Database(tmp_path)
    await db.open()
    old = await submit(make_queue(db), "before-names")
    await db.close()
    # The database as version 5 left it: no camera_name column.
    with contextlib.closing(sqlite3.connect(tmp_path / "vision_tutor.db")) as conn:
        conn.execute("ALTER TABLE reviews DROP COLUMN camera_name")
        conn.execute("PRAGMA user_version = 5")
        conn.commit()

    db = Database(tmp_path)
    await db.open()
    try:
        queue = make_queue(db)
        assert old.review_id is not None
        review = await queue.get(old.review_id)
        assert review is not None
        assert (review.camera, review.camera_name, review.status) == (
            "camera.front_door",
            "",
            ReviewStatus.QUEUED,
        )
        assert await queue.frame(old.review_id) == FRAME
        named = await submit(queue, "after-names", camera_name="Front door")
        assert named.review_id is not None
        again = await queue.get(named.review_id)
        assert again is not None
        assert again.camera_name == "Front door"
    finally:
        await db.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "vision_tutor.db")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
