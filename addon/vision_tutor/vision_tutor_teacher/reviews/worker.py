"""The reviewers: take due reviews from the queue, ask a teacher host, record verdicts.

The teacher is a pool of one or more hosts (`vision_tutor_teacher.reviews.pool`), each taking
up to its concurrency of reviews at once; as many reviewer loops run side by side (each under
the service's supervisor) as the hosts take together. A reviewer first takes a slot of the host
the dispatch rule picks, then claims the most important due review for it, so the priority order
holds across the pool. Three things hold a host back, each host on its own:

* **Reachability.** When a host turns out to be unavailable (nothing listens, no model, a model
  without vision) it takes no more reviews and its probe checks it with a growing delay until it
  answers again; the review it had goes back to the queue without spending an attempt, for
  another host. An answer that broke off, or never came, from a host that is then found gone
  (killed mid-answer) is the host's failure too. With every host down the queue holds, and
  health says degraded. While a host is up its probe still runs every ``probe_interval_s``, so
  health notices an outage even when nothing waits.
* **The circuit breaker** (`vision_tutor_teacher.reviews.breaker`), one per host: a host that
  answers but fails every review (500s, timeouts) gets none without spending their attempts.
* **Busy answers** (503): the reviewers leave that host alone for an exponentially growing,
  jittered delay.

A storage error never ends a loop: claiming is retried, and an outcome that could not be
recorded (a verdict, a retry) is kept and recorded once the database can write again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
import contextlib
from functools import partial
import logging
import time
from typing import Any, Final, cast

from vision_tutor_teacher.models import Observation, Verdict
from vision_tutor_teacher.options import Options, TeacherHost
from vision_tutor_teacher.storage.database import DatabaseClosed, StorageError
from vision_tutor_teacher.supervision import jittered
from vision_tutor_teacher.teacher import (
    EmbeddingFailed,
    ReviewAttemptFailed,
    Teacher,
    TeacherUnavailable,
)

from .agreement import cosine, judge
from .breaker import Breaker, BreakerState, FailedAttempt
from .pool import PoolHost, TeacherHealth, next_wake, pick
from .queue import ClaimedReview, Idle, ReviewQueue

_LOGGER = logging.getLogger(__name__)

FIRST_PROBE_DELAY_S: Final = 0.5
"""How soon a teacher found down is checked again; the delay doubles up to probe_interval_s."""


class ReviewWorker:
    """The reviewer loops and the probes of the teacher pool's hosts."""

    def __init__(self, queue: ReviewQueue, teachers: Sequence[Teacher], options: Options) -> None:
        if not teachers:
            raise ValueError("the pool needs at least one teacher host")
        self.queue = queue
        self.options = options
        self._changed = asyncio.Event()
        pooled = len(teachers) > 1
        configs = options.teacher_hosts
        self.hosts = [
            PoolHost(
                index,
                configs[index]
                if index < len(configs)
                else TeacherHost(teacher.url, teacher.model, 1, options.teacher_concurrency),
                teacher,
                Breaker(
                    options.breaker_failures,
                    options.breaker_first_probe_s,
                    options.breaker_max_probe_s,
                    on_change=self._notify,
                    label=f"the teacher at {teacher.url}" if pooled else "the teacher",
                ),
                pooled=pooled,
                on_change=self._notify,
            )
            for index, teacher in enumerate(teachers)
        ]
        self._work = asyncio.Event()

    @property
    def pooled(self) -> bool:
        return len(self.hosts) > 1

    @property
    def teacher(self) -> Teacher:
        """The first host's teacher (the one the prompt lab also uses)."""
        return self.hosts[0].teacher

    @property
    def health(self) -> TeacherHealth:
        """The first host's reachability; `reachable` and `teacher_error` speak for the pool."""
        return self.hosts[0].health

    @property
    def reachable(self) -> bool:
        """Whether any host of the pool can review."""
        return any(host.health.reachable for host in self.hosts)

    @property
    def teacher_error(self) -> str | None:
        """None while some host is reachable; otherwise what is wrong with each."""
        if self.reachable:
            return None
        if not self.pooled:
            return self.hosts[0].health.error
        return "; ".join(f"{host.url}: {host.health.error}" for host in self.hosts)

    @property
    def breaker_state(self) -> BreakerState:
        """Closed while some reachable host's breaker is: the pool's reviews are held by the
        breakers only when none is."""
        reachable = [host for host in self.hosts if host.health.reachable] or self.hosts
        states = {host.breaker.state for host in reachable}
        for state in ("closed", "half_open"):
            if state in states:
                return cast("BreakerState", state)
        return "open"

    @property
    def busy_answers(self) -> int:
        """Busy (503) answers since the service started, all hosts (for the metrics)."""
        return sum(host.busy_answers for host in self.hosts)

    @property
    def breaker_opened(self) -> int:
        return sum(host.breaker.opened for host in self.hosts)

    def reasons(self) -> list[str]:
        """What is failing in the pool, for health: a host down, a breaker open."""
        reasons = []
        for host in self.hosts:
            prefix = f"teacher {host.url}: " if self.pooled else ""
            if host.health.error is not None:
                reasons.append(f"{prefix or 'teacher '}unavailable: {host.health.error}")
            if host.breaker.reason is not None:
                reasons.append(f"{prefix}{host.breaker.reason}")
        return reasons

    def _notify(self) -> None:
        """A host's state changed: reviewers waiting for a host look again."""
        self._changed.set()
        self._changed.clear()

    def wake(self) -> None:
        """Tell idle reviewers that a review was queued."""
        self._work.set()

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff after the n-th failed attempt."""
        return min(self.options.retry_base_s * 2.0 ** (attempts - 1), self.options.retry_max_s)

    async def check_teacher(self) -> None:
        """Probe every host once and record the results."""
        await asyncio.gather(*(self._check(host) for host in self.hosts))

    async def _check(self, host: PoolHost) -> None:
        error = await host.teacher.probe()
        if error is None:
            host.health.mark_up()
        else:
            host.health.mark_down(error)

    def parts(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """The loops to run, by name, each under the supervisor: a probe per host, and as many
        reviewers as the hosts take reviews at once."""
        loops: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        for host in self.hosts:
            name = "teacher-probe" if host.index == 0 else f"teacher-probe-{host.index}"
            loops[name] = partial(self._probe_loop, host)
        slots = sum(host.config.concurrency for host in self.hosts)
        for number in range(slots):
            loops[f"reviewer-{number}"] = self._review_loop
        return loops

    async def _probe_loop(self, host: PoolHost) -> None:
        delay = FIRST_PROBE_DELAY_S
        health = host.health
        while True:
            if health.reachable:
                delay = FIRST_PROBE_DELAY_S
                health.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.probe_interval_s):
                        await health.changed.wait()
                if health.reachable:
                    await self._check(host)
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.probe_interval_s)
            await self._check(host)

    async def _acquire(self) -> tuple[PoolHost, bool]:
        """Wait for a host that may take a review now and take one of its slots; True when the
        review goes as its breaker's probe (see `vision_tutor_teacher.reviews.pool`)."""
        while True:
            now = time.monotonic()
            index = pick([host.load(now) for host in self.hosts])
            if index is not None:
                host = self.hosts[index]
                probe = not host.breaker.closed and host.breaker.try_probe()
                host.outstanding += 1
                return host, probe
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_wake(self.hosts)):
                    await self._changed.wait()

    def _release(self, host: PoolHost) -> None:
        host.outstanding -= 1
        self._notify()

    async def _review_loop(self) -> None:
        while True:
            host, probe = await self._acquire()
            try:
                idle = await self._take_one(host, probe)
            except DatabaseClosed:
                return
            finally:
                self._release(host)
            if idle is not None:
                await self._idle(idle)

    async def _take_one(self, host: PoolHost, probe: bool) -> Idle | None:
        """Claim the most important due review and have `host` review it; Idle when none is
        due (the slot is given up while waiting)."""
        # Cleared before claiming: a review queued after this point sets it again, so the
        # wait for work cannot sleep through it.
        self._work.clear()
        try:
            item = await self.queue.claim()
        except StorageError as err:
            if probe:
                host.breaker.probe_not_sent()
            await self._storage_pause(err)
            return None
        except BaseException:
            if probe:
                host.breaker.probe_not_sent()
            raise
        if isinstance(item, Idle):
            if probe:
                host.breaker.probe_not_sent()
            return item
        try:
            await self.review(item, probe=probe, host=host)
        except asyncio.CancelledError:
            # Shutting down mid-review: give the attempt back so the restart does not
            # count it against the review.
            with contextlib.suppress(Exception):
                await self.queue.retry(item, "interrupted by shutdown", 0, counts=False)
            raise
        except DatabaseClosed:
            raise
        except Exception as err:
            # A bug must not stop the reviewers; the review is retried like any failure.
            _LOGGER.exception("Unexpected error reviewing %s", item.id)
            await self._record(partial(self._attempt_failed, item, f"internal error: {err!r}"))
        return None

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

    async def review(
        self, claimed: ClaimedReview, *, probe: bool = False, host: PoolHost | None = None
    ) -> None:
        """One attempt at one review on one host, with its outcome recorded in the queue."""
        host = host or self.hosts[0]
        try:
            answer = await host.teacher.review(claimed)
        except TeacherUnavailable as err:
            # Busy: everyone backs off from this host, but it is up. Otherwise it is down, and
            # the review goes back to the pool for another host (no attempt spent).
            delay = self._busy(host) if err.reachable else 0.0
            note = str(err)
            if err.reachable:
                note += f" ({host.busy_streak} in a row: the reviewers pause {delay:.3f} s)"
            if probe:
                host.breaker.probe_not_sent(delay)
            await self._record(partial(self.queue.retry, claimed, note, 0, counts=False))
            if not err.reachable:
                host.moved += 1
                host.health.mark_down(str(err))
            return
        except ReviewAttemptFailed as err:
            host.failed_attempts += 1
            if err.host_suspect and await self._host_gone(host):
                if probe:
                    host.breaker.probe_not_sent()
                host.moved += 1
                note = f"{err} (not counted: the teacher at {host.url} stopped answering)"
                await self._record(partial(self.queue.retry, claimed, note, 0, counts=False))
                return
            await self._failed(host, claimed, str(err))
            return
        host.busy_streak = 0
        host.breaker.success()
        host.health.mark_up()
        verdict = await self._verdict(host.teacher, claimed, answer.observation, answer.latency_ms)
        settled = False

        async def complete() -> None:
            nonlocal settled
            settled = await self.queue.complete(claimed, verdict)

        await self._record(complete)
        if settled:
            host.reviewed += 1
        else:
            _LOGGER.info("Review %s was settled by another attempt; verdict dropped", claimed.id)

    async def _host_gone(self, host: PoolHost) -> bool:
        """After an answer that broke off or never came: is the host itself gone? Then it is
        marked down (its probe brings it back) and the failure is the host's."""
        error = await host.teacher.probe()
        if error is None:
            return False
        host.health.mark_down(error)
        return True

    def _busy(self, host: PoolHost) -> float:
        """Back off from a busy host: the delay doubles with every busy answer in a row."""
        host.busy_answers += 1
        host.busy_streak += 1
        delay = jittered(
            min(
                self.options.retry_base_s * 2.0 ** (host.busy_streak - 1),
                self.options.retry_max_s,
            )
        )
        host.busy_until = max(host.busy_until, time.monotonic() + delay)
        _LOGGER.info(
            "Busy answer from %s; reviewers leave it alone for %.1f s", host.health.label, delay
        )
        self._notify()
        return delay

    async def _failed(self, host: PoolHost, claimed: ClaimedReview, error: str) -> None:
        """A failed attempt: the review's own, or (breaker open) the host's."""
        given_back = host.breaker.failure(FailedAttempt(claimed.id, claimed.attempts), error)
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
        self, teacher: Teacher, claimed: ClaimedReview, observation: Observation, latency_ms: float
    ) -> Verdict:
        student = claimed.student.answer
        similarity: float | None = None
        if student is not None:
            try:
                first, second = await teacher.embed_pair(student.summary, observation.summary)
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
            teacher_model=teacher.model,
            latency_ms=latency_ms,
        )
