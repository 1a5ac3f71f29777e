"""The routing policy: which student answers the teacher should review, and why.

Pure logic, no Home Assistant imports. Signals, highest priority first: the student's answer
could not be read (or broke the strict safety contract); a safety keyword (with its synonyms)
among its flags, or named outright in its words (summary, observations, prose outside the JSON);
confidence below the threshold; a flag the camera's recent window did not have (temporal
change); a random audit. A keyword inside a negated phrase ("no flames are visible") is neither
a trigger nor a flag: it is recorded in the decision (`Decision.negated`) and its detail. When the
teacher's queue is full, audits are shed first, then low-confidence escalations; safety and
student errors are always sent (the add-on queue makes room for them). Every decision carries
a reason a person can read.

Effective confidence: small models say 0.95 whether they are right or wrong, so the stated
confidence is checked against the token log-probabilities when the server returns them. The
evidence is the geometric-mean probability of the three least likely tokens — the model's
hesitation concentrates on the few tokens that carry the content (a flag, a noun), while the
JSON syntax around them is near-certain and would dilute a plain mean — and it is raised to the
power 0.7 to put it on the scale of stated confidence: the content tokens of right answers
commonly sit at probabilities of 0.6-0.9, where a stated 0.6 would already be a doubtful answer.
(Compared raw against the 0.72 threshold, the evidence sent one right answer in ten to the
teacher; with 0.7 the teacher share falls from 23 % to 18 % at the same accuracy, and 0.5 loses
recall; see benchmarks/results/routing.md. The exponent was calibrated on the simulator and
should be revisited with real cameras.) The effective confidence is the lower of the two: logprobs can
only lower confidence, never raise it.

That rule and its threshold are the starting point only: once a camera has enough teacher
verdicts, `calibration.CameraCalibration` routes instead on the signal that ranks its answers
best, with a threshold chosen for the user's target, and reports the calibrated probability
(`CalibratedSignal`); this module still applies it, with every other signal unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
import math
import re
from typing import Final

from .contract import FLAG_SYNONYMS, Observation, StudentError, hazard_mentions, normalise_flag


class EscalationReason(StrEnum):
    """Why a frame goes to the teacher; the values are the add-on API's reasons."""

    SAFETY = "safety"
    STUDENT_ERROR = "student_error"
    LOW_CONFIDENCE = "low_confidence"
    TEMPORAL = "temporal"
    AUDIT = "audit"


PRIORITY: Final[dict[EscalationReason, int]] = {
    EscalationReason.SAFETY: 5,
    EscalationReason.STUDENT_ERROR: 4,
    EscalationReason.LOW_CONFIDENCE: 3,
    EscalationReason.TEMPORAL: 2,
    EscalationReason.AUDIT: 1,
}

# Shed in this order when the teacher queue is full; the rest are never shed here.
SHEDDABLE: Final = (EscalationReason.AUDIT, EscalationReason.LOW_CONFIDENCE)

LOGPROB_TOKENS: Final = 3
"""How many of the least likely tokens make the logprob evidence."""
EVIDENCE_EXPONENT: Final = 0.7
"""Puts token evidence on the scale of stated confidence (calibrated on the simulator)."""


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The thresholds a user sets in the options, and switches for measuring each signal."""

    min_confidence: float = 0.72
    safety_keywords: tuple[str, ...] = tuple(FLAG_SYNONYMS)
    audit_rate: int = 150
    """One frame in this many is audited; 0 turns audits off."""
    queue_limit: int = 20
    use_safety: bool = True
    use_confidence: bool = True
    use_logprobs: bool = True
    use_temporal: bool = True
    use_audit: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= 1:
            raise ValueError("the confidence threshold must be between 0 and 1")
        if self.audit_rate < 0:
            raise ValueError("the audit rate must be 0 (off) or a positive 1-in-N")
        if self.queue_limit < 1:
            raise ValueError("the teacher queue limit must be at least 1")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one analysed frame."""

    escalate: bool
    reason: EscalationReason | None
    """The signal that fired (also set when the escalation was shed)."""
    detail: str
    """Why, in words: shown in attributes, events and the teacher's queue."""
    effective_confidence: float | None
    safety_hits: tuple[str, ...] = ()
    """The answer's hazards as flags: its safety flags (that are keywords) and the keywords it
    names outright in its words; for a student error, the hazards it names anyway."""
    shed: bool = False
    """An escalation was wanted but dropped because the teacher queue is full."""
    negated: tuple[str, ...] = ()
    """Keywords named only in negated phrases ("no flames"): not hazards, not flags."""

    @property
    def priority(self) -> int:
        """The add-on queue's priority; 0 when nothing is sent."""
        return PRIORITY[self.reason] if self.reason and self.escalate else 0


CONFIDENCE_DIGITS: Final = 3
"""Decimals a confidence is shown with (attributes, the action's response, details): enough
that a value and the threshold it is compared with never print alike unless they are."""


def shown_confidence(value: float | None) -> float | None:
    """A confidence rounded for showing; None stays None."""
    return None if value is None else round(value, CONFIDENCE_DIGITS)


def token_evidence(logprobs: Sequence[float] | None) -> float | None:
    """The token logprob evidence on the scale of stated confidence; None without logprobs."""
    if not logprobs:
        return None
    lowest = sorted(logprobs)[:LOGPROB_TOKENS]
    return math.exp(EVIDENCE_EXPONENT * sum(lowest) / len(lowest))


def effective_confidence(stated: float | None, logprobs: Sequence[float] | None) -> float | None:
    """The stated confidence, lowered by token logprob evidence when there is any."""
    evidence = token_evidence(logprobs)
    if evidence is None:
        return stated
    return evidence if stated is None else min(stated, evidence)


@dataclass(frozen=True, slots=True)
class CalibratedSignal:
    """The confidence signal a camera's calibration routes on, instead of today's rule.

    `value` is compared with the policy's `min_confidence` (on the signal's own scale);
    `probability` is what it means, calibrated from the teacher's verdicts.
    """

    value: float | None
    probability: float | None
    threshold_probability: float | None


def keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str]:
    """A word-boundary pattern for the keywords and, for the contract's flags, their synonyms."""
    words: set[str] = set()
    for keyword in keywords:
        word = keyword.strip().lower()
        if word:
            words.add(word)
            words.update(FLAG_SYNONYMS.get(normalise_flag(word), ()))
    if not words:
        return re.compile(r"(?!x)x")  # matches nothing
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SafetyEvidence:
    """Where an answer names hazards: its flags, its words, and what it only negates."""

    flagged: tuple[str, ...]
    """Safety flags of the answer that are keywords."""
    in_prose: tuple[str, ...]
    """Keywords named outright in its words but not among its flags."""
    negated: tuple[str, ...]
    """Keywords named only inside negated phrases (and not flagged): evidence of nothing."""

    @property
    def hits(self) -> tuple[str, ...]:
        """The hazards: what the sensor counts as this frame's flags."""
        return (*self.flagged, *self.in_prose)

    def describe(self) -> str:
        """The escalation detail: a flag and a keyword in prose are different reasons."""
        parts = []
        if self.flagged:
            parts.append(f"safety flag: {', '.join(self.flagged)}")
        if self.in_prose:
            label = "keyword in prose" if self.flagged else "safety keyword in prose"
            parts.append(f"{label}: {', '.join(self.in_prose)}")
        if self.negated:
            parts.append(f"negated, not flagged: {', '.join(self.negated)}")
        return "; ".join(parts)


def safety_evidence(answer: Observation, pattern: re.Pattern[str]) -> SafetyEvidence:
    """The safety keywords in the answer: its flags, and its words (negation-aware).

    A flag outside the keyword list is not a safety trigger; it escalates as a temporal change
    when the camera's window has not seen it.
    """
    flagged = tuple(
        dict.fromkeys(
            normalise_flag(m.group(0))
            for flag in answer.safety_flags
            if (m := pattern.search(flag)) is not None
        )
    )
    text = "\n".join((answer.summary, *answer.observations, answer.outside_text))
    mentions = hazard_mentions(text, pattern)
    return SafetyEvidence(
        flagged,
        tuple(flag for flag in mentions.asserted if flag not in flagged),
        tuple(flag for flag in mentions.negated if flag not in flagged),
    )


def safety_hits(answer: Observation, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """The hazards in the answer, as flag names (see `safety_evidence`)."""
    return safety_evidence(answer, pattern).hits


def route(
    result: Observation | StudentError,
    *,
    policy: RoutingPolicy,
    pattern: re.Pattern[str],
    logprobs: Sequence[float] | None = None,
    recent_flags: frozenset[str] = frozenset(),
    queue_depth: int = 0,
    audit_draw: float = 1.0,
    calibrated: CalibratedSignal | None = None,
) -> Decision:
    """Decide whether the teacher should see this frame.

    `audit_draw` is a uniform random number in [0, 1): the caller owns the randomness so that
    periodic scenes don't alias with a fixed 1-in-N counter, and tests stay deterministic.
    `queue_depth` is the teacher's current queue (0 when unknown or no teacher). With
    `calibrated`, the threshold is compared with its signal instead of the effective confidence
    (which the decision still carries).
    """
    if isinstance(result, StudentError):
        mentions = hazard_mentions(result.raw, pattern)
        named = tuple(dict.fromkeys((*result.evidence, *mentions.asserted)))
        detail = result.reason
        if named:
            detail = f"{detail}; hazard named anyway: {', '.join(named)}"
        return Decision(True, EscalationReason.STUDENT_ERROR, detail, None, named)

    confidence = effective_confidence(result.confidence, logprobs if policy.use_logprobs else None)
    evidence = safety_evidence(result, pattern) if policy.use_safety else SafetyEvidence((), (), ())
    decision = _first_signal(
        result, policy, confidence, evidence, recent_flags, audit_draw, calibrated
    )
    if decision.reason in SHEDDABLE and _must_shed(decision.reason, policy, queue_depth):
        return Decision(
            False,
            decision.reason,
            f"{decision.detail}; not sent: teacher queue full ({queue_depth})",
            confidence,
            evidence.hits,
            shed=True,
            negated=evidence.negated,
        )
    return decision


def _first_signal(
    answer: Observation,
    policy: RoutingPolicy,
    confidence: float | None,
    evidence: SafetyEvidence,
    recent_flags: frozenset[str],
    audit_draw: float,
    calibrated: CalibratedSignal | None,
) -> Decision:
    decision = _signal(answer, policy, confidence, evidence, recent_flags, audit_draw, calibrated)
    if evidence.negated and not evidence.hits:
        negated = f"negated, not flagged: {', '.join(evidence.negated)}"
        return replace(decision, detail=f"{decision.detail}; {negated}", negated=evidence.negated)
    return decision


def _signal(
    answer: Observation,
    policy: RoutingPolicy,
    confidence: float | None,
    evidence: SafetyEvidence,
    recent_flags: frozenset[str],
    audit_draw: float,
    calibrated: CalibratedSignal | None,
) -> Decision:
    if hits := evidence.hits:
        return Decision(
            True,
            EscalationReason.SAFETY,
            evidence.describe(),
            confidence,
            hits,
            negated=evidence.negated,
        )
    compared = confidence if calibrated is None else calibrated.value
    if policy.use_confidence and (compared is None or compared < policy.min_confidence):
        return Decision(
            True,
            EscalationReason.LOW_CONFIDENCE,
            _calibrated_detail(calibrated)
            if calibrated is not None
            else _confidence_detail(answer.confidence, confidence, policy.min_confidence),
            confidence,
        )
    new_flags = frozenset(answer.safety_flags) - recent_flags
    if policy.use_temporal and new_flags:
        return Decision(
            True,
            EscalationReason.TEMPORAL,
            f"new in the window: {', '.join(sorted(new_flags))}",
            confidence,
        )
    if policy.use_audit and policy.audit_rate and audit_draw < 1 / policy.audit_rate:
        return Decision(
            True, EscalationReason.AUDIT, f"random audit (1 in {policy.audit_rate})", confidence
        )
    shown = "unknown" if confidence is None else f"{confidence:.2f}"
    return Decision(False, None, f"no signal: confidence {shown}, no safety flags", confidence)


def below_text(value: float, threshold: float) -> str:
    """ "value < threshold" with as many decimals as it takes to tell them apart (two at least,
    six at most): 0.7195 below 0.72 reads "0.7195 < 0.7200", not "0.72 < 0.72"."""
    digits = 2
    while digits < 6 and f"{value:.{digits}f}" == f"{threshold:.{digits}f}":
        digits += 1
    return f"{value:.{digits}f} < {threshold:.{digits}f}"


def _confidence_detail(stated: float | None, effective: float | None, threshold: float) -> str:
    if effective is None:
        return "low confidence: the student gave none"
    if stated is not None and effective < stated:
        return (
            f"low confidence: {below_text(effective, threshold)} "
            f"(stated {stated:.2f}, lowered by token logprobs)"
        )
    return f"low confidence: {below_text(effective, threshold)}"


def _calibrated_detail(calibrated: CalibratedSignal) -> str:
    if calibrated.probability is None or calibrated.threshold_probability is None:
        return "low confidence: the student gave none"
    return (
        f"low confidence: {calibrated.probability:.2f} < {calibrated.threshold_probability:.2f} "
        "(calibrated from the teacher's verdicts)"
    )


def _must_shed(reason: EscalationReason, policy: RoutingPolicy, queue_depth: int) -> bool:
    """Audits go once the queue is 80 % full, low confidence only when it is full."""
    if reason is EscalationReason.AUDIT:
        return queue_depth >= max(1, int(policy.queue_limit * 0.8))
    return queue_depth >= policy.queue_limit
