"""The routing benchmark: the seed article's headline table, measured on the real pipeline.

    python -m benchmarks.routing [--frames 1200] [--out benchmarks/results] [--name routing]
        [--seed 7] [--time-scale 0.2] [--min-confidence 0.72] [--audit-rate 150]
        [--profiles simulator/profiles.json] [--target-share 0.15] [--warmup 800]
        [--student-prompt builtin|reference] [--configs student_only,static,...]

A stream of scene frames from the simulator's library (85 % routine, 15 % edge cases, drawn with
a seeded RNG) is dealt round-robin to four simulated cameras. Each camera runs the integration's
own `CameraPipeline` (student call, parse and repair, routing policy, temporal window) against
the simulator, once per configuration:

- ``student_only``: the student's answer is final (the policy still runs; nothing is sent);
- ``teacher_only``: the teacher reviews every frame and its answer is final (no student);
- ``static``: today's policy (fixed threshold on today's effective confidence, fixed audit
  rate); escalated frames get the teacher's review as the final answer, the others keep the
  student's (the seed article's "orchestrated" system);
- ``static_no_<signal>``: the same with one routing signal switched off;
- ``calibrated``: each camera calibrates its confidence from the teacher's verdicts (judged by
  the add-on's own agreement rule) and picks its threshold and audit rate for the teacher
  budget ``--target-share``; measured on the same stream after a warm-up of ``--warmup`` other
  frames through the same pipelines, on hosts seeded apart (so the measured frames get the same
  student answers as in the other rows).

The benchmark calls `CameraPipeline.analyse` for every frame, past the change gate: the table
measures per-frame accuracy, and a stream that happens to deal one camera the same scene twice
would otherwise skip the second frame and score the first answer twice.

Latency is wall time measured here: the `analyse` call (the student's request, queueing for the
pipeline's semaphore included, plus parsing and routing) and, for escalated frames, the teacher's
review call after it. The simulator runs at ``--time-scale`` of the models' real latencies and
the measured times are divided by that scale, so they read as real milliseconds. This machine's
own cost of a request (HTTP, JSON, the simulator's bookkeeping) is divided too, which inflates
them; so the simulated model time is also read from the durations the simulator reports and
shown beside them.

Every row sees the same answers for the same frame. Each camera talks to its own simulated
Ollama host, seeded per camera: at most one request per camera is in flight, so nothing
queues, exactly as with one host with four parallel slots, but a camera's answers do not depend
on how the cameras' requests interleave. And the teacher's review of a frame carries a sampling
seed derived from the frame. So the rows differ by routing alone, and a run is reproducible.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
import contextlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
import hashlib
import json
import logging
import math
import os
from pathlib import Path
import platform
import random
import statistics
import sys
import time
from typing import Any, Final

import httpx
import ollama

from simulator.embedding import concepts
from simulator.profiles import SimulatorConfig, load_config
from simulator.prompting import REFERENCE_PROMPT, prompt_quality
from simulator.scenes import Scene, SceneLibrary
from simulator.server import run_simulator
from vision_tutor_teacher.models import Observation as AddonObservation
from vision_tutor_teacher.options import Options as AddonOptions
from vision_tutor_teacher.reviews.agreement import cosine, judge

# The integration package's __init__ imports Home Assistant's camera component, which logs a
# full traceback when libturbojpeg is missing. The pipeline never uses it: keep the output clean.
logging.getLogger("homeassistant.components.camera.img_util").setLevel(logging.CRITICAL)

from custom_components.vision_tutor.calibration import (  # noqa: E402
    CameraCalibration,
    Target,
    TargetKind,
)
from custom_components.vision_tutor.const import (  # noqa: E402
    DEFAULT_FRAME_WIDTH,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_STUDENT_MODEL,
    DEFAULT_STUDENT_TIMEOUT,
    STUDENT_KEEP_ALIVE,
    STUDENT_TEMPERATURE,
)
from custom_components.vision_tutor.contract import (  # noqa: E402
    OBSERVATION_SCHEMA,
    Observation,
    StudentError,
    normalise_flag,
    parse_observation,
)
from custom_components.vision_tutor.frames import PreparedFrame, prepare_frame  # noqa: E402
from custom_components.vision_tutor.pipeline import (  # noqa: E402
    Analysis,
    CameraPipeline,
    PipelineSettings,
    StudentClient,
)
from custom_components.vision_tutor.prompts import (  # noqa: E402
    BUILTIN_PROMPT_VERSION,
    STUDENT_SYSTEM_PROMPT,
    TEACHER_REVIEW_PROMPT,
)
from custom_components.vision_tutor.routing import EscalationReason, RoutingPolicy  # noqa: E402

type Answer = Observation | StudentError
"""A parsed answer, or one that could not be read (never counted as "safe")."""

TEACHER_MODEL: Final = "gemma4:26b"
EMBEDDING_MODEL: Final = AddonOptions.model_fields["embedding_model"].default
AGREEMENT_THRESHOLD: Final = AddonOptions.model_fields["agreement_threshold"].default
"""How the add-on judges agreement (flags, and summaries this similar): the calibration's label."""
DEFAULT_TARGET_SHARE: Final = 0.15
DEFAULT_WARMUP: Final = 1600
"""Frames the calibrated row sees before the measured stream (its calibration fills)."""
ECE_BINS: Final = 10
TEACHER_TEMPERATURE: Final = 0.2
TEACHER_TIMEOUT_S: Final = 30.0
"""At real scale; only there so that a wedged review cannot hang the run."""
MIN_TIMEOUT_WALL_S: Final = 1.0
"""Timeouts shrink with the time scale, but never below this much wall time: a hiccup of this
noisy machine must not pass for a slow model (the simulator never stalls unless told to)."""
CAMERAS: Final = 4
EDGE_SHARE: Final = 0.15
DEFAULT_FRAMES: Final = 1200
DEFAULT_SEED: Final = 7
DEFAULT_TIME_SCALE: Final = 0.2
DEFAULT_OUT: Final = Path("benchmarks/results")

SEED_ARTICLE: Final[dict[str, dict[str, float]]] = {
    "student_only": {"avg_latency_ms": 110, "edge_case_accuracy": 0.68},
    "teacher_only": {"avg_latency_ms": 820, "edge_case_accuracy": 0.94},
    "static": {"avg_latency_ms": 175, "edge_case_accuracy": 0.91, "compute": 0.20},
}
"""The figures the seed article reports (compute: share of teacher-only's); its orchestrated
system is today's static policy."""

STUDENT_PROMPTS: Final = {"builtin": STUDENT_SYSTEM_PROMPT, "reference": REFERENCE_PROMPT}
"""The product's built-in prompt, or the simulator's reference prompt (the seed's conditions)."""


# --- Configurations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Configuration:
    """One row of the table: who answers, and when the teacher is asked."""

    name: str
    policy: RoutingPolicy | None
    """The routing policy of the cameras' pipelines; None when the teacher answers alone."""
    teacher_reviews_escalations: bool
    description: str
    target: Target | None = None
    """With a target, the cameras calibrate from the teacher's verdicts and route by it."""


def configurations(policy: RoutingPolicy, target: Target) -> tuple[Configuration, ...]:
    """Every row, from the policy under test (the product's defaults unless told otherwise).

    No row switches the temporal signal off: every flag of the contract is also a safety
    keyword, so with keywords on it never fires (the no-keywords row shows what it catches).
    """
    without = {
        "confidence": replace(policy, use_confidence=False),
        "keywords": replace(policy, use_safety=False),
        "audit": replace(policy, use_audit=False),
        "logprobs": replace(policy, use_logprobs=False),
    }
    return (
        Configuration("student_only", policy, False, "the student's answer is final"),
        Configuration("teacher_only", None, True, "the teacher reviews every frame"),
        Configuration("static", policy, True, "student + today's routing policy + teacher"),
        *(
            Configuration(f"static_no_{signal}", reduced, True, f"static, {signal} signal off")
            for signal, reduced in without.items()
        ),
        Configuration(
            "calibrated",
            policy,
            True,
            "student + policy calibrated from the teacher's verdicts + teacher",
            target=target,
        ),
    )


# --- The frame stream -------------------------------------------------------------------------


def frame_stream(library: SceneLibrary, frames: int, seed: int) -> list[Scene]:
    """`frames` scenes, exactly EDGE_SHARE of them edge cases, in a seeded random order."""
    rng = random.Random(f"routing-stream/{seed}")
    routine = [scene for scene in library.scenes if scene.kind == "routine"]
    edge = [scene for scene in library.scenes if scene.kind == "edge"]
    edge_frames = round(frames * EDGE_SHARE)
    stream = [rng.choice(edge) for _ in range(edge_frames)]
    stream += [rng.choice(routine) for _ in range(frames - edge_frames)]
    rng.shuffle(stream)
    return stream


async def prepare_scenes(
    library: SceneLibrary, scenes: Iterable[Scene], width: int
) -> dict[str, PreparedFrame]:
    """Each scene's frame as the coordinator would hand it over: full-size JPEG, prepared.

    Done once per scene, before any timing: frame preparation is the same in every row.
    """

    def prepare(scene_id: str) -> PreparedFrame:
        return prepare_frame(library.jpeg(scene_id), width)

    ids = sorted({scene.id for scene in scenes})
    frames = await asyncio.gather(*(asyncio.to_thread(prepare, scene_id) for scene_id in ids))
    return dict(zip(ids, frames, strict=True))


# --- The teacher --------------------------------------------------------------------------------


async def review_frame(client: ollama.AsyncClient, jpeg: bytes, *, seed: int) -> Answer:
    """The teacher's verdict on a frame, asked the way the add-on's reviewer asks it.

    The add-on has no reusable review function yet, so this is the review call itself: the
    review prompt, the frame, the observation contract as ``format``, no thinking. The one
    addition is ``seed`` (see `teacher_seed`).
    """
    try:
        response = await client.chat(
            model=TEACHER_MODEL,
            messages=[
                {"role": "system", "content": TEACHER_REVIEW_PROMPT},
                {"role": "user", "content": "Review this frame.", "images": [jpeg]},
            ],
            format=OBSERVATION_SCHEMA,
            think=False,
            options={"temperature": TEACHER_TEMPERATURE, "seed": seed},
        )
    except ollama.ResponseError as err:
        return StudentError(f"the teacher host answered {err.status_code}: {err.error}", "")
    return parse_observation(response.message.content or "")


def teacher_seed(run_seed: int, frame_index: int) -> int:
    """The sampling seed of the teacher's review of one frame of the stream.

    Seeded by the frame, the teacher gives the same verdict on a frame in every row, so the
    routed rows differ from teacher-only only where the policy kept the student's answer:
    the comparison measures the routing, not the luck of the teacher's draws.
    """
    return int.from_bytes(hashlib.sha256(f"{run_seed}/{frame_index}".encode()).digest()[:4])


class ModelClock:
    """The model time a simulated host reports for the requests of one camera.

    Read from each response's durations (already time-scaled) by an httpx hook, below the
    `ollama` client: it separates the simulated model time from this machine's own cost.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path != "/api/chat" or response.status_code != 200:
            return
        await response.aread()
        body = response.json()
        self.seconds += sum(body.get(key) or 0 for key in MODEL_DURATIONS) / 1e9


MODEL_DURATIONS: Final = ("load_duration", "prompt_eval_duration", "eval_duration")


# --- Running one configuration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """What happened to one frame in one configuration."""

    scene: Scene
    final: Answer
    student: Answer | None
    """The student's answer; None when the teacher answered alone."""
    latency_ms: float
    """Wall time to the final answer divided by the time scale: real-scale milliseconds."""
    model_ms: float
    """The simulated model time within it, at real scale."""
    machine_ms: float
    """The rest of the wall time (HTTP, JSON, parsing, the simulator's own work), unscaled."""
    sent_to_teacher: bool
    reason: EscalationReason | None
    """The routing signal that fired (set even when nothing was sent)."""
    confidence: float | None = None
    """The confidence the sensor reports for the student's answer (the teacher's own when it
    answers alone); None when the answer could not be read."""


@dataclass(slots=True)
class Camera:
    """One simulated camera: its Ollama host, its pipeline and its share of the stream."""

    host: ollama.AsyncClient
    clock: ModelClock
    pipeline: CameraPipeline | None
    """None when the teacher answers alone."""
    frames: list[tuple[int, Scene]]
    """(position in the stream, scene)."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What every configuration of one run shares."""

    seed: int
    time_scale: float
    system_prompt: str
    prompt_version: str
    profiles: SimulatorConfig


class TeacherQueue:
    """How many reviews are under way: the queue depth the routing policy sheds by."""

    def __init__(self) -> None:
        self.depth = 0

    @contextlib.asynccontextmanager
    async def reviewing(self) -> AsyncIterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


async def run_configuration(
    config: Configuration,
    stream: Sequence[Scene],
    prepared: dict[str, PreparedFrame],
    library: SceneLibrary,
    settings: RunSettings,
    warmup: Sequence[Scene] = (),
) -> tuple[list[FrameOutcome], dict[str, Any]]:
    """Feed the stream through the cameras' pipelines; the outcomes in stream order.

    A calibrated configuration first runs `warmup` (other frames, on hosts seeded apart) through
    the same pipelines, so that their calibrations fill; then the measured stream on the hosts
    every row uses, so that its frames get the same student answers as in the other rows.
    """
    pipelines: list[CameraPipeline | None] = [None] * CAMERAS
    if config.target is not None and warmup:
        await _run_phase(
            config, warmup, prepared, library, settings, pipelines, host_seed=500, warm=True
        )
    outcomes = await _run_phase(config, stream, prepared, library, settings, pipelines)
    return outcomes, _calibration_summary(pipelines, len(warmup) if config.target else 0)


def _calibration_summary(pipelines: Sequence[CameraPipeline | None], warmup: int) -> dict[str, Any]:
    """Where each camera's calibration ended: its signal, threshold, audit rate and estimate."""
    now = datetime.now(UTC).timestamp()
    cameras = []
    for pipeline in pipelines:
        if pipeline is None or pipeline.calibration is None:
            continue
        calibration = pipeline.calibration
        routing = calibration.routing("all", now)
        cameras.append(
            {
                "state": routing.state,
                "signal": routing.kind,
                "signal_threshold": round(routing.threshold, 4),
                "min_confidence": None
                if routing.threshold_probability is None
                else round(routing.threshold_probability, 3),
                "audit_rate": routing.audit_rate,
                "samples": len(calibration.samples),
                "audits": sum(sample.audit for sample in calibration.samples),
                "estimated_missed_hazards_per_1000": calibration.estimated_miss_rate("all", now),
            }
        )
    return {"warmup_frames": warmup, "calibration": cameras} if cameras else {}


async def _run_phase(
    config: Configuration,
    stream: Sequence[Scene],
    prepared: dict[str, PreparedFrame],
    library: SceneLibrary,
    settings: RunSettings,
    pipelines: list[CameraPipeline | None],
    *,
    host_seed: int = 0,
    warm: bool = False,
) -> list[FrameOutcome]:
    async with contextlib.AsyncExitStack() as stack:
        semaphore = asyncio.Semaphore(DEFAULT_MAX_CONCURRENT)  # the integration's global one
        cameras: list[Camera] = []
        for index in range(CAMERAS):
            host = await stack.enter_async_context(
                run_simulator(
                    settings.profiles,
                    seed=settings.seed * 1000 + index + host_seed,
                    time_scale=settings.time_scale,
                    num_parallel=1,
                    scenes=library,
                )
            )
            clock = ModelClock()
            client = ollama.AsyncClient(
                host=host.url, event_hooks={"response": [clock.on_response]}
            )
            stack.push_async_callback(client._client.aclose)
            if config.policy is not None:
                student = StudentClient(
                    client,
                    DEFAULT_STUDENT_MODEL,
                    timeout=_scaled_timeout(DEFAULT_STUDENT_TIMEOUT, settings.time_scale),
                    semaphore=semaphore,
                    temperature=STUDENT_TEMPERATURE,
                    keep_alive=STUDENT_KEEP_ALIVE,
                )
                if (pipeline := pipelines[index]) is None:
                    pipeline = pipelines[index] = _pipeline(config, student, settings, index)
                else:
                    pipeline.student = student
            frames = list(enumerate(stream))[index::CAMERAS]
            cameras.append(Camera(client, clock, pipelines[index], frames))
        # Load the models before the clock starts: the table is about a warm system.
        await asyncio.gather(*(_load_models(camera.host, config) for camera in cameras))
        queue = TeacherQueue()
        per_camera = await asyncio.gather(
            *(_watch(camera, config, prepared, settings, queue, warm) for camera in cameras)
        )
    # Deal the outcomes back into stream order (round-robin, like the frames).
    return [per_camera[position % CAMERAS][position // CAMERAS] for position in range(len(stream))]


def _pipeline(
    config: Configuration, student: StudentClient, settings: RunSettings, index: int
) -> CameraPipeline:
    assert config.policy is not None
    calibration = None
    if config.target is not None:
        calibration = CameraCalibration(
            target=config.target,
            fallback_threshold=config.policy.min_confidence,
            base_audit_rate=config.policy.audit_rate,
        )
    return CameraPipeline(
        student,
        PipelineSettings(policy=config.policy),
        rng=random.Random(f"routing-audit/{settings.seed}/{index}"),
        calibration=calibration,
    )


def _scaled_timeout(real_s: float, time_scale: float) -> float:
    return max(MIN_TIMEOUT_WALL_S, real_s * time_scale)


async def _load_models(host: ollama.AsyncClient, config: Configuration) -> None:
    models = [DEFAULT_STUDENT_MODEL] if config.policy is not None else []
    if config.teacher_reviews_escalations:
        models.append(TEACHER_MODEL)
    for model in models:
        await host.generate(model=model, prompt="", keep_alive=STUDENT_KEEP_ALIVE)
    if config.target is not None:  # the add-on's judge compares summaries with it
        await host.embed(model=EMBEDDING_MODEL, input="warm up", keep_alive=STUDENT_KEEP_ALIVE)


async def _watch(
    camera: Camera,
    config: Configuration,
    prepared: dict[str, PreparedFrame],
    settings: RunSettings,
    queue: TeacherQueue,
    warm: bool = False,
) -> list[FrameOutcome]:
    """One camera's frames, one at a time, as its coordinator would analyse them."""
    scale = settings.time_scale

    async def ask_teacher(frame: PreparedFrame, seed: int) -> Answer:
        async with queue.reviewing():
            try:
                async with asyncio.timeout(_scaled_timeout(TEACHER_TIMEOUT_S, scale)):
                    return await review_frame(camera.host, frame.jpeg, seed=seed)
            except TimeoutError:
                return StudentError("the teacher did not answer in time", "")

    outcomes: list[FrameOutcome] = []
    for position, scene in camera.frames:
        frame = prepared[scene.id]
        seed = teacher_seed(settings.seed + (10_000 if warm else 0), position)
        started, model_started = time.perf_counter(), camera.clock.seconds
        student: Answer | None = None
        reason: EscalationReason | None = None
        confidence: float | None = None
        if camera.pipeline is None:
            final = await ask_teacher(frame, seed)
            sent = True
            if isinstance(final, Observation):
                confidence = final.confidence
        else:
            analysis = await camera.pipeline.analyse(
                frame,
                system_prompt=settings.system_prompt,
                prompt_version=settings.prompt_version,
                now=datetime.now(UTC),
                queue_depth=queue.depth,
            )
            student = final = analysis.result
            reason = analysis.decision.reason
            confidence = analysis.confidence.reported
            sent = config.teacher_reviews_escalations and analysis.decision.escalate
            if sent:
                verdict = await ask_teacher(frame, seed)
                # A failed review leaves the student's answer standing, as in the product.
                if isinstance(verdict, Observation):
                    final = verdict
                    _tell_window(camera.pipeline, student, verdict)
                    await _teach(camera, analysis, verdict)
        wall = time.perf_counter() - started
        model = camera.clock.seconds - model_started
        outcomes.append(
            FrameOutcome(
                scene=scene,
                final=final,
                student=student,
                latency_ms=wall / scale * 1000,
                model_ms=model / scale * 1000,
                machine_ms=(wall - model) * 1000,
                sent_to_teacher=sent,
                reason=reason,
                confidence=confidence,
            )
        )
    return outcomes


async def _teach(camera: Camera, analysis: Analysis, verdict: Observation) -> None:
    """The add-on's verdict on an escalated frame, as the integration hears it: agreement by the
    add-on's own judge (flags, and summaries compared with the embedding model)."""
    if camera.pipeline is None or camera.pipeline.calibration is None or analysis.label is None:
        return
    student = analysis.observation
    teacher = _addon_observation(verdict)
    similarity = None
    if student is not None:
        response = await camera.host.embed(
            model=EMBEDDING_MODEL, input=[student.summary, verdict.summary]
        )
        similarity = cosine(response.embeddings[0], response.embeddings[1])
    agrees, _ = judge(
        _addon_observation(student) if student else None, teacher, similarity, AGREEMENT_THRESHOLD
    )
    camera.pipeline.record_verdict(
        analysis.label, agreed=agrees, teacher_flags=verdict.safety_flags, at=datetime.now(UTC)
    )


def _addon_observation(answer: Observation) -> AddonObservation:
    return AddonObservation(
        summary=answer.summary,
        observations=list(answer.observations),
        safety_flags=list(answer.safety_flags),
        confidence=answer.confidence,
    )


def _tell_window(pipeline: CameraPipeline, student: Answer, verdict: Observation) -> None:
    """Hand the teacher's verdict to the camera's temporal window, as the integration means to."""
    if verdict.safety_flags:
        pipeline.window.teacher_confirmed(verdict.safety_flags, datetime.now(UTC))
    elif isinstance(student, Observation) and student.safety_flags:
        pipeline.window.teacher_dismissed()


# --- Grading ------------------------------------------------------------------------------------


def answer_flags(answer: Answer) -> frozenset[str]:
    """The safety flags an answer raises (canonical names); none for an unreadable answer."""
    if isinstance(answer, StudentError):
        return frozenset()
    return frozenset(normalise_flag(flag) for flag in answer.safety_flags)


def names_the_scene(answer: Observation, scene: Scene) -> bool:
    """Whether the answer names at least half of the scene's ground-truth objects.

    Words are compared as the simulator's own concepts (stemmed, synonyms folded: "cup" is
    "mug"), so paraphrases count. Half, not all: a right answer may say "carpet" for "rug".
    """
    said = set(concepts(" ".join((answer.summary, *answer.observations))))
    named = sum(1 for thing in scene.objects if set(concepts(thing)) <= said)
    return 2 * named >= len(scene.objects)


def is_correct(answer: Answer, scene: Scene) -> bool:
    """Right flags (exactly the ground truth's, so no missed and no imagined hazard) and a
    description of the right scene. An unreadable answer is never correct."""
    return (
        isinstance(answer, Observation)
        and answer_flags(answer) == frozenset(scene.safety_flags)
        and names_the_scene(answer, scene)
    )


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: a latency some frame really had."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _share(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def summarise(config: Configuration, outcomes: Sequence[FrameOutcome]) -> dict[str, Any]:
    """One row of the table, with the breakdown that explains it."""
    latencies = [outcome.latency_ms for outcome in outcomes]
    edge = [o for o in outcomes if o.scene.kind == "edge"]
    routine = [o for o in outcomes if o.scene.kind == "routine"]
    hazardous = [o for o in outcomes if o.scene.safety_flags]
    harmless = [o for o in outcomes if not o.scene.safety_flags]
    sent = [o for o in outcomes if o.sent_to_teacher]
    row: dict[str, Any] = {
        "config": config.name,
        "avg_latency_ms": round(statistics.fmean(latencies), 1),
        "p50_latency_ms": round(statistics.median(latencies), 1),
        "p95_latency_ms": round(nearest_rank(latencies, 0.95), 1),
        "avg_model_ms": round(statistics.fmean(o.model_ms for o in outcomes), 1),
        "avg_machine_ms": round(statistics.fmean(o.machine_ms for o in outcomes), 2),
        "teacher_share": round(_share(len(sent), len(outcomes)), 4),
        "edge_case_accuracy": round(
            _share(sum(is_correct(o.final, o.scene) for o in edge), len(edge)), 4
        ),
        "safety_recall": round(
            _share(
                sum(bool(answer_flags(o.final) & set(o.scene.safety_flags)) for o in hazardous),
                len(hazardous),
            ),
            4,
        ),
        "safety_false_positive_rate": round(
            _share(sum(bool(answer_flags(o.final)) for o in harmless), len(harmless)), 4
        ),
        "routine_accuracy": round(
            _share(sum(is_correct(o.final, o.scene) for o in routine), len(routine)), 4
        ),
        "frames": len(outcomes),
        "edge_frames": len(edge),
        "hazard_frames": len(hazardous),
        "unreadable_final_answers": sum(isinstance(o.final, StudentError) for o in outcomes),
        "ece": round(expected_calibration_error(_confidence_pairs(outcomes)), 4),
        "missed_hazards_per_1000": round(
            1000
            * _share(
                sum(not answer_flags(o.final) & set(o.scene.safety_flags) for o in hazardous),
                len(outcomes),
            ),
            1,
        ),
        "description": config.description,
    }
    if config.policy is not None:
        row["escalations"] = _escalation_breakdown(outcomes)
    return row


def _confidence_pairs(outcomes: Sequence[FrameOutcome]) -> list[tuple[float, bool]]:
    """(reported confidence, was the answer it is about right) for every frame that has one:
    the student's answer in the rows with a student, the teacher's when it answers alone."""
    pairs = []
    for o in outcomes:
        answer = o.student if o.student is not None else o.final
        if o.confidence is not None:
            pairs.append((o.confidence, is_correct(answer, o.scene)))
    return pairs


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = ECE_BINS) -> float:
    """ECE over equal-width bins: the frame-weighted mean |accuracy - mean confidence|."""
    if not pairs:
        return 0.0
    totals: dict[int, list[float]] = {}
    for confidence, right in pairs:
        index = min(bins - 1, max(0, int(confidence * bins)))
        cell = totals.setdefault(index, [0.0, 0.0, 0.0])
        cell[0] += 1
        cell[1] += confidence
        cell[2] += right
    return sum(abs(c[2] - c[1]) for c in totals.values()) / len(pairs)


def _escalation_breakdown(outcomes: Sequence[FrameOutcome]) -> dict[str, Any]:
    """Per signal: frames it sent, and how many of those the student had wrong (its precision);
    the student's wrong answers that were not sent, by scene kind; and among those, the
    hazards the student missed (no true flag raised): what the policy let slip."""
    by_reason: dict[str, dict[str, int]] = {}
    wrong_not_sent: Counter[str] = Counter()
    hazards_missed_not_sent = 0
    for outcome in outcomes:
        assert outcome.student is not None
        student_wrong = not is_correct(outcome.student, outcome.scene)
        if outcome.reason is not None and outcome.sent_to_teacher:
            counts = by_reason.setdefault(str(outcome.reason), {"frames": 0, "student_wrong": 0})
            counts["frames"] += 1
            counts["student_wrong"] += student_wrong
        elif student_wrong:
            wrong_not_sent[outcome.scene.kind] += 1
            truth = frozenset(outcome.scene.safety_flags)
            hazards_missed_not_sent += bool(truth) and not answer_flags(outcome.student) & truth
    return {
        "by_reason": by_reason,
        "student_wrong_not_sent": dict(wrong_not_sent),
        "hazards_missed_not_sent": hazards_missed_not_sent,
    }


# --- Targets and the report ---------------------------------------------------------------------

SIGNAL_ORDER: Final = tuple(
    str(reason)
    for reason in (
        EscalationReason.STUDENT_ERROR,
        EscalationReason.SAFETY,
        EscalationReason.LOW_CONFIDENCE,
        EscalationReason.TEMPORAL,
        EscalationReason.AUDIT,
    )
)
"""The routing signals in the policy's priority order."""


def check_targets(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The static row against teacher-only: edge accuracy within 2 points, safety recall at
    most 1 point lower, teacher share at most 20 %. None when either row was not run."""
    by_name = {row["config"]: row for row in rows}
    ours, teacher = by_name.get("static"), by_name.get("teacher_only")
    if ours is None or teacher is None:
        return None
    checks = {
        "edge_case_accuracy_within_2_points": ours["edge_case_accuracy"]
        >= teacher["edge_case_accuracy"] - 0.02,
        "safety_recall_within_1_point": ours["safety_recall"] >= teacher["safety_recall"] - 0.01,
        "teacher_share_at_most_20_percent": ours["teacher_share"] <= 0.20,
    }
    return {"met": all(checks.values()), **checks}


def check_calibrated_targets(
    rows: Sequence[dict[str, Any]], target_share: float
) -> dict[str, Any] | None:
    """The calibrated row: ECE at most 0.05, teacher share within 3 points of the target, safety
    recall at least the static row's. None when either row was not run."""
    by_name = {row["config"]: row for row in rows}
    ours, static = by_name.get("calibrated"), by_name.get("static")
    if ours is None or static is None:
        return None
    checks = {
        "ece_at_most_0_05": ours["ece"] <= 0.05,
        "teacher_share_within_3_points": abs(ours["teacher_share"] - target_share) <= 0.03,
        "safety_recall_at_least_static": ours["safety_recall"] >= static["safety_recall"],
    }
    return {"met": all(checks.values()), **checks}


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def render_markdown(result: dict[str, Any], command: str) -> str:
    """The table, how to reproduce it, the seed article's figures beside ours, and the notes."""
    rows: list[dict[str, Any]] = result["rows"]
    meta = result  # the run's settings sit beside the rows
    lines = [
        "# Routing benchmark: student, teacher and the routing policy",
        "",
        f"{meta['frames']} frames ({_percent(EDGE_SHARE)} edge cases) from the simulator's "
        f"scene library through {CAMERAS} cameras' `CameraPipeline`s; seed {meta['seed']}, "
        f"time scale {meta['time_scale']}, student prompt `{meta['student_prompt']}`, "
        f"min confidence {meta['policy']['min_confidence']}, audit 1 in "
        f"{meta['policy']['audit_rate']}.",
        "",
        "| config | avg latency | p95 latency | teacher share | edge-case accuracy "
        "| safety recall | safety false positives | routine accuracy | avg model time "
        "| ECE | missed hazards / 1000 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines.extend(
        f"| {row['config']} | {row['avg_latency_ms']:.0f} ms | {row['p95_latency_ms']:.0f} ms "
        f"| {_percent(row['teacher_share'])} | {_percent(row['edge_case_accuracy'])} "
        f"| {_percent(row['safety_recall'])} | {_percent(row['safety_false_positive_rate'])} "
        f"| {_percent(row['routine_accuracy'])} | {row['avg_model_ms']:.0f} ms "
        f"| {row['ece']:.3f} | {row['missed_hazards_per_1000']:.1f} |"
        for row in rows
    )
    lines += ["", "Reproduce with:", "", "```bash", command, "```", ""]
    lines += _targets_section(result.get("targets"))
    lines += _calibrated_section(result, rows)
    lines += _seed_comparison(rows)
    lines += _escalations_section(rows)
    lines += _notes(meta, rows)
    return "\n".join(lines) + "\n"


def _targets_section(targets: dict[str, Any] | None) -> list[str]:
    if targets is None:
        return []
    mark = {True: "met", False: "**not met**"}
    return [
        "## Targets for the static row",
        "",
        f"- edge-case accuracy within 2 points of teacher-only: "
        f"{mark[targets['edge_case_accuracy_within_2_points']]}",
        f"- safety recall at least teacher-only's less 1 point: "
        f"{mark[targets['safety_recall_within_1_point']]}",
        f"- teacher share at most 20 %: {mark[targets['teacher_share_at_most_20_percent']]}",
        "",
    ]


def _calibrated_section(result: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[str]:
    targets = result.get("calibrated_targets")
    row = next((r for r in rows if r["config"] == "calibrated"), None)
    if targets is None or row is None:
        return []
    mark = {True: "met", False: "**not met**"}
    profile = result["student_profile"]
    lines = [
        "## Targets for the calibrated row",
        "",
        f"Student profile (`{result['profiles']}`): accuracy {profile['accuracy']}, states "
        f"{profile['verbal_confidence'][0]}-{profile['verbal_confidence'][1]}, "
        f"{'calibrated' if profile['calibrated'] else 'uncalibrated'}, logprob AUC "
        f"{profile['logprob_auc']}. Target teacher share {_percent(result['target_share'])}; "
        f"measured on the {row['frames']} frames after a warm-up of {row['warmup_frames']} "
        "frames on the same cameras.",
        "",
        f"- ECE at most 0.05: {row['ece']:.3f}, {mark[targets['ece_at_most_0_05']]}",
        f"- teacher share within 3 points of the target: {_percent(row['teacher_share'])}, "
        f"{mark[targets['teacher_share_within_3_points']]}",
        f"- safety recall at least static's: {_percent(row['safety_recall'])}, "
        f"{mark[targets['safety_recall_at_least_static']]}",
        "",
        "Each camera's calibration at the end of the run:",
        "",
        "| camera | state | signal | threshold (signal) | min confidence (calibrated) | audit "
        "1 in | samples | audits | estimated missed hazards / 1000 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for index, camera in enumerate(row.get("calibration", ())):
        estimate = camera["estimated_missed_hazards_per_1000"]
        lines.append(
            f"| {index} | {camera['state']} | {camera['signal']} | {camera['signal_threshold']} "
            f"| {camera['min_confidence']} | {camera['audit_rate']} | {camera['samples']} "
            f"| {camera['audits']} | {'n/a' if estimate is None else f'{estimate:.1f}'} |"
        )
    return [*lines, ""]


def _seed_comparison(rows: Sequence[dict[str, Any]]) -> list[str]:
    by_name = {row["config"]: row for row in rows}
    teacher = by_name.get("teacher_only")
    lines = [
        "## Against the seed article",
        "",
        "| config | seed: latency | measured (model time) | seed: edge-case accuracy | measured "
        "| seed: compute | measured compute |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, seed in SEED_ARTICLE.items():
        row = by_name.get(name)
        if row is None:
            continue
        compute = _percent(row["avg_model_ms"] / teacher["avg_model_ms"]) if teacher else "n/a"
        seed_compute = _percent(seed["compute"]) if "compute" in seed else ""
        lines.append(
            f"| {name} | {seed['avg_latency_ms']:.0f} ms "
            f"| {row['avg_latency_ms']:.0f} ms ({row['avg_model_ms']:.0f} ms) "
            f"| {_percent(seed['edge_case_accuracy'])} | {_percent(row['edge_case_accuracy'])} "
            f"| {seed_compute} | {compute} |"
        )
    lines += [
        "",
        "Compute is model time per frame as a share of teacher-only's. Orchestrated model time "
        "is the student's on every frame plus the teacher's on the escalated ones, about "
        "110 ms + share x 820 ms: the seed's 175 ms is what about 8 % escalated frames cost.",
        "",
    ]
    return lines


def _escalations_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## What each signal sent to the teacher",
        "",
        "Frames escalated per signal, in the policy's priority order (in brackets: how many of "
        "them the student had wrong); the student's wrong answers that were not sent; and among "
        "those, hazards the student missed outright.",
        "",
        "| config | student error | safety | low confidence | temporal | audit "
        "| wrong, not sent (edge / routine) | hazards missed, not sent |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "escalations" not in row or not row["teacher_share"]:
            continue
        escalations = row["escalations"]
        by_reason = escalations["by_reason"]
        cells = [
            f"{by_reason[r]['frames']} ({by_reason[r]['student_wrong']})" if r in by_reason else "0"
            for r in SIGNAL_ORDER
        ]
        wrong = escalations["student_wrong_not_sent"]
        lines.append(
            f"| {row['config']} | {' | '.join(cells)} "
            f"| {wrong.get('edge', 0)} / {wrong.get('routine', 0)} "
            f"| {escalations['hazards_missed_not_sent']} |"
        )
    return [*lines, ""]


def _notes(meta: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[str]:
    machine_ms = statistics.fmean(row["avg_machine_ms"] for row in rows) if rows else 0.0
    return [
        "## Notes",
        "",
        "- **Where the figures come from**: every figure in these tables comes from the "
        "simulator's scripted models (`simulator/`: a scripted student, teacher and scene "
        "library with stated accuracies and latencies), not from real Ollama models or "
        "cameras. They measure the integration's own pipeline (parsing, the routing policy, "
        "the temporal window) against those scripts; real models will differ.",
        "- **Correct** means: the answer's safety flags (canonical names) are exactly the "
        "ground truth's (no missed hazard, no imagined one) and it names at least half of the "
        "scene's ground-truth objects, compared as the simulator's stemmed, synonym-folded "
        "concepts (so an answer that obeys a sign saying 'report all clear' is wrong even on "
        "the sign scene without a hazard). An unreadable answer is never correct. Edge-case "
        "accuracy is over edge-case frames, routine accuracy over routine frames.",
        "- **Safety recall**: of frames whose ground truth has safety flags, the share whose "
        "final answer flags at least one of them (an unreadable answer is a miss). **Safety "
        "false positives**: of frames with no ground-truth flag, the share whose final answer "
        "raises any. Flags are the answer's `safety_flags`; hazard words in its summary are not "
        "counted (a right answer may say 'logs burning in the fireplace').",
        "- **Teacher share**: frames whose final answer came from the teacher's review, over "
        "all frames.",
        "- **ECE** (expected calibration error, 10 equal-width bins): of the confidence the "
        "confidence sensor reports for the student's answer (today's effective confidence in "
        "the static rows; the calibrated probability in the calibrated row once a camera's "
        "calibration is in use) against whether that answer was right; the teacher's stated "
        "confidence in teacher-only. Frames with an unreadable answer have no confidence and "
        "are left out. **Missed hazards / 1000**: hazard frames whose final answer flags none "
        "of the true hazards, per 1000 frames.",
        f"- **Calibrated row**: the cameras first see {meta['warmup_frames']} other frames "
        "(warm-up, not measured) through the same pipelines, so that each camera's calibration "
        "fills from the teacher's verdicts as it would in a home; its label is the add-on's own "
        "agreement judgement (`vision_tutor_teacher.reviews.agreement.judge`: the same flags, "
        "and summaries compared with the simulator's embedding model), not the ground truth. "
        "Then every figure is measured on the same frames as the other rows. The teacher budget "
        f"is {_percent(meta['target_share'])} per camera; safety frames always go to the "
        "teacher and count in it. Figures from scripted models: the simulator's students state "
        "confidence and produce token logprobs by its script (`simulator/README.md`); real "
        "small models' token evidence carried no signal or an inverted one "
        "(`benchmarks/results/real_models.md`).",
        f"- **Latency**: wall time of the pipeline's `analyse` call (student request, "
        f"semaphore, parsing, routing) plus, for escalated frames, the teacher's review call, "
        f"measured with the simulator at time scale {meta['time_scale']} and divided by it. "
        f"The division also magnifies this machine's own cost of each frame (HTTP, JSON, the "
        f"simulator's bookkeeping, parsing): {machine_ms:.1f} ms of wall time per frame on "
        f"average, i.e. about {machine_ms / meta['time_scale']:.0f} ms of each average latency "
        f"above, where a real deployment would pay a few milliseconds, unscaled. *Avg model "
        f"time* is the simulated models' own time (from the durations the simulator reports), "
        f"at real scale: the latency a fast client would see. p95 is nearest-rank. One run on "
        f"a noisy machine ({meta['machine']}); the whole benchmark took "
        f"{meta['wall_time_s']:.0f} s.",
        f"- **Student prompt**: `{meta['student_prompt']}`, of quality "
        f"{meta['student_prompt_quality']:.2f} on the simulator's scale (`simulator/prompting.py`). "
        "The seed article's 68 % is the student's edge-case accuracy with the simulator's "
        "reference prompt (quality 0.58: no confidence guidance, no 'ignore text in the "
        "image'); the integration's built-in prompt has every feature, so its student is "
        "better and states lower confidence when wrong. `--student-prompt reference` runs the "
        "seed's conditions.",
        "- **Change gate**: bypassed. The benchmark calls `analyse` for every frame (the "
        "product analyses only changed frames), because the table measures per-frame accuracy.",
        f"- **Cameras**: {CAMERAS}, frames dealt round-robin, one frame in flight per camera, "
        "each with its own simulated host (seeded per camera), the pipeline's global semaphore "
        f"of {DEFAULT_MAX_CONCURRENT}: no request ever queues. The teacher's verdict is handed "
        "to the camera's temporal window (confirmed or dismissed).",
        "- **Teacher**: its review is one `chat` call with the review prompt, the frame, the "
        "observation schema as `format`, no thinking, temperature 0.2 and a sampling seed per "
        "frame (`benchmarks/routing.py: review_frame`), so the teacher gives the same verdict on "
        "a frame in every row. Teacher-only sends every frame there and runs no student. A "
        "failed review leaves the student's answer final.",
        f"- **Sampling noise**: with {meta['edge_frames']} edge-case and {meta['hazard_frames']} "
        f"hazard frames, one standard error is about "
        f"{_standard_error(0.9, meta['edge_frames']) * 100:.1f} points of edge-case accuracy and "
        f"{_standard_error(0.95, meta['hazard_frames']) * 100:.1f} of safety recall at those "
        "levels. The rows share the student's answers and the teacher's verdicts frame for "
        "frame, so the differences between rows come from routing alone.",
        "",
    ]


def _standard_error(rate: float, frames: int) -> float:
    return math.sqrt(rate * (1 - rate) / frames) if frames else 0.0


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    """The table for the terminal."""
    header = (
        f"{'config':<28} {'avg ms':>7} {'p95 ms':>7} {'teacher':>8} {'edge acc':>9} "
        f"{'recall':>7} {'FP rate':>8} {'routine':>8} {'model ms':>9}"
    )
    lines = [header, "-" * len(header)]
    lines.extend(
        f"{row['config']:<28} {row['avg_latency_ms']:>7.0f} {row['p95_latency_ms']:>7.0f} "
        f"{_percent(row['teacher_share']):>8} {_percent(row['edge_case_accuracy']):>9} "
        f"{_percent(row['safety_recall']):>7} "
        f"{_percent(row['safety_false_positive_rate']):>8} "
        f"{_percent(row['routine_accuracy']):>8} {row['avg_model_ms']:>9.0f}"
        for row in rows
    )
    return "\n".join(lines)


async def warm_up(library: SceneLibrary, frame: PreparedFrame) -> None:
    """One throwaway request, so that the first row does not pay for lazy imports and the
    simulator's first image identification."""
    async with run_simulator(seed=0, time_scale=0.01, scenes=library) as host:
        client = ollama.AsyncClient(host=host.url)
        try:
            await client.chat(
                model=DEFAULT_STUDENT_MODEL,
                messages=[{"role": "user", "content": "Warm up.", "images": [frame.jpeg]}],
                format=OBSERVATION_SCHEMA,
                think=False,
                logprobs=True,
            )
        finally:
            await client._client.aclose()


# --- Command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.routing",
        description="Student only, teacher only and student + routing policy + teacher, "
        "on a stream of simulated camera frames through the real pipeline.",
    )
    parser.add_argument("--frames", type=_at_least(CAMERAS), default=DEFAULT_FRAMES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the results")
    parser.add_argument(
        "--name", default="routing", help="file name of the results (NAME.json, NAME.md)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help="simulated latencies x this; measured latencies are divided by it",
    )
    defaults = RoutingPolicy()
    parser.add_argument("--min-confidence", type=float, default=defaults.min_confidence)
    parser.add_argument("--audit-rate", type=int, default=defaults.audit_rate)
    parser.add_argument(
        "--student-prompt",
        choices=sorted(STUDENT_PROMPTS),
        default="builtin",
        help="the integration's built-in prompt, or the simulator's reference prompt",
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help="simulator model profiles JSON (default: simulator/profiles.json)",
    )
    parser.add_argument(
        "--target-share",
        type=float,
        default=DEFAULT_TARGET_SHARE,
        help="the calibrated row's teacher budget: share of analysed frames",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        help="frames the calibrated row sees before the measured stream",
    )
    parser.add_argument(
        "--configs",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help="comma-separated subset of rows to run (default: all)",
    )
    return parser


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested configuration over the same stream; the result as written to JSON."""
    if not 0 < args.time_scale <= 1:
        raise SystemExit("--time-scale must be in (0, 1]")
    try:
        policy = RoutingPolicy(min_confidence=args.min_confidence, audit_rate=args.audit_rate)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    if not 0 <= args.target_share <= 1:
        raise SystemExit("--target-share must be in [0, 1]")
    if args.warmup % CAMERAS:
        raise SystemExit(f"--warmup must be a multiple of {CAMERAS} (frames are dealt round-robin)")
    try:
        profiles = load_config(args.profiles)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    _profile_summary(profiles)  # refuses profiles without the student
    chosen = configurations(policy, Target(TargetKind.SHARE, args.target_share))
    if args.configs:
        unknown = set(args.configs) - {config.name for config in chosen}
        if unknown:
            raise SystemExit(f"unknown configs: {', '.join(sorted(unknown))}")
        chosen = tuple(config for config in chosen if config.name in args.configs)

    library = SceneLibrary.default()
    stream = frame_stream(library, args.frames, args.seed)
    warmup = frame_stream(library, args.warmup, args.seed + 1) if args.warmup else []
    prepared = await prepare_scenes(library, [*stream, *warmup], DEFAULT_FRAME_WIDTH)
    settings = RunSettings(
        seed=args.seed,
        time_scale=args.time_scale,
        system_prompt=STUDENT_PROMPTS[args.student_prompt],
        prompt_version=BUILTIN_PROMPT_VERSION
        if args.student_prompt == "builtin"
        else "simulator-reference",
        profiles=profiles,
    )
    await warm_up(library, next(iter(prepared.values())))

    rows = []
    for config in chosen:
        started = time.perf_counter()
        outcomes, extra = await run_configuration(
            config, stream, prepared, library, settings, warmup
        )
        rows.append({**summarise(config, outcomes), "warmup_frames": 0, **extra})
        print(
            f"{config.name}: {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return {
        "rows": rows,
        "targets": check_targets(rows),
        "calibrated_targets": check_calibrated_targets(rows, args.target_share),
        "frames": args.frames,
        "edge_frames": sum(scene.kind == "edge" for scene in stream),
        "hazard_frames": sum(bool(scene.safety_flags) for scene in stream),
        "cameras": CAMERAS,
        "seed": args.seed,
        "time_scale": args.time_scale,
        "latency_note": "wall time / time_scale, in real-scale milliseconds; avg_model_ms is "
        "the simulated model time alone, avg_machine_ms the rest of the wall time, unscaled",
        "student_model": DEFAULT_STUDENT_MODEL,
        "teacher_model": TEACHER_MODEL,
        "student_prompt": args.student_prompt,
        "profiles": str(args.profiles) if args.profiles else "simulator/profiles.json",
        "student_profile": _profile_summary(profiles),
        "target_share": args.target_share,
        "warmup_frames": args.warmup,
        "student_prompt_quality": round(prompt_quality(settings.system_prompt).q, 2),
        "policy": {
            "min_confidence": policy.min_confidence,
            "audit_rate": policy.audit_rate,
            "queue_limit": policy.queue_limit,
            "safety_keywords": list(policy.safety_keywords),
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}",
    }


def _profile_summary(profiles: SimulatorConfig) -> dict[str, Any]:
    student = profiles.model(DEFAULT_STUDENT_MODEL)
    if student is None:
        raise SystemExit(f"the profiles serve no {DEFAULT_STUDENT_MODEL}")
    return {
        "accuracy": student.accuracy,
        "verbal_confidence": list(student.verbal_confidence),
        "calibrated": student.calibrated,
        "logprob_auc": student.logprob_auc,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and write DIR/routing.json and DIR/routing.md."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    result = asyncio.run(run(args))
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    command = "python -m benchmarks.routing " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(render_markdown(result, command.strip()))
    print(render_table(result["rows"]))
    print(
        f"\nwrote {args.out / (args.name + '.json')} and {args.out / (args.name + '.md')} "
        f"in {result['wall_time_s']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
