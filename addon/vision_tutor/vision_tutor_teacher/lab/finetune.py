"""When fine-tuning is justified, and the curated example set as JSONL for supervised fine-tuning.

Fine-tuning is the last resort: prompts are cheaper to change, review and roll back. It becomes
worth it when there is enough teacher-labelled data *and* prompting has stopped paying: at least
``min_examples`` curated examples, and the last ``rounds`` synthesis rounds each improved the
holdout score by less than ``epsilon`` (a round's improvement is its best finalist's holdout over
the active prompt's, whether or not it was promoted, and never below 0).

The curated examples are the teacher's verdicts whose frames are still kept (they follow the
review retention; accept an example into the validation suite to keep it for good). The export
is one JSON object per line in the conversational format of common SFT tools (e.g. Hugging Face
TRL with a vision chat template): a system message with the active student prompt, a user message
with the frame (a ``data:image/jpeg;base64`` URL) and the task's user text, and the assistant
message the student should have written: the teacher's verdict in the contract, as JSON text.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
import json
from typing import Any, Final

from vision_tutor_teacher.models import Verdict
from vision_tutor_teacher.storage.database import Transaction, dumps

EXAMPLES_SQL: Final = (
    "FROM reviews r JOIN frames f ON f.review_id = r.id "
    "WHERE r.status = 'done' AND r.verdict IS NOT NULL"
)


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


def readiness(
    examples: int,
    improvements: Sequence[float],
    *,
    min_examples: int,
    epsilon: float,
    rounds: int,
) -> Readiness:
    """The rule above; `improvements` are the synthesis rounds' holdout gains, newest first."""
    if examples < min_examples:
        return Readiness(
            False,
            f"{examples} curated examples; fine-tuning needs at least {min_examples}. "
            "Keep improving the prompt meanwhile.",
        )
    recent = list(improvements[:rounds])
    if len(recent) < rounds:
        return Readiness(
            False,
            f"only {len(recent)} synthesis rounds so far; {rounds} are needed to tell whether "
            "prompting has plateaued",
        )
    best = max(recent)
    if best >= epsilon:
        return Readiness(
            False,
            f"prompting still helps: one of the last {rounds} rounds improved the holdout score "
            f"by {best:.3f} (epsilon {epsilon:g})",
        )
    return Readiness(
        True,
        f"prompting has plateaued; fine-tuning is justified: {examples} curated examples, and the "
        f"last {rounds} synthesis rounds improved the holdout score by less than {epsilon:g}",
    )


def example_count(tx: Transaction) -> int:
    return int(tx.scalar(f"SELECT count(*) {EXAMPLES_SQL}"))


def recent_improvements(tx: Transaction, limit: int) -> list[float]:
    rows = tx.execute(
        "SELECT improvement FROM lab_rounds WHERE kind = 'synthesize' ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [float(row[0]) for row in rows]


def answer_json(verdict: Verdict) -> str:
    """The assistant turn: the four contract fields the student answers in, as JSON text."""
    observation = verdict.verdict
    return dumps(
        {
            "summary": observation.summary,
            "observations": observation.observations,
            "safety_flags": observation.safety_flags,
            "confidence": observation.confidence,
        }
    )


def chat_record(system_prompt: str, user_prompt: str, jpeg: bytes, verdict: Verdict) -> str:
    """One JSONL line."""
    image = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    record: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": system_prompt}]},
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image},
                    {"type": "text", "text": user_prompt},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": answer_json(verdict)}]},
        ]
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def export_page(
    tx: Transaction, after: str, limit: int, system_prompt: str, user_prompt: str
) -> tuple[list[str], str | None]:
    """JSONL lines for the examples after review id `after` (ids sort by time); the next cursor."""
    rows = tx.execute(
        f"SELECT r.id, r.verdict, f.jpeg {EXAMPLES_SQL} AND r.id > ? ORDER BY r.id LIMIT ?",
        (after, limit),
    ).fetchall()
    lines = [
        chat_record(
            system_prompt,
            user_prompt,
            bytes(row["jpeg"]),
            Verdict.model_validate_json(row["verdict"]),
        )
        for row in rows
    ]
    return lines, (rows[-1]["id"] if len(rows) == limit else None)
