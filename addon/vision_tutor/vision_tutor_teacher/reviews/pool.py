"""The teacher pool: which host the next review goes to, and what is known about each host.

The queue decides *which* review goes next (priority, then age, across the whole pool: a safety
review waits for no audit, whichever host is free); this module decides *where*. A host may take
a review when it is reachable with its model (and `vision`), its circuit breaker lets the review
through, it is not pausing after a busy answer, and it has a free slot of its concurrency. Among
those, the review goes to the host with the fewest outstanding reviews relative to its
concurrency; a tie goes to the higher weight (the faster box), then to the earlier host in the
options.

Every host has its own reachability, breaker and busy backoff: one host that is down, fails every
review or is busy holds back only itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import logging
import time

from vision_tutor_teacher.options import TeacherHost
from vision_tutor_teacher.teacher import Teacher

from .breaker import Breaker

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HostLoad:
    """One host as the dispatch rule sees it."""

    index: int
    outstanding: int
    concurrency: int
    weight: int
    available: bool
    """Reachable, breaker closed (or its probe due), not pausing after a busy answer."""


def pick(hosts: Sequence[HostLoad]) -> int | None:
    """The index of the host the next review goes to, or None when no host can take one."""
    free = [host for host in hosts if host.available and host.outstanding < host.concurrency]
    if not free:
        return None
    best = min(
        free, key=lambda host: (host.outstanding / host.concurrency, -host.weight, host.index)
    )
    return best.index


class TeacherHealth:
    """What is known about one teacher host's reachability (its model and `vision` included)."""

    def __init__(self, label: str, on_change: Callable[[], None] = lambda: None) -> None:
        self.label = label
        """How the log names the host: "the teacher", or "the teacher at URL" in a pool."""
        self.error: str | None = "not checked yet"
        self.up = asyncio.Event()
        """Set while reviewers may call the host."""
        self.changed = asyncio.Event()
        self._on_change = on_change

    @property
    def reachable(self) -> bool:
        return self.error is None

    def mark_up(self) -> None:
        if self.error is not None:
            _LOGGER.info("%s is reachable", _capitalised(self.label))
        was_down = not self.up.is_set()
        self.error = None
        self.up.set()
        if was_down:
            self._on_change()

    def mark_down(self, error: str) -> None:
        if self.error != error:
            _LOGGER.warning(
                "%s is unavailable, holding its reviews: %s", _capitalised(self.label), error
            )
        self.error = error
        self.up.clear()
        self.changed.set()
        self._on_change()


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


class PoolHost:
    """One teacher host of the pool and its state: reachability, breaker, busy pause, load."""

    def __init__(
        self,
        index: int,
        config: TeacherHost,
        teacher: Teacher,
        breaker: Breaker,
        *,
        pooled: bool,
        on_change: Callable[[], None],
    ) -> None:
        self.index = index
        self.config = config
        self.teacher = teacher
        self.breaker = breaker
        self.health = TeacherHealth(
            f"the teacher at {config.url}" if pooled else "the teacher", on_change
        )
        self.outstanding = 0
        """Reviews this host is working on (or a reviewer is claiming one for it)."""
        self.busy_until = 0.0
        """``time.monotonic()`` until which this host is left alone after a busy answer."""
        self.busy_streak = 0
        self.busy_answers = 0
        self.reviewed = 0
        """Verdicts this host gave since the service started."""
        self.failed_attempts = 0
        """Attempts that failed on this host (counted against the review or given back)."""
        self.moved = 0
        """Reviews that were with this host when it went down, handed back to the pool."""

    @property
    def url(self) -> str:
        return self.config.url

    def load(self, now: float) -> HostLoad:
        return HostLoad(
            index=self.index,
            outstanding=self.outstanding,
            concurrency=self.config.concurrency,
            weight=self.config.weight,
            available=self.health.reachable
            and self.busy_until <= now
            and (
                self.breaker.closed
                or (self.breaker.state == "open" and self.breaker.probe_due_in() <= 0)
            ),
        )

    def wake_in(self, now: float) -> float | None:
        """Seconds until this host may become available by itself (busy pause, breaker probe)."""
        if not self.health.reachable:
            return None
        if self.busy_until > now:
            return self.busy_until - now
        if self.breaker.state == "open":
            return self.breaker.probe_due_in()
        return None


def next_wake(hosts: Sequence[PoolHost]) -> float | None:
    """The soonest a host that cannot take work now may be able to by itself."""
    now = time.monotonic()
    waits = [wait for host in hosts if (wait := host.wake_in(now)) is not None]
    return min(waits) if waits else None
