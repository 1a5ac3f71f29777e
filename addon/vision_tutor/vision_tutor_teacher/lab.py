"""The prompt lab's jobs: synthesize candidate prompts with the teacher, score them, promote.

One job runs at a time (later ones wait, ``queued``); each is a row of ``lab_jobs`` whose
progress is announced with ``job`` events. A round goes:

1. **References.** The teacher answers every case once (the frame, or the text as the scene), in
   the contract; the answer is cached on the case and is what the embedding similarity compares
   the student's answers with. An accepted example's reference is the teacher's verdict.
2. **The active prompt** is scored on the train cases (for the teacher's OPRO context) and the
   holdout cases (the bar for the gate) whenever the suite changed since it was last scored.
3. **Synthesis** (synthesize jobs only): the teacher writes N candidates from the meta-prompt
   (`vision_tutor_teacher.synthesis`); blank, contract-dropping and near-duplicate ones are
   rejected, the rest registered as candidates whose parent is the active prompt.
4. **Screening**: with more candidates than finalists, each answers a stratified minibatch of
   train cases; the better half (at least the finalists' number) goes on.
5. **Train**: the survivors answer every train case; the best `FINALISTS` by train score are the
   finalists.
6. **Holdout**: only the finalists answer the holdout cases.
7. **Gate**: the finalist with the best holdout score is promoted if it passes
   `registry.gate`; otherwise everything stays a candidate. The round is recorded for the
   fine-tuning readiness rule.

A student timeout or error on one case scores that case as a failure and the run goes on; a
student that cannot be reached at all, or a teacher whose synthesis answer holds no prompt, fails
the job with a message that says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
import contextlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
import json
import logging
import math
import ssl
import time
from typing import Any, Final
import uuid

import httpx
import ollama
from pydantic import BaseModel, ValidationError

from . import finetune, registry, suite
from .lab_models import (
    CaseResult,
    FinetuneStatus,
    JobEvent,
    JobKind,
    JobList,
    JobOut,
    JobState,
    PromptCost,
    PromptOut,
    PromptSource,
    PromptStatus,
    ScoreRequest,
    Split,
    SynthesizeRequest,
    TaskSpec,
)
from .models import Observation
from .options import Options
from .queue import percentile
from .registry import Fingerprints
from .scoring import (
    FAILED_METHODS,
    AnswerView,
    Scored,
    aggregate,
    case_score,
    contract_valid,
    cosine,
    forbidden_score,
    keyword_score,
    minibatch,
    paired_standard_error,
    read_answer,
    safety_score,
    survivors,
)
from .storage import Database, Transaction, dumps
from .synthesis import (
    META_SYSTEM,
    Failure,
    MalformedCandidates,
    ScoredPrompt,
    contract_problem,
    meta_prompt,
    near_duplicates,
    normalised,
    parse_candidates,
    synthesis_schema,
)
from .teacher import CONNECT_TIMEOUT_S, ReviewAttemptFailed, parse_answer

_LOGGER = logging.getLogger(__name__)

FINALISTS: Final = 2
"""Candidates that reach the holdout cases in a round."""
OPRO_PROMPTS: Final = 6
"""Earlier prompts (best by train score) shown to the teacher."""
FAILURES_SHOWN: Final = 6
STUDENT_TEMPERATURE: Final = 0.3
"""As the integration runs the student: scores must predict what the cameras will see."""
SYNTHESIS_TEMPERATURE: Final = 1.0
"""Candidates should differ; the gate, not the teacher's caution, keeps bad ones out."""
PROGRESS_STEP: Final = 0.05
"""A ``job`` event at most every 5 % of progress (and on every stage change)."""
EMBED_BATCH: Final = 64
REFERENCE_VECTORS_KEPT: Final = 4096
JOBS_LISTED: Final = 20

REFERENCE_SYSTEM: Final = (
    "You are the teacher: a careful vision model that writes the reference answer a small "
    "student model should give. The task:\n{task}\n"
    "A frame may come as a text description of the scene instead of an image; answer as if you "
    "saw that scene. Answer only in the JSON contract, with a calibrated confidence."
)
JUDGE_SYSTEM: Final = (
    "You grade a small vision model's answer about a camera frame against the reference answer "
    "of a careful teacher. Rubric: the same safety flags matter most (a missed or invented "
    "hazard is a serious error), then the same people, animals and objects, then a concise "
    "summary. Give a score from 0 to 1 and a one-sentence reason, in JSON."
)
JUDGE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
}


class LabFailed(Exception):
    """The job cannot go on; the message says why (shown as the job's message)."""


class StudentUnreachable(LabFailed):
    """Every case would fail the same way: stop rather than score a prompt 0."""


# --- The models the lab talks to -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StudentReply:
    raw: str
    latency_ms: float


class LabModels:
    """The student (for scoring), the teacher (references, synthesis, judge) and embeddings.

    Counts every call, so a job can say what it cost.
    """

    def __init__(self, options: Options, ssl_context: ssl.SSLContext) -> None:
        self.options = options
        self.teacher_model = options.teacher_model
        self.student_model = options.student_model
        self.student_url = options.student_url or options.teacher_url
        self.calls: Counter[str] = Counter()

        def client(url: str) -> ollama.AsyncClient:
            # No overall httpx timeout: each call is bounded by asyncio.timeout.
            return ollama.AsyncClient(
                host=url, verify=ssl_context, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
            )

        self._teacher = client(options.teacher_url)
        self._student = (
            self._teacher if self.student_url == options.teacher_url else client(self.student_url)
        )

    async def close(self) -> None:
        await self._teacher.close()  # type: ignore[no-untyped-call]  # untyped in ollama
        if self._student is not self._teacher:
            await self._student.close()  # type: ignore[no-untyped-call]

    async def student(
        self, system: str, user: str, image: bytes | None, schema: dict[str, Any]
    ) -> StudentReply:
        """The student's raw answer; TimeoutError, ollama.ResponseError, httpx errors escape."""
        message: dict[str, Any] = {"role": "user", "content": user}
        if image is not None:
            message["images"] = [image]
        self.calls["student"] += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.options.lab_student_timeout_s):
                response = await self._student.chat(
                    model=self.student_model,
                    messages=[{"role": "system", "content": system}, message],
                    format=schema,
                    options={"temperature": STUDENT_TEMPERATURE},
                    think=False,
                    stream=False,
                )
        except ConnectionError, httpx.ConnectError, httpx.ConnectTimeout:
            raise StudentUnreachable(
                f"cannot reach the student at {self.student_url}; nothing was scored"
            ) from None
        except ollama.ResponseError as err:
            if err.status_code == 404:
                raise StudentUnreachable(
                    f"the student server has no model {self.student_model!r}: {err.error}"
                ) from None
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        return StudentReply(response.message.content or "", round(latency_ms, 1))

    async def teacher(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], temperature: float | None
    ) -> str:
        """The teacher's raw answer in `schema`; LabFailed when it cannot be asked or fails."""
        self.calls["teacher"] += 1
        options = {} if temperature is None else {"temperature": temperature}
        try:
            async with asyncio.timeout(self.options.teacher_timeout_s):
                response = await self._teacher.chat(
                    model=self.teacher_model,
                    messages=messages,
                    format=schema,
                    options=options,
                    think=False,
                    stream=False,
                )
        except TimeoutError:
            raise LabFailed(
                f"the teacher did not answer within {self.options.teacher_timeout_s:g} s"
            ) from None
        except ollama.ResponseError as err:
            raise LabFailed(f"the teacher answered {err.status_code}: {err.error}") from None
        except (ConnectionError, httpx.HTTPError) as err:
            raise LabFailed(
                f"cannot reach the teacher at {self.options.teacher_url}: "
                f"{err or type(err).__name__}"
            ) from None
        return response.message.content or ""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of `texts`; LabFailed when the embedding model fails."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start : start + EMBED_BATCH])
            self.calls["embedding"] += 1
            try:
                async with asyncio.timeout(self.options.embedding_timeout_s):
                    response = await self._teacher.embed(
                        model=self.options.embedding_model, input=batch
                    )
            except (
                TimeoutError,
                ConnectionError,
                httpx.HTTPError,
                ollama.ResponseError,
                ValidationError,
            ) as err:
                raise LabFailed(
                    f"the embedding model failed: {err or type(err).__name__}"
                ) from None
            if len(response.embeddings) != len(batch):
                raise LabFailed("the embedding model returned the wrong number of vectors")
            vectors.extend(list(vector) for vector in response.embeddings)
        return vectors


# --- Jobs ----------------------------------------------------------------------------------------


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


def _job_request(tx: Transaction, job_id: str) -> tuple[JobKind, str]:
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


# --- A round -------------------------------------------------------------------------------------


@dataclass(slots=True)
class RoundContext:
    task: TaskSpec
    train: list[suite.Case]
    holdout: list[suite.Case]
    fingerprints: Fingerprints
    judge: bool
    job_id: str
    screening_seed: str
    """A different minibatch every round, the same in every rerun of the same history (the
    number of jobs before this one and the train cases), so benchmarks reproduce."""
    result: dict[str, Any] = field(default_factory=dict)
    active_holdout_fresh: bool = False
    """Whether the active prompt's holdout score was measured in this round."""

    @property
    def all_cases(self) -> list[suite.Case]:
        return self.train + self.holdout


def _context(tx: Transaction, judge: bool, job_id: str) -> RoundContext:
    task = suite.task_spec(tx)
    all_cases = suite.cases(tx)
    train = [case for case in all_cases if case.split is Split.TRAIN]
    holdout = [case for case in all_cases if case.split is Split.HOLDOUT]
    train_fingerprint = suite.fingerprint(train, task=task, judge=judge)
    return RoundContext(
        task=task,
        train=train,
        holdout=holdout,
        fingerprints=Fingerprints(
            train=train_fingerprint,
            holdout=suite.fingerprint(holdout, task=task, judge=judge),
        ),
        judge=judge,
        job_id=job_id,
        screening_seed=f"{tx.scalar('SELECT count(*) FROM lab_jobs')}/{train_fingerprint}",
    )


def _failures(tx: Transaction, active: PromptOut, holdout_reviews: set[str]) -> list[Failure]:
    """What to show the teacher: the active prompt's worst train cases, then recent reviews
    the teacher disagreed with. Holdout cases (and reviews accepted as holdout cases) never."""
    failures: list[Failure] = []
    worst = sorted(
        (r for r in active.per_case if r.split is Split.TRAIN and r.score < 0.75),
        key=lambda r: r.score,
    )
    for result in worst[: FAILURES_SHOWN // 2]:
        said = (
            f"{result.summary!r} with flags {result.flags or 'none'}"
            if result.summary is not None
            else f"nothing usable ({result.error})"
        )
        expected = tx.scalar(
            "SELECT expected_flags FROM validation_cases WHERE id = ?", (result.case_id,)
        )
        flags = json.loads(expected) if expected else []
        failures.append(Failure(f"case {result.name!r}", f"flags {flags or 'none'}", said))
    rows = tx.execute(
        "SELECT id, camera, reason, student, verdict FROM reviews WHERE status = 'done' "
        "AND agrees = 0 ORDER BY updated_at DESC LIMIT ?",
        (FAILURES_SHOWN * 2,),
    ).fetchall()
    for row in rows:
        if len(failures) >= FAILURES_SHOWN:
            break
        if row["id"] in holdout_reviews:
            continue
        student = json.loads(row["student"]).get("answer")
        teacher = json.loads(row["verdict"])["verdict"]
        said = (
            "nothing readable"
            if student is None
            else f"{student.get('summary')!r} with flags {student.get('safety_flags') or 'none'}"
        )
        failures.append(
            Failure(
                f"camera {row['camera']} ({row['reason']})",
                f"{teacher.get('summary')!r} with flags {teacher.get('safety_flags') or 'none'}",
                said,
            )
        )
    return failures


def _round_number(tx: Transaction) -> int:
    return int(tx.scalar("SELECT count(*) FROM lab_rounds WHERE kind = 'synthesize'")) + 1


def _record_round(
    tx: Transaction,
    job_id: str,
    kind: JobKind,
    active: PromptOut,
    best: PromptOut | None,
    promoted: str | None,
) -> float:
    improvement = 0.0
    if best is not None and best.holdout_score is not None and active.holdout_score is not None:
        improvement = max(0.0, best.holdout_score - active.holdout_score)
    tx.execute(
        "INSERT INTO lab_rounds (job_id, kind, at, active_version, active_holdout, best_version, "
        "best_holdout, improvement, promoted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job_id,
            kind.value,
            tx.now,
            active.version,
            active.holdout_score,
            None if best is None else best.version,
            None if best is None else best.holdout_score,
            round(improvement, 4),
            promoted,
        ),
    )
    return improvement


def _cost(results: Sequence[CaseResult]) -> PromptCost:
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    answered = [r.answer_chars for r in results if r.error is None]
    return PromptCost(
        latency_ms_mean=round(sum(latencies) / len(latencies), 1) if latencies else None,
        latency_ms_p95=round(percentile(latencies, 0.95), 1) if latencies else None,
        answer_chars_mean=round(sum(answered) / len(answered), 1) if answered else None,
        calls=len(results),
    )


class Lab:
    """The job queue and the rounds; see the module docstring."""

    def __init__(self, db: Database, options: Options, models: LabModels) -> None:
        self.db = db
        self.options = options
        self.models = models
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._vectors: dict[str, list[float]] = {}
        """Embeddings of reference summaries, by text: they rarely change between rounds."""
        self._student_slots = asyncio.Semaphore(options.lab_concurrency)
        self._teacher_slots = asyncio.Semaphore(options.teacher_concurrency)

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the registry and suite on first start, fail jobs a restart interrupted, run."""
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
        self._runner = asyncio.create_task(self._run_forever(), name="vision-tutor-lab")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        await self.models.close()

    async def submit(self, kind: JobKind, request: BaseModel) -> JobOut:
        job_id = str(uuid.uuid7())
        job = await self.db.run(lambda tx: insert_job(tx, job_id, kind, request))
        self._queue.put_nowait(job_id)
        return job

    async def _run_forever(self) -> None:
        while True:
            job_id = await self._queue.get()
            kind, request = await self.db.run(partial(_job_request, job_id=job_id))
            await self._run(job_id, kind, request)

    async def _run(self, job_id: str, kind: JobKind, request: str) -> None:
        progress = Progress(self.db, job_id)
        before = Counter(self.models.calls)
        try:
            await progress.report(0.0, "starting")
            if kind is JobKind.SYNTHESIZE:
                result = await self._synthesize(
                    job_id, SynthesizeRequest.model_validate_json(request), progress
                )
            else:
                result = await self._score(
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

    # -- the two jobs ---------------------------------------------------------------------------

    async def _prepare(self, job_id: str, progress: Progress, end: float) -> RoundContext:
        ctx = await self.db.run(lambda tx: _context(tx, self.options.lab_llm_judge, job_id))
        if not ctx.train or not ctx.holdout:
            raise LabFailed(
                f"the validation suite needs train and holdout cases (it has {len(ctx.train)} "
                f"train and {len(ctx.holdout)} holdout)"
            )
        await self._references(ctx, progress.stage(0.0, end, "teacher references"))
        return ctx

    async def _synthesize(
        self, job_id: str, request: SynthesizeRequest, progress: Progress
    ) -> dict[str, Any]:
        ctx = await self._prepare(job_id, progress, 0.1)
        active = await self._ensure_active_scored(ctx, progress, 0.1, 0.25)
        await progress.report(0.25, f"asking the teacher for {request.count} prompts")
        registered = await self._write_candidates(ctx, request, active)
        if not registered:
            await self.db.run(
                lambda tx: _record_round(tx, job_id, JobKind.SYNTHESIZE, active, None, None)
            )
            ctx.result["message"] = "no usable candidate: " + "; ".join(
                f"{r['reason']}" for r in ctx.result["rejected"]
            )
            return ctx.result
        return await self._funnel(ctx, registered, active, JobKind.SYNTHESIZE, progress, 0.3)

    async def _score(
        self, job_id: str, request: ScoreRequest, progress: Progress
    ) -> dict[str, Any]:
        ctx = await self._prepare(job_id, progress, 0.1)
        prompts = await self.db.run(lambda tx: registry.all_prompts(tx, ctx.fingerprints))
        active = next(p for p in prompts if p.status is PromptStatus.ACTIVE)
        if request.versions is None:
            chosen = [
                p
                for p in prompts
                if p.status is PromptStatus.CANDIDATE
                and not (p.current["train"] and p.train_score is not None)
            ]
            rescore_active = False
        else:
            wanted = {
                registry.version_name(registry.parse_version(v) or 0) for v in request.versions
            }
            chosen = [
                p for p in prompts if p.version in wanted and p.status is not PromptStatus.ACTIVE
            ]
            rescore_active = active.version in wanted
        active = await self._ensure_active_scored(ctx, progress, 0.1, 0.25, force=rescore_active)
        if not chosen:
            ctx.result.update(
                {"candidates": [], "promoted": None, "message": "only the active prompt was scored"}
            )
            await self.db.run(
                lambda tx: _record_round(tx, job_id, JobKind.SCORE, active, None, None)
            )
            return ctx.result
        chosen.reverse()  # oldest first, so ties favour the earlier prompt
        return await self._funnel(ctx, chosen, active, JobKind.SCORE, progress, 0.25)

    # -- stages ---------------------------------------------------------------------------------

    async def _references(
        self, ctx: RoundContext, advance: Callable[[int, int], Awaitable[None]]
    ) -> None:
        """Ask the teacher once per case for its reference answer; cache it on the case."""
        model = self.models.teacher_model
        missing = [
            case
            for case in ctx.all_cases
            if case.reference is None or (case.review_id is None and case.reference_model != model)
        ]
        done = failed = 0
        system = REFERENCE_SYSTEM.format(task=ctx.task.text)

        async def fetch(case: suite.Case) -> suite.Case:
            nonlocal done, failed
            user: dict[str, Any] = {"role": "user", "content": case.text or ctx.task.user_prompt}
            if case.image is not None:
                user["images"] = [case.image]
            try:
                async with self._teacher_slots:
                    raw = await self.models.teacher(
                        [{"role": "system", "content": system}, user],
                        ctx.task.output_schema,
                        None,
                    )
                reference = parse_answer(raw)
            except (LabFailed, ReviewAttemptFailed) as err:
                _LOGGER.warning("No reference for case %r: %s", case.name, err)
                failed += 1
                return case
            finally:
                done += 1
                await advance(done, len(missing))
            await self.db.run(lambda tx: suite.set_reference(tx, case.id, reference, model))
            return _with_reference(case, reference, model)

        updated = {case.id: case for case in await asyncio.gather(*map(fetch, missing))}
        ctx.train = [updated.get(case.id, case) for case in ctx.train]
        ctx.holdout = [updated.get(case.id, case) for case in ctx.holdout]
        ctx.result["references_fetched"] = len(missing) - failed
        ctx.result["references_missing"] = failed

    async def _ensure_active_scored(
        self, ctx: RoundContext, progress: Progress, start: float, end: float, force: bool = False
    ) -> PromptOut:
        """Score the active prompt on whichever split it has no current score for."""
        active = await self.db.run(lambda tx: registry.active(tx, ctx.fingerprints))
        middle = (start + end) / 2
        if force or not active.current["train"] or active.train_score is None:
            await self._run_phase(
                ctx,
                active,
                "train",
                ctx.train,
                progress.stage(start, middle, "scoring the active prompt"),
            )
        if force or not active.current["holdout"] or active.holdout_score is None:
            ctx.active_holdout_fresh = True
            await self._run_phase(
                ctx,
                active,
                "holdout",
                ctx.holdout,
                progress.stage(middle, end, "scoring the active prompt"),
            )
        active = await self.db.run(lambda tx: registry.active(tx, ctx.fingerprints))
        ctx.result["active"] = {
            "version": active.version,
            "train_score": active.train_score,
            "holdout_score": active.holdout_score,
        }
        return active

    async def _write_candidates(
        self, ctx: RoundContext, request: SynthesizeRequest, active: PromptOut
    ) -> list[PromptOut]:
        """Synthesis: ask, parse, reject, dedupe, register. The registered candidates."""
        holdout_reviews = {case.review_id for case in ctx.holdout if case.review_id}
        prompts = await self.db.run(lambda tx: registry.all_prompts(tx, ctx.fingerprints))
        earlier = sorted(
            (p for p in prompts if p.train_score is not None and p.current["train"]),
            key=lambda p: -(p.train_score or 0.0),
        )[:OPRO_PROMPTS]
        failures = await self.db.run(lambda tx: _failures(tx, active, holdout_reviews))
        text = meta_prompt(
            task=ctx.task.text,
            schema=ctx.task.output_schema,
            earlier=[ScoredPrompt(p.text, p.train_score or 0.0) for p in earlier],
            failures=failures,
            notes=request.notes,
            count=request.count,
        )
        raw = await self.models.teacher(
            [{"role": "system", "content": META_SYSTEM}, {"role": "user", "content": text}],
            synthesis_schema(request.count),
            SYNTHESIS_TEMPERATURE,
        )
        try:
            parsed = parse_candidates(raw, request.count)
        except MalformedCandidates as err:
            raise LabFailed(str(err)) from None
        rejected: list[dict[str, str]] = []
        kept: list[str] = []
        seen = {normalised(p.text) for p in prompts}
        for candidate in parsed.prompts:
            if problem := contract_problem(candidate, ctx.task.output_schema):
                rejected.append({"text": candidate, "reason": problem})
            elif normalised(candidate) in seen:
                rejected.append({"text": candidate, "reason": "the same as an earlier prompt"})
            else:
                seen.add(normalised(candidate))
                kept.append(candidate)
        kept = await self._dedupe(kept, [p.text for p in prompts], rejected)
        round_number = await self.db.run(_round_number)

        def register(tx: Transaction) -> list[PromptOut]:
            return [
                registry.create(
                    tx,
                    text,
                    parent=active.version,
                    source=PromptSource.TEACHER,
                    round_number=round_number,
                    student_model=self.models.student_model,
                    teacher_model=self.models.teacher_model,
                )
                for text in kept
            ]

        registered = await self.db.run(register)
        ctx.result.update(
            {
                "round": round_number,
                "asked": request.count,
                "teacher_problems": parsed.problems,
                "candidates": [p.version for p in registered],
                "rejected": rejected,
            }
        )
        return registered

    async def _dedupe(
        self, kept: list[str], earlier: list[str], rejected: list[dict[str, str]]
    ) -> list[str]:
        """Drop candidates nearly identical (embedding cosine) to another or to an earlier one."""
        if not kept:
            return kept
        try:
            vectors = await self.models.embed(kept + earlier)
        except LabFailed as err:
            # Exact duplicates are already gone; near ones only cost a little scoring time.
            _LOGGER.warning("Deduplication by embedding skipped: %s", err)
            return kept
        duplicates = near_duplicates(
            vectors[: len(kept)], vectors[len(kept) :], self.options.lab_dedup_similarity
        )
        for index, similarity in duplicates.items():
            rejected.append(
                {"text": kept[index], "reason": f"near-duplicate (similarity {similarity:.2f})"}
            )
        return [text for index, text in enumerate(kept) if index not in duplicates]

    async def _funnel(
        self,
        ctx: RoundContext,
        candidates: list[PromptOut],
        active: PromptOut,
        kind: JobKind,
        progress: Progress,
        start: float,
    ) -> dict[str, Any]:
        """Screening, train, holdout for the finalists, then the gate."""
        span = 0.97 - start
        screen_end, train_end = start + span * 0.3, start + span * 0.7
        pool = candidates
        if len(candidates) > FINALISTS:
            sample = minibatch(
                ctx.train,
                self.options.lab_minibatch,
                ctx.screening_seed,
                [case.flagged for case in ctx.train],
            )
            screened: dict[str, float | None] = {}
            advance = progress.stage(start, screen_end, "screening candidates on a minibatch")
            total = len(candidates) * len(sample)
            for index, candidate in enumerate(candidates):
                offset = index * len(sample)

                async def step(done: int, _total: int, offset: int = offset) -> None:
                    await advance(offset + done, total)

                screened[candidate.version] = await self._run_phase(
                    ctx, candidate, "screening", sample, step
                )
            keep = max(FINALISTS, math.ceil(len(candidates) / 2))
            names = survivors(screened, keep)
            pool = [c for c in candidates if c.version in names]
            ctx.result["screening"] = {"cases": len(sample), "scores": screened}
        train_scores: dict[str, float | None] = {}
        advance = progress.stage(screen_end, train_end, "scoring on the train cases")
        total = len(pool) * len(ctx.train)
        for index, candidate in enumerate(pool):
            offset = index * len(ctx.train)

            async def step(done: int, _total: int, offset: int = offset) -> None:
                await advance(offset + done, total)

            train_scores[candidate.version] = await self._run_phase(
                ctx, candidate, "train", ctx.train, step
            )
        finalists = survivors(train_scores, FINALISTS)
        holdout_scores: dict[str, float | None] = {}
        advance = progress.stage(train_end, 0.97, "scoring the finalists on the holdout cases")
        total = len(finalists) * len(ctx.holdout)
        for index, version in enumerate(finalists):
            candidate = next(c for c in pool if c.version == version)
            offset = index * len(ctx.holdout)

            async def step(done: int, _total: int, offset: int = offset) -> None:
                await advance(offset + done, total)

            holdout_scores[version] = await self._run_phase(
                ctx, candidate, "holdout", ctx.holdout, step
            )
        if not ctx.active_holdout_fresh:
            # Measured again, not reused: a promoted prompt's stored holdout score is the run
            # that won it the promotion, the luckiest of its runs; the gate compares fresh runs.
            await self._run_phase(
                ctx,
                active,
                "holdout",
                ctx.holdout,
                progress.stage(0.97, 0.98, "scoring the active prompt on the holdout cases"),
            )
        ctx.result.update(
            {"train": train_scores, "finalists": finalists, "holdout": holdout_scores}
        )
        await progress.report(0.98, "applying the promotion gate")
        return await self.db.run(partial(self._gate, ctx=ctx, kind=kind, finalists=finalists))

    def _gate(
        self, tx: Transaction, ctx: RoundContext, kind: JobKind, finalists: list[str]
    ) -> dict[str, Any]:
        """On the database thread: read the scores as stored, decide, promote, record."""
        active = registry.active(tx, ctx.fingerprints)
        ctx.result["active"] = {
            "version": active.version,
            "train_score": active.train_score,
            "holdout_score": active.holdout_score,
        }
        # The gate tests the finalist with the best *train* score: choosing by holdout score
        # among several would pick the luckiest run and make the gate's comparison optimistic.
        scored = [registry.get(tx, version, ctx.fingerprints) for version in finalists]
        best = next((p for p in scored if p.holdout_score is not None), None)
        promoted: str | None = None
        if best is None:
            ctx.result["gate"] = {"version": None, "passed": False, "reason": "no finalist"}
            message = "no finalist reached the holdout cases"
        else:
            error = paired_standard_error(_holdout_cases(best), _holdout_cases(active))
            decision = registry.gate(
                best.holdout_score,
                active.holdout_score,
                minimum=self.options.lab_min_holdout,
                margin=self.options.lab_margin,
                noise=None if error is None else self.options.lab_gate_sigmas * error,
            )
            ctx.result["gate"] = {
                "version": best.version,
                "passed": decision.passed,
                "reason": decision.reason,
                "standard_error": None if error is None else round(error, 4),
            }
            if decision.passed:
                registry.promote(tx, best.version, manual=False, detail=decision.reason)
                promoted = best.version
                message = f"promoted {best.version}: {decision.reason}"
            else:
                message = f"kept {active.version}: {best.version}'s {decision.reason}"
        improvement = _record_round(tx, ctx.job_id, kind, active, best, promoted)
        ctx.result.update(
            {"promoted": promoted, "improvement": round(improvement, 4), "message": message}
        )
        return ctx.result

    # -- answering and scoring cases ------------------------------------------------------------

    async def _run_phase(
        self,
        ctx: RoundContext,
        prompt: PromptOut,
        phase: registry.ScoredPhase,
        cases: Sequence[suite.Case],
        advance: Callable[[int, int], Awaitable[None]],
    ) -> float | None:
        """Score `prompt` on `cases` and store the results under `phase`; the score."""
        results = await self.evaluate(ctx, prompt.text, cases, advance)
        overall, by_method = aggregate([Scored(r.score, r.weight, r.methods) for r in results])
        fingerprint = ctx.fingerprints.holdout if phase == "holdout" else ctx.fingerprints.train
        await self.db.run(
            partial(
                registry.record_scores,
                version=prompt.version,
                phase=phase,
                by_method=by_method,
                per_case=results,
                fingerprint=fingerprint,
                cost=_cost(results),
                student_model=self.models.student_model,
            )
        )
        ctx.result.setdefault("timeouts", 0)
        ctx.result["timeouts"] += sum(1 for r in results if r.error and "within" in r.error)
        return overall

    async def evaluate(
        self,
        ctx: RoundContext,
        prompt: str,
        cases: Sequence[suite.Case],
        advance: Callable[[int, int], Awaitable[None]],
    ) -> list[CaseResult]:
        """Every case answered by the student under `prompt`, and scored."""
        done = 0

        async def answer(case: suite.Case) -> tuple[StudentReply | None, str | None]:
            nonlocal done
            reply: StudentReply | None = None
            error: str | None = None
            try:
                async with self._student_slots:
                    reply = await self.models.student(
                        prompt,
                        case.text or ctx.task.user_prompt,
                        case.image,
                        ctx.task.output_schema,
                    )
            except TimeoutError:
                error = (
                    f"the student did not answer within {self.options.lab_student_timeout_s:g} s"
                )
            except ollama.ResponseError as err:
                error = f"the student answered {err.status_code}: {err.error}"
            except httpx.HTTPError as err:
                error = f"the connection to the student broke: {err or type(err).__name__}"
            done += 1
            await advance(done, len(cases))
            return reply, error

        # A task group, not gather: when the student turns out unreachable the other answers
        # are cancelled rather than left running (and reporting progress) after the job ended.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(answer(case)) for case in cases]
        except* StudentUnreachable as unreachable:
            raise unreachable.exceptions[0] from None
        replies = [task.result() for task in tasks]
        views = [None if reply is None else read_answer(reply.raw) for reply, _ in replies]
        similarities = await self._similarities(cases, views)
        judged = await self._judge(cases, replies) if ctx.judge else [None] * len(cases)
        results: list[CaseResult] = []
        for case, (reply, error), view, similarity, grade in zip(
            cases, replies, views, similarities, judged, strict=True
        ):
            if reply is not None and view is None:
                error = "the answer cannot be read as the contract"
            if error is not None or reply is None or view is None:
                methods = dict(FAILED_METHODS)
                if ctx.judge:
                    methods["judge"] = 0.0
                results.append(
                    CaseResult(
                        case_id=case.id,
                        name=case.name,
                        split=case.split,
                        weight=case.weight,
                        score=0.0,
                        methods=methods,
                        summary=None,
                        flags=[],
                        latency_ms=None if reply is None else reply.latency_ms,
                        answer_chars=0 if reply is None else len(reply.raw),
                        error=error,
                    )
                )
                continue
            methods = {
                "keyword": keyword_score(view.text, case.expected_keywords),
                "forbidden": forbidden_score(view.text, case.forbidden_keywords),
                "contract": float(contract_valid(reply.raw, ctx.task.output_schema)),
                "safety": safety_score(case.expected_flags, view.flags),
                "embedding": similarity,
                "judge": grade,
            }
            results.append(
                CaseResult(
                    case_id=case.id,
                    name=case.name,
                    split=case.split,
                    weight=case.weight,
                    score=case_score(methods),
                    methods={k: None if v is None else round(v, 4) for k, v in methods.items()},
                    summary=view.summary,
                    flags=sorted(view.flags),
                    latency_ms=reply.latency_ms,
                    answer_chars=len(reply.raw),
                    error=None,
                )
            )
        return results

    async def _similarities(
        self, cases: Sequence[suite.Case], views: Sequence[AnswerView | None]
    ) -> list[float | None]:
        """Cosine of each readable answer's summary with its case's reference summary."""
        pairs = [
            (index, view.summary, case.reference.summary)
            for index, (case, view) in enumerate(zip(cases, views, strict=True))
            if view is not None and case.reference is not None
        ]
        similarities: list[float | None] = [None] * len(cases)
        if not pairs:
            return similarities
        if len(self._vectors) > REFERENCE_VECTORS_KEPT:
            self._vectors.clear()  # only a cache: a new task spec leaves old references behind
        wanted = [ref for _, _, ref in pairs if ref not in self._vectors]
        texts = [summary for _, summary, _ in pairs] + list(dict.fromkeys(wanted))
        try:
            vectors = await self.models.embed(texts)
        except LabFailed as err:
            _LOGGER.warning("Embedding similarity left out of this run: %s", err)
            return similarities
        for text, vector in zip(texts[len(pairs) :], vectors[len(pairs) :], strict=True):
            self._vectors[text] = vector
        for (index, _, reference), vector in zip(pairs, vectors, strict=False):
            similarities[index] = cosine(vector, self._vectors[reference])
        return similarities

    async def _judge(
        self,
        cases: Sequence[suite.Case],
        replies: Sequence[tuple[StudentReply | None, str | None]],
    ) -> list[float | None]:
        """The teacher's grade of each answer against the reference (the optional method)."""

        async def grade(case: suite.Case, reply: StudentReply | None) -> float | None:
            if reply is None or case.reference is None:
                return None
            reference = case.reference.model_dump_json(
                include={"summary", "observations", "safety_flags"}
            )
            user = f"Reference: {reference}\nStudent answer: {reply.raw}"
            try:
                async with self._teacher_slots:
                    raw = await self.models.teacher(
                        [
                            {"role": "system", "content": JUDGE_SYSTEM},
                            {"role": "user", "content": user},
                        ],
                        JUDGE_SCHEMA,
                        0.0,
                    )
                score = json.loads(raw)["score"]
                return max(0.0, min(1.0, float(score)))
            except (LabFailed, ValueError, KeyError, TypeError) as err:
                _LOGGER.warning("The judge gave no grade for %r: %s", case.name, err)
                return None

        return list(
            await asyncio.gather(
                *(grade(case, reply) for case, (reply, _) in zip(cases, replies, strict=True))
            )
        )

    # -- reads for the API ----------------------------------------------------------------------

    async def fingerprints(self) -> Fingerprints:
        judge = self.options.lab_llm_judge
        ctx = await self.db.run(lambda tx: _context(tx, judge, ""))
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


def _holdout_cases(prompt: PromptOut) -> dict[str, tuple[float, float]]:
    return {r.case_id: (r.score, r.weight) for r in prompt.per_case if r.split is Split.HOLDOUT}


def _with_reference(case: suite.Case, reference: Observation, model: str) -> suite.Case:
    return replace(case, reference=reference, reference_model=model)
