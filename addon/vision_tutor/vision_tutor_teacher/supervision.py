"""Supervised background work, and what is failing now.

Every long-running part of the service (each reviewer, the teacher probe, the lab's job runner,
the statistics publisher, retention, the storage watchdog) runs under `Supervisor.spawn`: when
it raises, the error is logged, the part is reported failing (`Problems`), and it is started
again after a delay that doubles up to a limit (with jitter, so parts that failed together do
not retry in lockstep). A part that then runs for `stable_s` without failing is reported healthy
again. A part that returns, or ends with `DatabaseClosed` (the service is stopping), is done.

Health is ``ok`` only while `Problems` is empty; every entry is a reason shown by
``GET /api/v1/health``, ``/metrics`` and the web page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import contextlib
from dataclasses import dataclass
import logging
import random
from typing import Any

from vision_tutor_teacher.storage.database import DatabaseClosed

_LOGGER = logging.getLogger(__name__)


def jittered(delay_s: float) -> float:
    """`delay_s` spread over its upper half, so retries that started together drift apart."""
    return delay_s * random.uniform(0.5, 1.0)  # not cryptography


class Problems:
    """What is failing now, by part: the reasons health reports while it is ``degraded``."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def fail(self, part: str, reason: str) -> None:
        if self._reasons.get(part) != reason:
            _LOGGER.warning("Degraded (%s): %s", part, reason)
        self._reasons[part] = reason

    def clear(self, part: str) -> None:
        if self._reasons.pop(part, None) is not None:
            _LOGGER.info("Recovered: %s", part)

    def reason(self, part: str) -> str | None:
        return self._reasons.get(part)

    def reasons(self) -> dict[str, str]:
        """Every current problem, by part, in a stable order."""
        return dict(sorted(self._reasons.items()))


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    stable_s: float = 10.0
    """A restarted part counts as healthy again after running this long without failing."""


type PartFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    """Runs parts as tasks and restarts them when they fail; see the module docstring."""

    def __init__(self, problems: Problems, policy: RestartPolicy) -> None:
        self.problems = problems
        self.policy = policy
        self._tasks: list[asyncio.Task[None]] = []
        self.restarts: dict[str, int] = {}
        """Restarts by part since the service started (for the metrics)."""

    def spawn(self, name: str, factory: PartFactory) -> None:
        """Run ``factory()`` as the part `name`, again after every failure."""
        self._tasks.append(
            asyncio.create_task(self._supervise(name, factory), name=f"vision-tutor-{name}")
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _supervise(self, name: str, factory: PartFactory) -> None:
        delay = self.policy.first_delay_s
        while True:
            part = asyncio.create_task(factory(), name=f"vision-tutor-{name}-run")
            try:
                done, _ = await asyncio.wait({part}, timeout=self.policy.stable_s)
                if not done:
                    # Running steadily: whatever went wrong before is over.
                    self.problems.clear(name)
                    delay = self.policy.first_delay_s
                await part
            except asyncio.CancelledError:
                part.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await part
                raise
            except DatabaseClosed:
                return
            except Exception as err:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                _LOGGER.exception("%s failed; restarting it in %.1f s", name, delay)
                self.problems.fail(
                    name, f"{name} failed and is restarting (in {delay:.1f} s): {err}"
                )
                await asyncio.sleep(jittered(delay))
                delay = min(delay * 2, self.policy.max_delay_s)
                continue
            return
