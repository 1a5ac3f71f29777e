"""The escalation outbox: every escalation reaches the teacher, or is reported as not reaching it.

An escalation is put in the outbox before anything is sent, and stays there (saved in Home
Assistant's storage, so it survives a restart) until the teacher service answers 202 or 200
with a review in its body. In between it is retried, with exponential backoff and jitter, after
a 429 (the service's queue is full), a 5xx, a timeout, a broken connection, or a 200/202 whose
body is not a review. The rules:

- **Order**: the most important escalation first (safety, student error, low confidence,
  temporal, audit), oldest first within a priority.
- **Bound**: at most `OUTBOX_LIMIT` escalations (each holds its frame). When a new one would
  exceed it, the least important one, oldest first, is dropped: audits go first, safety last;
  a new escalation less important than everything waiting is the one dropped.
- **Age**: an escalation older than the entry's maximum age (`CONF_OUTBOX_MAX_AGE`) is expired.
- **Permanent refusal**: a 4xx other than 408/429 (the service will never take this body) ends it.

Each outcome fires `vision_tutor_escalation` with ``outcome``: ``queued`` or ``duplicate`` (the
service has it), ``retrying`` (an attempt failed; with ``error``, ``attempt`` and ``retry_in``),
``refused``, ``expired`` or ``dropped``; and is handed to the camera, whose observation shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
import logging
import random
import time
from typing import Any, Final, Literal

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, EVENT_ESCALATION
from .teacher import SubmitResult, TeacherLink

_LOGGER = logging.getLogger(__name__)

OUTBOX_LIMIT: Final = 50
STORAGE_VERSION: Final = 1
SAVE_DELAY: Final = 1
BACKOFF_BASE_S: Final = 2.0
BACKOFF_MAX_S: Final = 300.0
JITTER: Final = 0.25
"""Each delay is drawn from ±25 % around the backoff, so cameras do not retry in step."""

type Outcome = Literal["queued", "duplicate", "retrying", "refused", "expired", "dropped"]
DELIVERED: Final = frozenset({"queued", "duplicate"})


@dataclass(slots=True)
class OutboxEntry:
    """One escalation waiting for the teacher service."""

    key: str
    """The idempotency key: the service answers a resend with the same review (200)."""
    camera: str
    priority: int
    created_at: float
    """Wall-clock time (epoch seconds) the escalation was made."""
    body: dict[str, Any]
    """The review as POSTed, image included."""
    event: dict[str, Any]
    """The `vision_tutor_escalation` event's data, without the outcome."""
    attempts: int = 0
    not_before: float = 0.0


def backoff(attempt: int, rng: random.Random) -> float:
    """Seconds to wait after the `attempt`-th failure: doubling from 2 s to 5 min, jittered."""
    delay: float = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    return delay * rng.uniform(1 - JITTER, 1 + JITTER)


def least_important(entries: list[OutboxEntry]) -> OutboxEntry:
    """The entry a full outbox drops: lowest priority, oldest first."""
    return min(entries, key=lambda entry: (entry.priority, entry.created_at))


class EscalationOutbox:
    """The entry's escalations on their way to the teacher service (see the module docstring)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        teacher: TeacherLink,
        *,
        max_age_s: float,
        on_outcome: Callable[[OutboxEntry, Outcome, Mapping[str, Any]], None],
        limit: int = OUTBOX_LIMIT,
        rng: random.Random | None = None,
    ) -> None:
        self.hass = hass
        self.teacher = teacher
        self.max_age_s = max_age_s
        self.limit = limit
        self._on_outcome = on_outcome
        self._rng = rng or random.Random()
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.outbox"
        )
        self._entries: dict[str, OutboxEntry] = {}
        self._wake = asyncio.Event()
        self._failures = 0
        self._hold_until = 0.0

    @property
    def depth(self) -> int:
        """Escalations waiting to reach the teacher service."""
        return len(self._entries)

    def summary(self) -> dict[str, Any]:
        """The outbox sensor's attributes: what waits, since when, and why the last send failed."""
        oldest = min((entry.created_at for entry in self._entries.values()), default=None)
        by_reason: dict[str, int] = {}
        for entry in self._entries.values():
            reason = str(entry.event.get("reason"))
            by_reason[reason] = by_reason.get(reason, 0) + 1
        return {
            "by_reason": by_reason,
            "oldest": None if oldest is None else dt_util.utc_from_timestamp(oldest),
            "last_error": self.teacher.submit_error,
            "limit": self.limit,
        }

    def pending(self, key: str) -> bool:
        """Whether this escalation is still waiting in the outbox."""
        return key in self._entries

    async def async_load(self) -> None:
        """The escalations left from before a restart (expired ones are reported at once)."""
        stored = await self._store.async_load() or {}
        for raw in stored.get("entries", ()):
            try:
                entry = OutboxEntry(**raw)
            except TypeError:
                _LOGGER.warning("Dropping an unreadable escalation from the outbox")
                continue
            entry.not_before = 0.0  # a restart is a good moment to try again
            self._entries[entry.key] = entry

    async def async_save(self) -> None:
        """Write the outbox now (at unload; changes are otherwise saved a moment later)."""
        await self._store.async_save(self._data())

    def _data(self) -> dict[str, Any]:
        return {"entries": [asdict(entry) for entry in self._entries.values()]}

    def _changed(self) -> None:
        self._store.async_delay_save(self._data, SAVE_DELAY)
        self._wake.set()

    def add(self, entry: OutboxEntry) -> None:
        """Queue an escalation; when the outbox is full, drop the least important one."""
        self._entries[entry.key] = entry
        if len(self._entries) > self.limit:
            dropped = least_important(list(self._entries.values()))
            del self._entries[dropped.key]
            self._report(dropped, "dropped", {"error": f"the outbox is full ({self.limit})"})
        self._changed()

    async def async_run(self) -> None:
        """Send what waits, for as long as the entry is loaded."""
        while True:
            self._expire()
            entry, wait = self._next()
            if entry is None:
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            await self._send(entry)

    def _next(self) -> tuple[OutboxEntry | None, float | None]:
        """The entry to send now, or None and how long to wait (None: until something changes)."""
        if not self._entries:
            return None, None
        now = time.time()
        if now < self._hold_until:
            return None, self._hold_until - now
        due = [entry for entry in self._entries.values() if entry.not_before <= now]
        if not due:
            return None, min(entry.not_before for entry in self._entries.values()) - now
        return max(due, key=lambda entry: (entry.priority, -entry.created_at)), None

    def _expire(self) -> None:
        now = time.time()
        for entry in [e for e in self._entries.values() if now - e.created_at > self.max_age_s]:
            del self._entries[entry.key]
            age = round(now - entry.created_at)
            self._report(
                entry,
                "expired",
                {"error": f"not delivered within {round(self.max_age_s)} s ({age} s old)"},
            )
            self._changed()

    async def _send(self, entry: OutboxEntry) -> None:
        entry.attempts += 1
        _LOGGER.debug("Sending %s (attempt %d)", entry.key, entry.attempts)
        result = await self.teacher.async_submit(entry.body)
        _LOGGER.debug("Sent %s: %s", entry.key, result)
        if entry.key not in self._entries:
            return  # dropped meanwhile
        if result.outcome == "retry":
            self._retry(entry, result)
            return
        self._failures = 0
        self._hold_until = 0.0
        del self._entries[entry.key]
        self._changed()
        details: dict[str, Any] = {"attempt": entry.attempts}
        if result.outcome == "refused":
            details["error"] = result.error
        else:
            details["review_id"] = result.review_id
        self._report(entry, result.outcome, details)

    def _retry(self, entry: OutboxEntry, result: SubmitResult) -> None:
        """An attempt failed: this entry waits its backoff, and the outbox waits with it."""
        self._failures += 1
        delay = backoff(entry.attempts, self._rng)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        now = time.time()
        entry.not_before = now + delay
        # While the service fails, one escalation probes it; the others wait behind it.
        self._hold_until = now + min(delay, backoff(self._failures, self._rng))
        self._changed()
        self._report(
            entry,
            "retrying",
            {"error": result.error, "attempt": entry.attempts, "retry_in": round(delay, 1)},
        )

    def _report(self, entry: OutboxEntry, outcome: Outcome, details: Mapping[str, Any]) -> None:
        data = {
            **entry.event,
            "escalation_id": entry.key,
            "outcome": outcome,
            "teacher": outcome,
            **details,
        }
        self.hass.bus.async_fire(EVENT_ESCALATION, data)
        self._on_outcome(entry, outcome, details)
