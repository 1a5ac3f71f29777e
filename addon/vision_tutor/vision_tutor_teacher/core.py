"""The service's parts and their life: database, queue, teacher, reviewers, the lab, background work.

The API's handlers reach every part through the `TeacherService` (as the Supervisor's do through
its ``CoreSys``); `vision_tutor_teacher.service` puts it behind the web server.

Start-up order matters for durability: reviews left ``in_progress`` by a crash are put back in the
queue before the reviewers start, so every accepted review is retried. Shut-down runs the other
way: streams end, the web server stops taking requests, reviewers give back the attempt they are
in, and the database thread finishes its last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import partial
import logging
import math
from pathlib import Path
import ssl
from typing import Final

from . import __version__
from .discovery import INGRESS_PROXY, SupervisorAccess
from .lab.clients import LabModels
from .lab.runner import Lab
from .models import Stats
from .options import Options
from .reviews.events import EventLog
from .reviews.queue import QueuePolicy, ReviewQueue
from .reviews.worker import ReviewWorker
from .storage.database import Database, Transaction
from .storage.datadir import load_or_create_token
from .storage.retention import apply_retention
from .storage.watch import StorageWatch
from .supervision import Problems, RestartPolicy, Supervisor
from .teacher import Teacher

_LOGGER = logging.getLogger(__name__)

FIRST_PROBE_TIMEOUT_S: Final = 5.0
"""Start-up waits this long at most for the first teacher check, so health starts truthful."""
RETRY_AFTER_DEFAULT_S: Final = 10
DAY_S: Final = 86_400.0


class TeacherService:
    """Everything behind the API. Build it with `TeacherService.start`."""

    def __init__(
        self,
        options: Options,
        data_dir: Path,
        db: Database,
        token: str,
        teachers: list[Teacher],
        supervisor: SupervisorAccess | None,
        lab_models: LabModels,
    ) -> None:
        self.options = options
        self.data_dir = data_dir
        self.db = db
        self.token = token
        self.teachers = teachers
        """One per host of the teacher pool; the first also serves the prompt lab."""
        self.teacher = teachers[0]
        self.supervisor = supervisor
        self.version = __version__
        self.ingress_proxy: str | None = INGRESS_PROXY if supervisor is not None else None
        """Requests from this address came through ingress (only when running as an add-on)."""
        self.events = EventLog(db)
        self.queue = ReviewQueue(
            db, QueuePolicy(options.queue_limit, options.batch_window_ms / 1000)
        )
        self.worker = ReviewWorker(self.queue, teachers, options)
        self.lab = Lab(db, options, lab_models)
        self.problems = Problems()
        self.parts = Supervisor(
            self.problems,
            RestartPolicy(options.restart_first_s, options.restart_max_s, options.restart_stable_s),
        )
        self.storage = StorageWatch(db, options)
        self._stats_wanted = asyncio.Event()
        db.on_commit(self._stats_wanted.set)
        db.on_storage(self._storage_changed)

    @classmethod
    async def start(
        cls, options: Options, data_dir: Path, *, supervisor: SupervisorAccess | None = None
    ) -> TeacherService:
        db = Database(data_dir)
        await db.open()
        try:
            token = await db.run(lambda _tx: load_or_create_token(data_dir))
            # Reading the CA store blocks, so the context is made in an executor thread.
            ssl_context = await asyncio.get_running_loop().run_in_executor(
                None, ssl.create_default_context
            )
        except BaseException:
            await db.close()
            raise
        service = cls(
            options,
            data_dir,
            db,
            token,
            [Teacher(options, ssl_context, host) for host in options.teacher_hosts],
            supervisor,
            LabModels(options, ssl_context),
        )
        try:
            recovered = await service.queue.recover_in_flight()
            if recovered:
                _LOGGER.info("Re-queued %d reviews interrupted by the last stop", recovered)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIRST_PROBE_TIMEOUT_S):
                    await service.worker.check_teacher()
            await service.lab.start()
        except BaseException:
            await service.lab.stop()
            await service._close_teachers()
            await db.close()
            raise
        await service.storage.check()
        service.parts.spawn("pull", service._pull_teacher)
        for name, loop in service.worker.parts().items():
            service.parts.spawn(name, loop)
        service.parts.spawn("lab", service.lab.run_forever)
        service.parts.spawn("stats", service._publish_stats)
        service.parts.spawn("retention", service._retain)
        service.parts.spawn("storage", service.storage.watch)
        return service

    async def _pull_teacher(self) -> None:
        """Pull the teacher model on every host that lacks it, then check the hosts again."""
        pulled = await asyncio.gather(*(teacher.pull_model() for teacher in self.teachers))
        if any(pulled):
            await self.worker.check_teacher()

    async def _close_teachers(self) -> None:
        for teacher in self.teachers:
            await teacher.close()

    def _storage_changed(self, problem: str | None) -> None:
        if problem is None:
            self.worker.wake()  # what waited for the disk can go on

    def health(self) -> HealthReport:
        """What is failing now (nothing: ``ok``), from every part of the service."""
        reasons = self.worker.reasons()
        if (storage := self.storage.problem()) is not None:
            reasons.append(storage)
        reasons.extend(self.problems.reasons().values())
        return HealthReport(reasons)

    async def stop(self) -> None:
        self.events.close()
        await self.parts.stop()
        await self.lab.stop()
        await self._close_teachers()
        await self.db.close()

    async def retry_after_s(self) -> int:
        """A guess at when a refused review could be accepted: one teacher answer from now."""
        latency = (await self.queue.stats()).teacher_latency_ms
        if latency is None:
            return RETRY_AFTER_DEFAULT_S
        return min(300, max(1, math.ceil(latency.p50 / 1000)))

    async def _publish_stats(self) -> None:
        """Emit a ``stats`` event after changes, at most once per interval."""
        last: Stats | None = None
        while True:
            await self._stats_wanted.wait()
            await asyncio.sleep(self.options.stats_interval_s)
            self._stats_wanted.clear()
            current = await self.queue.stats()
            if current != last:
                await self.db.run(partial(_emit_stats, stats=current))
                last = current

    async def _retain(self) -> None:
        retention_s = self.options.retention_days * DAY_S
        while True:
            report = await self.db.run(
                lambda tx: apply_retention(tx, retention_s, self.options.frame_disk_cap_bytes)
            )
            if report.reviews_deleted or report.frames_deleted:
                _LOGGER.info(
                    "Retention: forgot %d reviews, deleted %d frames; %d bytes of frames kept",
                    report.reviews_deleted,
                    report.frames_deleted,
                    report.frame_bytes,
                )
            await asyncio.sleep(self.options.retention_interval_s)


@dataclass(frozen=True, slots=True)
class HealthReport:
    reasons: list[str]
    """Empty when everything works."""

    @property
    def ok(self) -> bool:
        return not self.reasons


def _emit_stats(tx: Transaction, stats: Stats) -> int:
    return tx.emit("stats", stats.model_dump(mode="json"))
