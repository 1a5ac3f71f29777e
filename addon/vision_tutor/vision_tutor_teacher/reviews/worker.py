"""The reviewers: take due reviews from the queue, ask the teacher, record verdicts.

``teacher_concurrency`` reviewer loops run side by side, so at most that many teacher calls are
in flight. When the teacher turns out to be unavailable the loops stop claiming work and a probe
checks the teacher with a growing delay until it answers again: the queue holds meanwhile, and
health says degraded. While the teacher is up the probe still runs every ``probe_interval_s``, so
health notices an outage even when no review is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from vision_tutor_teacher.models import Observation, Verdict
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.storage.database import DatabaseClosed
from vision_tutor_teacher.teacher import (
    EmbeddingFailed,
    ReviewAttemptFailed,
    Teacher,
    TeacherUnavailable,
)

from .agreement import cosine, judge
from .queue import ClaimedReview, Idle, ReviewQueue

_LOGGER = logging.getLogger(__name__)

FIRST_PROBE_DELAY_S: Final = 0.5
"""How soon a teacher found down is checked again; the delay doubles up to probe_interval_s."""


class TeacherHealth:
    """What is known about the teacher's reachability, shared by reviewers, probe and API."""

    def __init__(self) -> None:
        self.error: str | None = "not checked yet"
        self.up = asyncio.Event()
        """Set while reviewers may call the teacher."""
        self.changed = asyncio.Event()

    @property
    def reachable(self) -> bool:
        return self.error is None

    def mark_up(self) -> None:
        if self.error is not None:
            _LOGGER.info("The teacher is reachable")
        self.error = None
        self.up.set()

    def mark_down(self, error: str) -> None:
        if self.error != error:
            _LOGGER.warning("The teacher is unavailable, holding the queue: %s", error)
        self.error = error
        self.up.clear()
        self.changed.set()


class ReviewWorker:
    """The reviewer loops and the teacher probe."""

    def __init__(self, queue: ReviewQueue, teacher: Teacher, options: Options) -> None:
        self.queue = queue
        self.teacher = teacher
        self.options = options
        self.health = TeacherHealth()
        self._work = asyncio.Event()

    def wake(self) -> None:
        """Tell idle reviewers that a review was queued."""
        self._work.set()

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff after the n-th failed attempt."""
        return min(self.options.retry_base_s * 2.0 ** (attempts - 1), self.options.retry_max_s)

    async def check_teacher(self) -> None:
        """Probe the teacher once and record the result."""
        error = await self.teacher.probe()
        if error is None:
            self.health.mark_up()
        else:
            self.health.mark_down(error)

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._probe_loop(), name="vision-tutor-probe")
            for number in range(self.options.teacher_concurrency):
                group.create_task(self._review_loop(), name=f"vision-tutor-reviewer-{number}")

    async def _probe_loop(self) -> None:
        delay = FIRST_PROBE_DELAY_S
        while True:
            if self.health.reachable:
                delay = FIRST_PROBE_DELAY_S
                self.health.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.probe_interval_s):
                        await self.health.changed.wait()
                if self.health.reachable:
                    await self.check_teacher()
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.probe_interval_s)
            await self.check_teacher()

    async def _review_loop(self) -> None:
        while True:
            await self.health.up.wait()
            # Cleared before claiming: a review queued after this point sets it again, so
            # the wait below cannot sleep through it.
            self._work.clear()
            try:
                item = await self.queue.claim()
            except DatabaseClosed:
                return
            if isinstance(item, Idle):
                await self._idle(item)
                continue
            try:
                await self.review(item)
            except asyncio.CancelledError:
                # Shutting down mid-review: give the attempt back so the restart does not
                # count it against the review.
                with contextlib.suppress(Exception):
                    await self.queue.retry(item, "interrupted by shutdown", 0, counts=False)
                raise
            except DatabaseClosed:
                return
            except Exception as err:
                # A bug must not stop the reviewers; the review is retried like any failure.
                _LOGGER.exception("Unexpected error reviewing %s", item.id)
                await self._attempt_failed(item, f"internal error: {err!r}")

    async def _idle(self, idle: Idle) -> None:
        timeout = None if idle.next_due is None else max(0.0, idle.next_due - time.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._work.wait()

    async def review(self, claimed: ClaimedReview) -> None:
        """One attempt at one review, with its outcome recorded in the queue."""
        try:
            answer = await self.teacher.review(claimed)
        except TeacherUnavailable as err:
            if err.reachable:  # busy: back off, but the teacher is up
                await self.queue.retry(
                    claimed, str(err), self.retry_delay(claimed.attempts), counts=False
                )
            else:
                await self.queue.retry(claimed, str(err), 0, counts=False)
                self.health.mark_down(str(err))
            return
        except ReviewAttemptFailed as err:
            await self._attempt_failed(claimed, str(err))
            return
        self.health.mark_up()
        verdict = await self._verdict(claimed, answer.observation, answer.latency_ms)
        if not await self.queue.complete(claimed, verdict):
            _LOGGER.info("Review %s was settled by another attempt; verdict dropped", claimed.id)

    async def _attempt_failed(self, claimed: ClaimedReview, error: str) -> None:
        if claimed.attempts >= self.options.max_attempts:
            _LOGGER.warning(
                "Review %s failed %d times, dead-lettered: %s", claimed.id, claimed.attempts, error
            )
            await self.queue.fail(claimed, error)
        else:
            delay = self.retry_delay(claimed.attempts)
            _LOGGER.info(
                "Review %s attempt %d failed, retrying in %.1f s: %s",
                claimed.id,
                claimed.attempts,
                delay,
                error,
            )
            await self.queue.retry(claimed, error, delay, counts=True)

    async def _verdict(
        self, claimed: ClaimedReview, observation: Observation, latency_ms: float
    ) -> Verdict:
        student = claimed.student.answer
        similarity: float | None = None
        if student is not None:
            try:
                first, second = await self.teacher.embed_pair(student.summary, observation.summary)
                similarity = cosine(first, second)
            except (EmbeddingFailed, ValueError) as err:
                _LOGGER.warning(
                    "Embedding failed for review %s, agreement on flags only: %s", claimed.id, err
                )
        agrees, agreement = judge(
            student, observation, similarity, self.options.agreement_threshold
        )
        return Verdict(
            review_id=claimed.id,
            idempotency_key=claimed.idempotency_key,
            camera=claimed.camera,
            reason=claimed.reason,
            verdict=observation,
            agrees_with_student=agrees,
            agreement=agreement,
            teacher_model=self.teacher.model,
            latency_ms=latency_ms,
        )
