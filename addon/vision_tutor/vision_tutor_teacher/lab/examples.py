"""Curated examples: every teacher verdict with its frame is a candidate validation case.

Accepting one copies the frame into the suite (so review retention no longer touches it) with
the teacher's verdict as the reference answer, its flags as the expected flags and its short
observations as expected keywords; the user may override any of these.
"""

from __future__ import annotations

from datetime import datetime
import re
import sqlite3
from typing import Final

from vision_tutor_teacher.models import StudentReport, Verdict
from vision_tutor_teacher.storage.database import Transaction
from vision_tutor_teacher.storage.retention import frame

from .finetune import EXAMPLES_SQL
from .models import AcceptExample, ExampleList, ExampleOut, ValidationCaseIn
from .suite import DuplicateCase, insert_case

MAX_DEFAULT_KEYWORDS: Final = 6
_ARTICLE: Final = re.compile(r"^(?:a|an|the|some)\s+", re.IGNORECASE)


class UnknownExample(Exception):
    """No finished review with a verdict and a kept frame has this id."""


def default_keywords(observations: list[str]) -> list[list[str] | str]:
    """The verdict's short observations (one or two words, articles dropped) as keywords.

    Longer phrases ("person in a red shirt") would rarely be matched word for word by a correct
    answer; the embedding similarity to the reference covers what they say.
    """
    keywords: list[list[str] | str] = []
    for observation in observations:
        phrase = _ARTICLE.sub("", observation.strip().lower())
        if phrase and len(phrase.split()) <= 2 and phrase not in keywords:
            keywords.append(phrase)
    return keywords[:MAX_DEFAULT_KEYWORDS]


def _example(row: sqlite3.Row) -> ExampleOut:
    verdict = Verdict.model_validate_json(row["verdict"])
    student = StudentReport.model_validate_json(row["student"])
    return ExampleOut(
        id=row["id"],
        camera=row["camera"],
        camera_name=row["camera_name"],
        reason=row["reason"],
        captured_at=datetime.fromisoformat(row["captured_at"]),
        verdict=verdict.verdict,
        agrees_with_student=verdict.agrees_with_student,
        student_summary=None if student.answer is None else student.answer.summary,
        frame_url=f"/api/v1/reviews/{row['id']}/frame",
        case_id=row["case_id"],
    )


def list_examples(tx: Transaction, limit: int) -> ExampleList:
    """The newest curated examples, with the case each was accepted as (if any)."""
    rows = tx.execute(
        "SELECT r.id, r.camera, r.camera_name, r.reason, r.captured_at, r.verdict, r.student, "
        "(SELECT c.id FROM validation_cases c WHERE c.review_id = r.id) AS case_id "
        f"{EXAMPLES_SQL} ORDER BY r.id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    total = int(tx.scalar(f"SELECT count(*) {EXAMPLES_SQL}"))
    return ExampleList(examples=[_example(row) for row in rows], total=total)


def accept(tx: Transaction, review_id: str, overrides: AcceptExample, holdout_share: float) -> str:
    """Add the example to the suite; the new case's id. DuplicateCase if its name is taken."""
    row = tx.one(f"SELECT r.* {EXAMPLES_SQL} AND r.id = ?", (review_id,))
    jpeg = frame(tx, review_id)
    if row is None or jpeg is None:
        raise UnknownExample(f"no curated example {review_id} (or its frame is no longer kept)")
    accepted = tx.scalar("SELECT id FROM validation_cases WHERE review_id = ?", (review_id,))
    if accepted is not None:
        raise DuplicateCase(f"example {review_id} is already the validation case {accepted}")
    verdict = Verdict.model_validate_json(row["verdict"])
    observation = verdict.verdict
    name = overrides.name or f"{row['camera']} {row['captured_at'][:19]} ({review_id[-6:]})"
    case = ValidationCaseIn(
        name=name,
        image=jpeg,
        expected_keywords=(
            overrides.expected_keywords
            if overrides.expected_keywords is not None
            else default_keywords(observation.observations)
        ),
        forbidden_keywords=overrides.forbidden_keywords,
        expected_flags=observation.safety_flags,
        weight=overrides.weight,
        split=overrides.split,
    )
    case_id, _ = insert_case(
        tx,
        case,
        "example",
        holdout_share,
        review_id=review_id,
        reference=observation,
        reference_model=verdict.teacher_model,
    )
    return case_id
