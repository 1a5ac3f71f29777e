"""Agreement between the teacher's verdict and the student's answer (pure functions)."""

from __future__ import annotations

import pytest

from vision_tutor_teacher.metrics import Health, render
from vision_tutor_teacher.models import Observation, Reason, Stats
from vision_tutor_teacher.reviews.agreement import cosine, judge, normalise_flags


def observation(summary: str, *flags: str) -> Observation:
    return Observation(summary=summary, safety_flags=list(flags), confidence=0.8)


def test_flags_compare_as_sets_ignoring_case_space_and_none_words() -> None:
    assert normalise_flags([" Fire", "smoke ", "none", "", "N/A"]) == {"fire", "smoke"}
    assert normalise_flags(["No hazards"]) == frozenset()


def test_cosine_similarity() -> None:
    assert cosine([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        cosine([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("student", "similarity", "agrees", "basis"),
    [
        (observation("Flames on the stove", "fire"), 0.9, True, "flags_and_summary"),
        (observation("Flames on the stove", "FIRE", "none"), 0.9, True, "flags_and_summary"),
        (observation("Flames on the stove", "fire"), 0.5, False, "flags_and_summary"),
        (observation("A quiet kitchen"), 0.9, False, "flags_and_summary"),
        (observation("Flames on the stove", "fire"), None, True, "flags_only"),
        (observation("A quiet kitchen"), None, False, "flags_only"),
        (None, None, False, "no_student_answer"),
    ],
)
def test_judge(
    student: Observation | None, similarity: float | None, agrees: bool, basis: str
) -> None:
    teacher = observation("A pan on fire in the kitchen", "fire")
    verdict, agreement = judge(student, teacher, similarity, threshold=0.75)
    assert verdict is agrees
    assert agreement.basis == basis
    assert agreement.summary_similarity == similarity


def test_metrics_before_any_verdict_leave_out_latency_and_agreement() -> None:
    stats = Stats(
        queue_depth=dict.fromkeys(Reason, 0),
        queued=0,
        in_progress=0,
        accepted=0,
        processed=0,
        shed=0,
        superseded=0,
        failed=0,
        refused=0,
        teacher_latency_ms=None,
        agreement_rate=None,
    )
    text = render(
        stats,
        Health(
            teacher_reachable=False,
            healthy=False,
            breaker_open=False,
            breaker_opened=0,
            busy_answers=0,
            storage_failing=False,
            storage_free_bytes=None,
            restarts={},
        ),
    )
    assert "teacher_latency_ms" not in text
    assert "agreement_rate" not in text
    assert "vision_tutor_teacher_up 0" in text
    assert "vision_tutor_healthy 0" in text
    assert "storage_free_bytes" not in text
    assert text.endswith("\n")
