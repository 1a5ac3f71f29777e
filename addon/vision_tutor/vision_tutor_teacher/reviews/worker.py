"""The reviewers: take due reviews from the queue, ask the teacher, record verdicts.

``teacher_concurrency`` reviewer loops run side by side (each under the service's supervisor),
so at most that many teacher calls are in flight. Three things hold them back:

* **Reachability.** When the teacher turns out to be unavailable (nothing listens, no model) the
  loops stop claiming work and a probe checks the teacher with a growing delay until it answers
  again: the queue holds meanwhile, and health says degraded. While the teacher is up the probe
  still runs every ``probe_interval_s``, so health notices an outage even when nothing waits.
* **The circuit breaker** (`vision_tutor_teacher.reviews.breaker`): a teacher that answers but
  fails every review (500s, timeouts) stops dispatch without spending the reviews' attempts.
* **Busy answers** (503): every reviewer pauses for an exponentially growing, jittered delay.

A storage error never ends a loop: claiming is retried, and an outcome that could not be
recorded (a verdict, a retry) is kept and recorded once the database can write again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
import contextlib
from functools import partial
import logging
import time
from typing import Any, Final

from vision_tutor_teacher.models import Observation, Verdict
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.storage.database import DatabaseClosed, StorageError
from vision_tutor_teacher.supervision import jittered
from vision_tutor_teacher.teacher import (
    EmbeddingFailed,
    ReviewAttemptFailed,
    Teacher,
    TeacherUnavailable,
)

from .agreement import cosine, judge
from .breaker import Breaker, FailedAttempt
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
        self.breaker = Breaker(
            options.breaker_failures, options.breaker_first_probe_s, options.breaker_max_probe_s
        )
        self.busy_answers = 0
        """Busy (503) answers since the service started (for the metrics)."""
        self._busy_streak = 0
        self._busy_until = 0.0
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

    def parts(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """The loops to run, by name, each under the supervisor."""
        loops: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "teacher-probe": self._probe_loop
        }
        for number in range(self.options.teacher_concurrency):
            loops[f"reviewer-{number}"] = self._review_loop
        return loops

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

    async def _may_dispatch(self) -> bool:
        """Wait until a review may go to the teacher; True when it goes as the breaker's probe."""
        while True:
            await self.health.up.wait()
            busy_s = self._busy_until - time.monotonic()
            if busy_s > 0:
                await asyncio.sleep(busy_s)
                continue
            if self.breaker.closed:
                return False
            if self.breaker.try_probe():
                return True
            timeout = self.breaker.probe_due_in() if self.breaker.state == "open" else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.breaker.changed.wait()

    async def _review_loop(self) -> None:
        while True:
            probe = await self._may_dispatch()
            # Cleared before claiming: a review queued after this point sets it again, so
            # the wait below cannot sleep through it.
            self._work.clear()
            try:
                item = await self.queue.claim()
            except StorageError as err:
                if probe:
                    self.breaker.probe_not_sent()
                await self._storage_pause(err)
                continue
            except BaseException:
                if probe:
                    self.breaker.probe_not_sent()
                raise
            if isinstance(item, Idle):
                if probe:
                    self.breaker.probe_not_sent()
                await self._idle(item)
                continue
            try:
                await self.review(item, probe=probe)
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
                await self._record(partial(self._attempt_failed, item, f"internal error: {err!r}"))

    async def _idle(self, idle: Idle) -> None:
        timeout = None if idle.next_due is None else max(0.0, idle.next_due - time.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._work.wait()

    async def _storage_pause(self, err: StorageError) -> None:
        _LOGGER.debug("Reviewers wait for the database: %s", err)
        await asyncio.sleep(jittered(self.options.storage_retry_s))

    async def _record(self, write: Callable[[], Awaitable[object]]) -> None:
        """Record an outcome; while storage fails, keep it and try again (never drop it)."""
        while True:
            try:
                await write()
            except StorageError as err:
                await self._storage_pause(err)
            else:
                return

    async def review(self, claimed: ClaimedReview, *, probe: bool = False) -> None:
        """One attempt at one review, with its outcome recorded in the queue."""
        try:
            answer = await self.teacher.review(claimed)
        except TeacherUnavailable as err:
            # Busy: everyone backs off, but the teacher is up. Otherwise it is down.
            delay = self._busy() if err.reachable else 0.0
            note = str(err)
            if err.reachable:
                note += f" ({self._busy_streak} in a row: the reviewers pause {delay:.3f} s)"
            if probe:
                self.breaker.probe_not_sent(delay)
            await self._record(partial(self.queue.retry, claimed, note, 0, counts=False))
            if not err.reachable:
                self.health.mark_down(str(err))
            return
        except ReviewAttemptFailed as err:
            await self._failed(claimed, str(err))
            return
        self._busy_streak = 0
        self.breaker.success()
        self.health.mark_up()
        verdict = await self._verdict(claimed, answer.observation, answer.latency_ms)
        settled = False

        async def complete() -> None:
            nonlocal settled
            settled = await self.queue.complete(claimed, verdict)

        await self._record(complete)
        if not settled:
            _LOGGER.info("Review %s was settled by another attempt; verdict dropped", claimed.id)

    def _busy(self) -> float:
        """Back off after a busy answer: the delay doubles with every busy answer in a row."""
        self.busy_answers += 1
        self._busy_streak += 1
        delay = jittered(
            min(
                self.options.retry_base_s * 2.0 ** (self._busy_streak - 1),
                self.options.retry_max_s,
            )
        )
        self._busy_until = max(self._busy_until, time.monotonic() + delay)
        _LOGGER.info("The teacher is busy; reviewers pause for %.1f s", delay)
        return delay

    async def _failed(self, claimed: ClaimedReview, error: str) -> None:
        """A failed attempt: the review's own, or (breaker open) the teacher's."""
        given_back = self.breaker.failure(FailedAttempt(claimed.id, claimed.attempts), error)
        if given_back is None:
            await self._record(partial(self._attempt_failed, claimed, error))
            return
        note = f"{error} (not counted: the teacher fails systemically)"
        await self._record(partial(self.queue.retry, claimed, note, 0, counts=False))
        # Latest first, so a review that failed twice in the run is given both attempts back.
        for attempt in reversed(given_back):
            if (attempt.review_id, attempt.attempts) != (claimed.id, claimed.attempts):
                await self._record(
                    partial(self.queue.give_back, attempt.review_id, attempt.attempts, note)
                )

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
