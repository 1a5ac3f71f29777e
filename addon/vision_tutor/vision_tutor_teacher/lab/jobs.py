"""The lab's jobs as rows of ``lab_jobs``, announced with ``job`` events, and their progress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
import json
from typing import Any, Final

from pydantic import BaseModel

from vision_tutor_teacher.storage.database import Database, Transaction, dumps

from .models import (
    JobEvent,
    JobKind,
    JobList,
    JobOut,
    JobState,
)

PROGRESS_STEP: Final = 0.05
"""A ``job`` event at most every 5 % of progress (and on every stage change)."""
JOBS_LISTED: Final = 20


def _job_out(row: Any) -> JobOut:
    return JobOut(
        job_id=row["id"],
        kind=JobKind(row["kind"]),
        state=row["state"],
        progress=row["progress"],
        message=row["message"],
        result=None if row["result"] is None else json.loads(row["result"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
    )


def insert_job(tx: Transaction, job_id: str, kind: JobKind, request: BaseModel) -> JobOut:
    tx.execute(
        "INSERT INTO lab_jobs (id, kind, state, progress, message, request, created_at, "
        "updated_at) VALUES (?, ?, 'queued', 0, 'waiting for the lab', ?, ?, ?)",
        (job_id, kind.value, request.model_dump_json(), tx.now, tx.now),
    )
    job = get_job(tx, job_id)
    assert job is not None
    tx.emit("job", JobEvent.model_validate(job.model_dump()).model_dump(mode="json"))
    return job


def update_job(
    tx: Transaction,
    job_id: str,
    state: JobState,
    progress: float,
    message: str,
    result: dict[str, Any] | None = None,
) -> None:
    # A finished job stays finished, whatever a straggling progress report says.
    changed = tx.execute(
        "UPDATE lab_jobs SET state = ?, progress = ?, message = ?, result = coalesce(?, result), "
        "updated_at = ? WHERE id = ? AND state IN ('queued', 'running')",
        (state.value, progress, message, None if result is None else dumps(result), tx.now, job_id),
    ).rowcount
    if not changed:
        return
    kind = JobKind(tx.scalar("SELECT kind FROM lab_jobs WHERE id = ?", (job_id,)))
    event = JobEvent(job_id=job_id, kind=kind, state=state, progress=progress, message=message)
    tx.emit("job", event.model_dump(mode="json"))


def get_job(tx: Transaction, job_id: str) -> JobOut | None:
    row = tx.one("SELECT * FROM lab_jobs WHERE id = ?", (job_id,))
    return None if row is None else _job_out(row)


def recent_jobs(tx: Transaction, limit: int) -> JobList:
    rows = tx.execute(
        "SELECT * FROM lab_jobs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
    ).fetchall()
    return JobList(jobs=[_job_out(row) for row in rows])


def job_request(tx: Transaction, job_id: str) -> tuple[JobKind, str]:
    row = tx.one("SELECT kind, request FROM lab_jobs WHERE id = ?", (job_id,))
    assert row is not None  # jobs are never deleted
    return JobKind(row["kind"]), row["request"]


def fail_interrupted(tx: Transaction) -> int:
    """After a restart: jobs that were queued or running will not resume; say so."""
    rows = tx.execute("SELECT id FROM lab_jobs WHERE state IN ('queued', 'running')").fetchall()
    for row in rows:
        update_job(tx, row["id"], JobState.FAILED, 1.0, "interrupted by a restart")
    return len(rows)


class Progress:
    """A job's progress, announced at most every `PROGRESS_STEP` and on every new message."""

    def __init__(self, db: Database, job_id: str) -> None:
        self.db = db
        self.job_id = job_id
        self.fraction = 0.0
        self.message = ""
        self._announced = -1.0

    async def report(self, fraction: float, message: str | None = None) -> None:
        fraction = round(max(self.fraction, min(1.0, fraction)), 4)
        changed = message is not None and message != self.message
        self.fraction = fraction
        if message is not None:
            self.message = message
        if changed or fraction - self._announced >= PROGRESS_STEP:
            self._announced = fraction
            await self.db.run(
                partial(
                    update_job,
                    job_id=self.job_id,
                    state=JobState.RUNNING,
                    progress=fraction,
                    message=self.message,
                )
            )

    def stage(
        self, start: float, end: float, message: str
    ) -> Callable[[int, int], Awaitable[None]]:
        """A callback ``advance(done, total)`` mapping a stage's steps onto start..end."""

        async def advance(done: int, total: int) -> None:
            share = done / total if total else 1.0
            await self.report(start + (end - start) * share, message)

        return advance
