"""The lab's job runner: one job at a time, in the order submitted; see the package docstring."""

from __future__ import annotations

import asyncio
from collections import Counter
import contextlib
from functools import partial
import logging
import uuid

from pydantic import BaseModel

from vision_tutor_teacher.options import Options
from vision_tutor_teacher.storage.database import Database, Transaction

from . import finetune, registry, suite
from .candidates import CandidateWriter
from .clients import LabFailed, LabModels
from .context import round_context
from .jobs import Progress, fail_interrupted, insert_job, job_request, update_job
from .models import (
    FinetuneStatus,
    JobKind,
    JobOut,
    JobState,
    ScoreRequest,
    SynthesizeRequest,
)
from .registry import Fingerprints
from .rounds import Rounds
from .screening import Screening

_LOGGER = logging.getLogger(__name__)


class Lab:
    """The job queue and the rounds; see the package docstring."""

    def __init__(self, db: Database, options: Options, models: LabModels) -> None:
        self.db = db
        self.options = options
        self.models = models
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._current: str | None = None
        """The job being run; still set after the runner failed (and is restarted)."""
        student_slots = asyncio.Semaphore(options.lab_concurrency)
        teacher_slots = asyncio.Semaphore(options.teacher_concurrency)
        screening = Screening(db, options, models, student_slots, teacher_slots)
        self.rounds = Rounds(
            db, options, models, teacher_slots, screening, CandidateWriter(db, options, models)
        )

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the registry and suite on first start, fail jobs a restart interrupted.

        The jobs then run in `run_forever`, which the service supervises."""
        default = await asyncio.get_running_loop().run_in_executor(None, suite.load_default_suite)
        options = self.options

        def prepare(tx: Transaction) -> int:
            registry.ensure_seed(
                tx, registry.SEED_PROMPT, options.student_model, options.teacher_model
            )
            suite.seed(tx, default, options.lab_holdout_share)
            return fail_interrupted(tx)

        if interrupted := await self.db.run(prepare):
            _LOGGER.info("%d lab jobs were interrupted by the last stop", interrupted)

    async def stop(self) -> None:
        await self.models.close()

    async def submit(self, kind: JobKind, request: BaseModel) -> JobOut:
        job_id = str(uuid.uuid7())
        job = await self.db.run(lambda tx: insert_job(tx, job_id, kind, request))
        self._queue.put_nowait(job_id)
        return job

    async def run_forever(self) -> None:
        """Run the jobs one at a time, in the order submitted, until cancelled."""
        if self._current is not None:
            # The last run failed (a storage error recording a job's end): say so.
            await self.db.run(
                partial(
                    update_job,
                    job_id=self._current,
                    state=JobState.FAILED,
                    progress=1.0,
                    message="interrupted: the lab's runner failed and was restarted",
                )
            )
            self._current = None
        while True:
            job_id = await self._queue.get()
            self._current = job_id
            kind, request = await self.db.run(partial(job_request, job_id=job_id))
            await self._run(job_id, kind, request)
            self._current = None

    async def _run(self, job_id: str, kind: JobKind, request: str) -> None:
        progress = Progress(self.db, job_id)
        before = Counter(self.models.calls)
        try:
            await progress.report(0.0, "starting")
            if kind is JobKind.SYNTHESIZE:
                result = await self.rounds.synthesize(
                    job_id, SynthesizeRequest.model_validate_json(request), progress
                )
            else:
                result = await self.rounds.score(
                    job_id, ScoreRequest.model_validate_json(request), progress
                )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.db.run(
                    partial(
                        update_job,
                        job_id=job_id,
                        state=JobState.FAILED,
                        progress=progress.fraction,
                        message="interrupted by shutdown",
                    )
                )
            raise
        except Exception as err:
            message = str(err) if isinstance(err, LabFailed) else f"internal error: {err!r}"
            if not isinstance(err, LabFailed):
                _LOGGER.exception("Lab job %s failed", job_id)
            else:
                _LOGGER.warning("Lab job %s failed: %s", job_id, message)
            calls = self._calls_since(before)
            await self.db.run(
                partial(
                    update_job,
                    job_id=job_id,
                    state=JobState.FAILED,
                    progress=progress.fraction,
                    message=message,
                    result={"error": message, **calls},
                )
            )
            return
        result.update(self._calls_since(before))
        message = result.pop("message")
        await self.db.run(
            partial(
                update_job,
                job_id=job_id,
                state=JobState.DONE,
                progress=1.0,
                message=message,
                result=result,
            )
        )

    def _calls_since(self, before: Counter[str]) -> dict[str, int]:
        return {
            f"{kind}_calls": self.models.calls[kind] - before[kind]
            for kind in ("student", "teacher", "embedding")
        }

    # -- reads for the API ----------------------------------------------------------------------

    async def fingerprints(self) -> Fingerprints:
        judge = self.options.lab_llm_judge
        ctx = await self.db.run(lambda tx: round_context(tx, judge, ""))
        return ctx.fingerprints

    async def finetune_status(self) -> FinetuneStatus:
        options = self.options

        def read(tx: Transaction) -> FinetuneStatus:
            count = finetune.example_count(tx)
            improvements = finetune.recent_improvements(tx, options.finetune_rounds)
            readiness = finetune.readiness(
                count,
                improvements,
                min_examples=options.finetune_min_examples,
                epsilon=options.finetune_epsilon,
                rounds=options.finetune_rounds,
            )
            return FinetuneStatus(
                examples=count,
                ready=readiness.ready,
                reason=readiness.reason,
                recent_improvements=improvements,
                min_examples=options.finetune_min_examples,
                epsilon=options.finetune_epsilon,
            )

        return await self.db.run(read)
