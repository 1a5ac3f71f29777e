"""The routing policy: every signal, its priority, and the shedding rules."""

from __future__ import annotations

import math

import pytest

from custom_components.vision_tutor.contract import Observation, StudentError
from custom_components.vision_tutor.routing import (
    PRIORITY,
    EscalationReason,
    RoutingPolicy,
    below_text,
    effective_confidence,
    keyword_pattern,
    route,
)

POLICY = RoutingPolicy()
PATTERN = keyword_pattern(POLICY.safety_keywords)
CALM = Observation("An empty hallway", ("hallway", "door"), (), 0.93)


def _route(answer: Observation | StudentError, **kwargs: object):
    return route(answer, policy=kwargs.pop("policy", POLICY), pattern=PATTERN, **kwargs)  # type: ignore[arg-type]


def test_a_confident_calm_answer_stays_with_the_student() -> None:
    decision = _route(CALM)
    assert not decision.escalate
    assert decision.reason is None
    assert decision.priority == 0
    assert "0.93" in decision.detail


def test_an_unreadable_answer_always_escalates_even_with_a_full_queue() -> None:
    decision = _route(StudentError("no JSON object in the answer", "blah"), queue_depth=999)
    assert decision.escalate
    assert decision.reason is EscalationReason.STUDENT_ERROR
    assert decision.detail == "no JSON object in the answer"
    assert decision.effective_confidence is None


@pytest.mark.parametrize(
    ("answer", "hits"),
    [
        (Observation("A kitchen", ("stove",), ("fire",), 0.99), ("fire",)),
        (Observation("Flames rise near the curtains", ("curtains",), (), 0.99), ("fire",)),
        (Observation("A man holds a KNIFE", ("man",), (), 0.99), ("weapon",)),
        (Observation("Someone has fallen", ("person",), (), 0.99), ("fall",)),
        (Observation("A hallway", ("smoke",), (), 0.99), ("smoke",)),
        (Observation("An intruder at the window", (), ("intrusion",), 0.99), ("intrusion",)),
    ],
)
def test_safety_flags_and_keywords_escalate_first(
    answer: Observation, hits: tuple[str, ...]
) -> None:
    decision = _route(answer, queue_depth=999)
    assert decision.escalate
    assert decision.reason is EscalationReason.SAFETY
    assert decision.safety_hits == hits
    assert decision.priority == PRIORITY[EscalationReason.SAFETY] == max(PRIORITY.values())


@pytest.mark.parametrize(
    "summary",
    ["A cozy fireplace corner", "A waterfall poster", "Smokey the cat sleeps", "A gunmetal car"],
)
def test_keywords_match_whole_words_only(summary: str) -> None:
    assert not _route(Observation(summary, (), (), 0.95)).escalate


def test_a_user_keyword_without_synonyms_is_matched_as_written() -> None:
    policy = RoutingPolicy(safety_keywords=("flood",))
    pattern = keyword_pattern(policy.safety_keywords)
    decision = route(
        Observation("Water flood in the basement", (), (), 0.95), policy=policy, pattern=pattern
    )
    assert decision.reason is EscalationReason.SAFETY
    assert decision.safety_hits == ("flood",)
    # "fire" is no longer a keyword: a fire flag new to the window escalates as a change.
    flagged = route(Observation("A room", (), ("fire",), 0.95), policy=policy, pattern=pattern)
    assert flagged.reason is EscalationReason.TEMPORAL


def test_low_stated_confidence_escalates() -> None:
    decision = _route(Observation("A driveway", ("car",), (), 0.5))
    assert decision.reason is EscalationReason.LOW_CONFIDENCE
    assert decision.detail == "low confidence: 0.50 < 0.72"


def test_a_confidence_just_below_the_threshold_never_reads_as_equal_to_it() -> None:
    """Printed with two decimals, 0.7195 < 0.72 read "0.72 < 0.72"."""
    decision = _route(Observation("A driveway", ("car",), (), 0.7195))
    assert decision.reason is EscalationReason.LOW_CONFIDENCE
    assert decision.detail == "low confidence: 0.7195 < 0.7200"
    assert below_text(0.71999, 0.72) == "0.71999 < 0.72000"
    assert below_text(0.5, 0.72) == "0.50 < 0.72"


def test_missing_confidence_counts_as_low() -> None:
    decision = _route(Observation("A driveway", ("car",), (), None))
    assert decision.reason is EscalationReason.LOW_CONFIDENCE
    assert "gave none" in decision.detail


def test_hesitant_tokens_lower_a_confident_answer_below_the_threshold() -> None:
    hesitant = [-0.01] * 60 + [-1.2, -0.9, -0.6]
    decision = _route(Observation("A driveway", ("car",), (), 0.97), logprobs=hesitant)
    assert decision.reason is EscalationReason.LOW_CONFIDENCE
    assert decision.effective_confidence == pytest.approx(math.exp(-0.9 * 0.7))
    assert "lowered by token logprobs" in decision.detail
    # With the logprob signal switched off the same answer passes.
    assert not _route(
        Observation("A driveway", ("car",), (), 0.97),
        logprobs=hesitant,
        policy=RoutingPolicy(use_logprobs=False),
    ).escalate


def test_logprobs_only_ever_lower_confidence() -> None:
    assert effective_confidence(0.6, [-0.001] * 10) == 0.6
    assert effective_confidence(0.9, None) == 0.9
    assert effective_confidence(0.9, []) == 0.9
    assert effective_confidence(None, [-0.1, -0.1, -0.1]) == pytest.approx(math.exp(-0.07))


def test_a_little_hesitation_on_content_tokens_does_not_escalate_a_right_answer() -> None:
    # Content tokens at p = 0.6-0.8 are ordinary for a right answer.
    ordinary = [-0.02] * 60 + [-0.45, -0.3, -0.25]
    assert not _route(Observation("A driveway", ("car",), (), 0.95), logprobs=ordinary).escalate


def test_a_flag_new_to_the_window_is_a_temporal_change_when_keywords_do_not_cover_it() -> None:
    answer = Observation("Water on the floor", ("floor",), ("flood",), 0.95)
    decision = _route(answer, recent_flags=frozenset())
    assert decision.reason is EscalationReason.TEMPORAL
    assert decision.detail == "new in the window: flood"
    assert not _route(answer, recent_flags=frozenset({"flood"})).escalate


def test_audits_are_random_one_in_n() -> None:
    assert _route(CALM, audit_draw=0.5 / 150).reason is EscalationReason.AUDIT
    assert not _route(CALM, audit_draw=1.5 / 150).escalate
    assert not _route(CALM, audit_draw=0.0, policy=RoutingPolicy(audit_rate=0)).escalate


def test_a_full_queue_sheds_audits_first_then_low_confidence() -> None:
    policy = RoutingPolicy(queue_limit=10)
    unsure = Observation("A driveway", ("car",), (), 0.4)

    audit = _route(CALM, audit_draw=0.0, queue_depth=8, policy=policy)
    assert audit.shed
    assert not audit.escalate
    assert audit.reason is EscalationReason.AUDIT
    assert "teacher queue full" in audit.detail

    assert _route(unsure, queue_depth=8, policy=policy).escalate
    shed = _route(unsure, queue_depth=10, policy=policy)
    assert shed.shed
    assert shed.reason is EscalationReason.LOW_CONFIDENCE

    flagged = Observation("Smoke in the hallway", (), ("smoke",), 0.9)
    assert _route(flagged, queue_depth=10_000, policy=policy).escalate


@pytest.mark.parametrize(
    "kwargs",
    [{"min_confidence": 1.5}, {"min_confidence": -0.1}, {"audit_rate": -1}, {"queue_limit": 0}],
)
def test_impossible_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"\w+"):
        RoutingPolicy(**kwargs)  # type: ignore[arg-type]


def test_switching_signals_off_leaves_the_others_working() -> None:
    policy = RoutingPolicy(use_safety=False, use_confidence=False)
    fiery = Observation("Flames", (), ("fire",), 0.3)
    decision = _route(fiery, policy=policy)
    assert decision.reason is EscalationReason.TEMPORAL


def test_an_empty_keyword_list_matches_nothing() -> None:
    pattern = keyword_pattern(["", "  "])
    assert not pattern.search("fire smoke x")


def test_a_negated_keyword_beside_a_flag_is_neither_a_hit_nor_in_the_reason() -> None:
    answer = Observation(
        "Grey smoke near the ceiling; no flames are visible.", ("ceiling",), ("smoke",), 0.9
    )
    decision = _route(answer)
    assert decision.escalate
    assert decision.reason is EscalationReason.SAFETY
    assert decision.safety_hits == ("smoke",)
    assert decision.negated == ("fire",)
    assert decision.detail == "safety flag: smoke; negated, not flagged: fire"


def test_a_keyword_in_prose_is_a_different_reason_from_a_flag() -> None:
    decision = _route(Observation("Flames near the curtains", ("curtains",), (), 0.95))
    assert decision.detail == "safety keyword in prose: fire"
    both = _route(Observation("Blood on the floor", ("floor",), ("fall",), 0.95))
    assert both.detail == "safety flag: fall; keyword in prose: blood"
    assert both.safety_hits == ("fall", "blood")


def test_a_hazard_named_only_outside_the_json_is_a_keyword_in_prose() -> None:
    answer = Observation("A kitchen", ("pan",), ("fire",), 0.95, outside_text="I see a knife.")
    decision = _route(answer)
    assert decision.safety_hits == ("fire", "weapon")


def test_an_answer_that_only_negates_hazards_is_calm() -> None:
    decision = _route(Observation("A quiet room; no smoke or fire.", ("sofa",), (), 0.95))
    assert not decision.escalate
    assert decision.safety_hits == ()
    assert decision.negated == ("smoke", "fire")
    assert "negated, not flagged: smoke, fire" in decision.detail


def test_a_student_error_keeps_the_hazards_its_answer_names() -> None:
    error = StudentError("answer has no safety_flags", '{"summary": "Flames in the bin"}')
    decision = _route(error)
    assert decision.reason is EscalationReason.STUDENT_ERROR
    assert decision.safety_hits == ("fire",)
    assert decision.detail == "answer has no safety_flags; hazard named anyway: fire"
