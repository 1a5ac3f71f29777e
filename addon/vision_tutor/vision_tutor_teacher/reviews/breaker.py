"""The teacher's circuit breaker: a teacher that fails every review must not burn the queue.

A review's attempt is spent only on a failure specific to that review. A failure is taken as the
teacher's, not the review's, once `threshold` attempts in a row have failed across at least two
different reviews with no success between them. Then the breaker **opens**:

* the reviewers stop dispatching; the reviews stay queued, and the attempts of the run of
  failures that opened it are given back;
* after `first_probe_s` one reviewer sends one real review (**half-open**): a reachability
  check only lists the models and would not notice a teacher that answers 500 to every chat;
* an answer closes the breaker and the queue resumes; another failure re-opens it and the next
  probe waits twice as long, up to `max_probe_s`.

Health is ``degraded`` while the breaker is not closed, with the failures that opened it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import logging
import time
from typing import Final, Literal

_LOGGER = logging.getLogger(__name__)

DISTINCT_REVIEWS: Final = 2
"""Failures of one review alone are that review's; systemic ones span at least this many."""

type BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    review_id: str
    attempts: int
    """The review's attempt count including the failed attempt."""


class Breaker:
    """See the module docstring. All methods run on the event loop."""

    def __init__(
        self,
        threshold: int,
        first_probe_s: float,
        max_probe_s: float,
        on_change: Callable[[], None] = lambda: None,
        label: str = "the teacher",
    ) -> None:
        self.threshold = threshold
        self.label = label
        """How the log names the host ("the teacher at URL" in a pool)."""
        self._on_change = on_change
        self.first_probe_s = first_probe_s
        self.max_probe_s = max_probe_s
        self.state: BreakerState = "closed"
        self.reason: str | None = None
        self.interval_s = first_probe_s
        self.next_probe_at = 0.0
        """``time.monotonic()`` when the next probe may go (while open)."""
        self.opened = 0
        """How often it opened since the service started (for the metrics)."""
        self.changed = asyncio.Event()
        self._run: list[FailedAttempt] = []

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def probe_due_in(self) -> float:
        return max(0.0, self.next_probe_at - time.monotonic())

    def try_probe(self) -> bool:
        """Whether the caller may send the probe now (and becomes the prober)."""
        if self.state != "open" or self.probe_due_in() > 0:
            return False
        self.state = "half_open"
        self._notify()
        return True

    def probe_not_sent(self, delay_s: float = 0.0) -> None:
        """The prober found nothing to send, or the teacher was busy: wait for the next one."""
        if self.state == "half_open":
            self.state = "open"
            self.next_probe_at = max(self.next_probe_at, time.monotonic() + delay_s)
            self._notify()

    def success(self) -> None:
        self._run.clear()
        if self.state != "closed":
            _LOGGER.info(
                "%s answers again; circuit breaker closed, queue resumed",
                self.label[:1].upper() + self.label[1:],
            )
            self.state = "closed"
            self.reason = None
            self.interval_s = self.first_probe_s
            self._notify()

    def failure(self, attempt: FailedAttempt, error: str) -> list[FailedAttempt] | None:
        """Record a failed attempt. None while the failure counts as the review's own;
        otherwise the breaker is open and the attempts listed are to be given back."""
        if self.state == "half_open":
            self.interval_s = min(self.interval_s * 2, self.max_probe_s)
            self._open(f"the probe failed too: {error}")
            return [attempt]
        if self.state == "open":
            return [attempt]  # a straggler that was already with the teacher
        self._run.append(attempt)
        reviews = {failed.review_id for failed in self._run}
        if len(self._run) < self.threshold or len(reviews) < DISTINCT_REVIEWS:
            return None
        run, self._run = self._run, []
        self.opened += 1
        self._open(
            f"{len(run)} attempts in a row failed across {len(reviews)} reviews, "
            f"the last with: {error}"
        )
        return run

    def _open(self, reason: str) -> None:
        self.state = "open"
        self.reason = (
            f"circuit breaker open, reviews held: {reason}; probing with a real review "
            f"every {self.interval_s:g} s"
        )
        self.next_probe_at = time.monotonic() + self.interval_s
        _LOGGER.warning(
            "%s fails systemically: %s", self.label[:1].upper() + self.label[1:], self.reason
        )
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed.clear()
        self._on_change()
