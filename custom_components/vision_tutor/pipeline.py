"""One camera's analysis pipeline, without Home Assistant: frame -> student -> policy -> state.

The coordinator feeds it frames from Home Assistant; the routing benchmark feeds it frames from
the simulator's scene library. Both run this same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import random
import time
from typing import Any, Final, Literal, Protocol

import httpx
import ollama

from .calibration import Bucket, CameraCalibration, Sample, signal_value
from .contract import (
    OBSERVATION_SCHEMA,
    Observation,
    StudentError,
    normalise_flag,
    parse_observation,
)
from .frames import PreparedFrame, Thumbnail
from .gate import ChangeGate, GateDecision
from .prompts import STUDENT_USER_PROMPT
from .routing import (
    CalibratedSignal,
    Decision,
    EscalationReason,
    RoutingPolicy,
    effective_confidence,
    keyword_pattern,
    route,
    token_evidence,
)
from .temporal import SafetyState, SafetyWindow, WindowConfig

type Source = Literal["student", "teacher"]

LOAD_SEEN_S = 1.0
"""A `load_duration` at least this long means the call loaded the model."""
MAX_LOAD_ALLOWANCE = 300.0


@dataclass(frozen=True, slots=True)
class StudentTimeout(StudentError):
    """No answer within the timeout: a student error, counted for the slow-student repair."""


class QueuedTooLong(Exception):
    """The frame waited its whole timeout for a turn with the student: skipped, never sent late."""


class StudentUnavailable(Exception):
    """No analysis is possible: the host does not answer, or the model is not on it."""

    def __init__(
        self,
        reason: Literal["unreachable", "model_missing"],
        message: str,
        *,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.url = url
        """The host of a student pool that failed last (its coordinator was told already);
        None with a single host."""


@dataclass(frozen=True, slots=True)
class StudentAnswer:
    """What the student said about a frame, with the evidence the policy uses."""

    text: str
    logprobs: tuple[float, ...]
    latency_ms: float


STUDENT_MAX_TOKENS: Final = 512
"""The longest answer asked for (Ollama's num_predict). One in the contract takes about a hundred
tokens; without a cap a small model that loops writes until its context is full, which on a CPU
host takes minutes and holds the student for every camera."""


class Student(Protocol):
    """What a camera's pipeline asks: one host's `StudentClient`, or a camera's share of a
    student pool (`student_pool.PooledStudent`)."""

    model: str
    timeout: float

    async def ask(self, jpeg: bytes, system_prompt: str) -> StudentAnswer | StudentError:
        """The student's answer to a frame (see `StudentClient.ask`)."""
        ...


class StudentClient:
    """Asks the student model about frames, a bounded number at a time."""

    def __init__(
        self,
        client: ollama.AsyncClient,
        model: str,
        *,
        timeout: float,
        semaphore: asyncio.Semaphore,
        temperature: float = 0.3,
        max_tokens: int = STUDENT_MAX_TOKENS,
        keep_alive: str = "10m",
        keep_alive_s: float = 600.0,
        load_allowance: float = 60.0,
    ) -> None:
        self.client = client
        self.model = model
        self.timeout = timeout
        self.load_allowance = load_allowance
        """Extra seconds for a call that may load the model; learnt from `load_duration`."""
        self._semaphore = semaphore
        self.max_tokens = max_tokens
        self._options: dict[str, Any] = {"temperature": temperature, "num_predict": max_tokens}
        self._keep_alive = keep_alive
        self._keep_alive_s = keep_alive_s
        self._loaded_until: float | None = None
        """Until when Ollama keeps the model loaded after the last answer (monotonic)."""

    def call_timeout(self) -> float:
        """Seconds this call may take: the timeout, plus the load allowance when the model may
        have to be loaded first (no answer yet, or none within Ollama's keep-alive)."""
        if self._loaded_until is not None and time.monotonic() < self._loaded_until:
            return self.timeout
        return self.timeout + self.load_allowance

    def _answered(self, load_duration_ns: int | None) -> None:
        """The model is loaded now; a load Ollama reports sets the allowance (twice it)."""
        self._loaded_until = time.monotonic() + self._keep_alive_s
        load_s = (load_duration_ns or 0) / 1e9
        if load_s >= LOAD_SEEN_S:
            self.load_allowance = min(MAX_LOAD_ALLOWANCE, 2 * load_s)

    async def ask(self, jpeg: bytes, system_prompt: str) -> StudentAnswer | StudentError:
        """The student's answer, or a StudentError for answers that never came whole.

        The timeout covers the wait for a turn (the semaphore) and the answer together. Raises
        QueuedTooLong when the turn never came in time (the frame was not sent), and
        StudentUnavailable when retrying this frame cannot help (host down, model gone).
        """
        messages: Sequence[dict[str, Any]] = (
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": STUDENT_USER_PROMPT, "images": [jpeg]},
        )
        # One deadline for the whole wait: the queue for a turn with the student and its answer
        # (with the load allowance when the model may have to be loaded first).
        timeout = self.call_timeout()
        try:
            async with asyncio.timeout(timeout) as deadline:
                await self._semaphore.acquire()
        except TimeoutError as err:
            raise QueuedTooLong(f"no turn with the student within {timeout:g} s") from err
        try:
            started = time.monotonic()
            try:
                async with asyncio.timeout_at(deadline.when()):
                    response = await self.client.chat(
                        model=self.model,
                        messages=messages,
                        format=OBSERVATION_SCHEMA,
                        options=self._options,
                        keep_alive=self._keep_alive,
                        think=False,
                        logprobs=True,
                    )
            except TimeoutError:
                return StudentTimeout(f"the student did not answer within {timeout:g} s", "")
            except ollama.ResponseError as err:
                if err.status_code == 404:
                    raise StudentUnavailable("model_missing", err.error) from err
                return StudentError(f"the student host answered {err.status_code}: {err.error}", "")
            except (ConnectionError, httpx.TransportError) as err:
                raise StudentUnavailable("unreachable", str(err) or type(err).__name__) from err
            latency_ms = (time.monotonic() - started) * 1000
            self._answered(response.load_duration)
        finally:
            self._semaphore.release()
        text = response.message.content or ""
        if response.done_reason == "length":
            # A model that loops never closes its JSON; the cap ended it, and half an answer
            # must never be read as a whole one.
            return StudentError(
                f"the student's answer was cut off at {self.max_tokens} tokens", text
            )
        logprobs = tuple(token.logprob for token in response.logprobs or ())
        return StudentAnswer(text, logprobs, latency_ms)


FORCED_REASONS: Final = frozenset(
    {EscalationReason.SAFETY, EscalationReason.STUDENT_ERROR, EscalationReason.TEMPORAL}
)
"""Escalations whatever the confidence threshold: their verdicts weigh 1 and never move it."""


@dataclass(frozen=True, slots=True)
class Confidence:
    """How sure the student is of one answer, every way it is measured."""

    reported: float | None
    """What the confidence sensor shows: the calibrated probability that the student is right
    once the camera's calibration is in use, today's effective confidence until then."""
    stated: float | None
    token: float | None
    """The token logprob evidence on the stated scale; None without logprobs."""
    calibrated: bool = False
    min_confidence: float | None = None
    """The threshold the frame was routed with, on the reported scale."""


@dataclass(frozen=True, slots=True)
class Label:
    """What the teacher's verdict on an escalated frame needs to become a calibration sample."""

    stated: float | None
    token: float | None
    forced: bool
    weight: float
    audit: bool
    bucket: Bucket
    student_flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Analysis:
    """One analysed frame and everything decided about it."""

    result: Observation | StudentError
    decision: Decision
    safety: SafetyState
    frame: PreparedFrame
    analysed_at: datetime
    model: str
    latency_ms: float
    prompt_version: str
    source: Source = "student"
    student_result: Observation | StudentError | None = None
    """The student's answer, when the teacher's answer has replaced it as `result`."""
    confidence: Confidence = field(default_factory=lambda: Confidence(None, None, None))
    label: Label | None = None
    """Set when the policy escalated the frame: its verdict can then teach the calibration."""

    @property
    def observation(self) -> Observation | None:
        """The parsed answer; None when the student's answer could not be read."""
        return self.result if isinstance(self.result, Observation) else None

    @property
    def student_observation(self) -> Observation | None:
        """The student's own parsed answer, whoever's answer is on display."""
        student = self.student_result if self.source == "teacher" else self.result
        return student if isinstance(student, Observation) else None


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """The user's options that shape one camera's pipeline."""

    policy: RoutingPolicy = field(default_factory=RoutingPolicy)
    window: WindowConfig = field(default_factory=WindowConfig)
    change_sensitivity: float = 0.5
    relook: timedelta | None = timedelta(minutes=10)
    """Analyse at least this often even when the change gate sees no change."""


class CameraPipeline:
    """Frame in, analysis out, for one camera; holds its change gate and temporal window."""

    def __init__(
        self,
        student: Student,
        settings: PipelineSettings,
        *,
        rng: random.Random,
        calibration: CameraCalibration | None = None,
    ) -> None:
        self.student = student
        self.calibration = calibration
        """The camera's calibration from teacher verdicts; None routes by today's rule alone."""
        self.settings = settings
        self.window = SafetyWindow(settings.window)
        self._pattern = keyword_pattern(settings.policy.safety_keywords)
        self._rng = rng
        self.gate = ChangeGate(settings.change_sensitivity, settings.relook)
        self._keep_watching = True

    def should_analyse(
        self, thumbnail: Thumbnail, now: datetime, *, forced: bool = False
    ) -> GateDecision:
        """The change gate's decision for a frame (see `gate.ChangeGate`).

        While the last answer was flagged or unreadable, or the safety sensor is on, every frame
        is analysed: a still hazard must build up (or clear) the window like a moving one.
        """
        return self.gate.check(thumbnail, now, must_analyse=forced or self._keep_watching)

    async def analyse(
        self,
        frame: PreparedFrame,
        *,
        system_prompt: str,
        prompt_version: str,
        now: datetime,
        queue_depth: int = 0,
        thumbnail: Thumbnail | None = None,
        bucket: Bucket = "all",
    ) -> Analysis:
        """Run the student on a frame and decide what it means (the gate is the caller's call).

        `thumbnail` is the frame's gate thumbnail: the reference the next frames are compared
        with. Raises QueuedTooLong (nothing recorded) when the student had no turn in time.
        """
        answer = await self.student.ask(frame.jpeg, system_prompt)
        self.gate.analysed(thumbnail, now)
        if isinstance(answer, StudentError):
            result: Observation | StudentError = answer
            logprobs: tuple[float, ...] = ()
            latency_ms = 0.0
        else:
            result = parse_observation(answer.text)
            logprobs, latency_ms = answer.logprobs, answer.latency_ms
        policy, calibrated, confidence = self._policy(result, logprobs, now, bucket, queue_depth)
        decision = route(
            result,
            policy=policy,
            pattern=self._pattern,
            logprobs=logprobs,
            recent_flags=self.window.recent_flags,
            queue_depth=queue_depth,
            audit_draw=self._rng.random(),
            calibrated=calibrated,
        )
        # Keywords in the words count like flags: "flames near the curtains" with no flag is
        # still a flagged frame (a negated "no flames" is not). An unreadable answer is neither
        # flagged nor clean, unless it names a hazard anyway: then that is its evidence.
        flags = (
            (*result.safety_flags, *decision.safety_hits)
            if isinstance(result, Observation)
            else decision.safety_hits or None
        )
        safety = self.window.add_frame(flags, now)
        self._keep_watching = flags is None or bool(flags) or safety.on
        if self.calibration is not None:
            forced = decision.escalate and decision.reason in FORCED_REASONS
            self.calibration.count_frame(now.timestamp(), forced=forced, bucket=bucket)
        label = None
        if decision.escalate and decision.reason is not None:
            audit = decision.reason is EscalationReason.AUDIT
            label = Label(
                stated=confidence.stated,
                token=confidence.token,
                forced=decision.reason in FORCED_REASONS,
                weight=float(policy.audit_rate) if audit else 1.0,
                audit=audit,
                bucket=bucket,
                student_flags=tuple(flags or ()),
            )
        return Analysis(
            result=result,
            decision=decision,
            safety=safety,
            frame=frame,
            analysed_at=now,
            model=self.student.model,
            latency_ms=latency_ms,
            prompt_version=prompt_version,
            confidence=confidence,
            label=label,
        )

    def _policy(
        self,
        result: Observation | StudentError,
        logprobs: Sequence[float],
        now: datetime,
        bucket: Bucket,
        queue_depth: int,
    ) -> tuple[RoutingPolicy, CalibratedSignal | None, Confidence]:
        """The policy for this frame: the user's, or the calibration's threshold and audits."""
        policy = self.settings.policy
        stated = result.confidence if isinstance(result, Observation) else None
        token = token_evidence(logprobs) if policy.use_logprobs else None
        rule = effective_confidence(stated, logprobs if policy.use_logprobs else None)
        if isinstance(result, StudentError):
            stated = token = rule = None
        if self.calibration is None:
            return policy, None, Confidence(rule, stated, token, False, policy.min_confidence)
        at = now.timestamp()
        routing = self.calibration.routing(
            bucket, at, queue_pressure=queue_depth / policy.queue_limit
        )
        if not routing.calibrated:
            policy = replace(policy, audit_rate=routing.audit_rate)
            return policy, None, Confidence(rule, stated, token, False, policy.min_confidence)
        policy = replace(
            policy,
            audit_rate=routing.audit_rate,
            min_confidence=min(1.0, max(0.0, routing.threshold)),
        )
        value = signal_value(routing.kind, stated, token)
        probability = self.calibration.probability(stated, token, bucket, at)
        signal = CalibratedSignal(value, probability, routing.threshold_probability)
        return (
            policy,
            signal,
            Confidence(probability, stated, token, True, routing.threshold_probability),
        )

    def record_verdict(
        self, label: Label, *, agreed: bool, teacher_flags: Sequence[str], at: datetime
    ) -> Sample | None:
        """Teach the calibration the teacher's verdict on an escalated frame."""
        if self.calibration is None:
            return None
        sample = sample_from_verdict(label, agreed=agreed, teacher_flags=teacher_flags, at=at)
        self.calibration.add(sample)
        return sample


def sample_from_verdict(
    label: Label, *, agreed: bool, teacher_flags: Sequence[str], at: datetime
) -> Sample:
    """The calibration sample of a verdict: a missed hazard is one the teacher flags and the
    student's answer did not."""
    truth = {normalise_flag(flag) for flag in teacher_flags}
    said = {normalise_flag(flag) for flag in label.student_flags}
    return Sample(
        stated=label.stated,
        evidence=label.token,
        agreed=agreed,
        missed_hazard=bool(truth) and not truth & said,
        forced=label.forced,
        weight=label.weight,
        at=at.timestamp(),
        audit=label.audit,
        bucket=label.bucket,
    )
