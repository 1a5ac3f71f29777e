"""Does the teacher agree with the student? Pure functions, no I/O.

Two answers agree when they raise the same safety flags and their summaries say the same thing.
"The same thing" is measured as the cosine similarity of the summaries' embeddings, because a
student rarely words a description like the teacher does. When the embedding model fails the
decision falls back to the flags alone, and the verdict says so (``basis: flags_only``): the
hazard question is the one that matters, and a verdict should not wait on a secondary model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import math
from typing import Final

from vision_tutor_teacher.models import Agreement, Observation

NO_FLAG_WORDS: Final = frozenset({"", "none", "n/a", "na", "null", "no", "nothing", "no hazards"})
"""What models write in safety_flags when they mean "no flags"."""


def normalise_flags(flags: Iterable[str]) -> frozenset[str]:
    """Flags as a set, case- and space-insensitive, without "none"-like entries."""
    return frozenset(
        cleaned for flag in flags if (cleaned := flag.strip().lower()) not in NO_FLAG_WORDS
    )


def cosine(first: Sequence[float], second: Sequence[float]) -> float:
    """Cosine similarity; 0 when either vector is zero (nothing in common to measure)."""
    if len(first) != len(second):
        raise ValueError(f"vectors differ in length ({len(first)} and {len(second)})")
    dot = math.fsum(a * b for a, b in zip(first, second, strict=True))
    norms = math.sqrt(math.fsum(a * a for a in first)) * math.sqrt(math.fsum(b * b for b in second))
    return 0.0 if norms == 0 else dot / norms


def judge(
    student: Observation | None,
    teacher: Observation,
    summary_similarity: float | None,
    threshold: float,
) -> tuple[bool, Agreement]:
    """Whether the teacher agrees with the student, and on what basis.

    `summary_similarity` is None when it could not be measured (embedding failure); a student
    answer that could not be read never agrees with anything.
    """
    if student is None:
        return False, Agreement(flags=False, summary_similarity=None, basis="no_student_answer")
    flags = normalise_flags(student.safety_flags) == normalise_flags(teacher.safety_flags)
    if summary_similarity is None:
        return flags, Agreement(flags=flags, summary_similarity=None, basis="flags_only")
    agrees = flags and summary_similarity >= threshold
    similarity = round(summary_similarity, 4)
    return agrees, Agreement(flags=flags, summary_similarity=similarity, basis="flags_and_summary")
