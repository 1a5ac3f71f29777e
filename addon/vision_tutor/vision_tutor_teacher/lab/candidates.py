"""The synthesis stage: the teacher writes candidate prompts from the meta-prompt
(`vision_tutor_teacher.lab.synthesis`); blank, contract-dropping and near-duplicate ones are
rejected, the rest registered as candidates whose parent is the active prompt.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from vision_tutor_teacher.options import Options
from vision_tutor_teacher.storage.database import Database, Transaction

from . import registry
from .clients import LabFailed, LabModels
from .context import RoundContext
from .models import (
    PromptOut,
    PromptSource,
    Split,
    SynthesizeRequest,
)
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

_LOGGER = logging.getLogger(__name__)

OPRO_PROMPTS: Final = 6
"""Earlier prompts (best by train score) shown to the teacher."""
FAILURES_SHOWN: Final = 6
SYNTHESIS_TEMPERATURE: Final = 1.0
"""Candidates should differ; the gate, not the teacher's caution, keeps bad ones out."""


def collect_failures(
    tx: Transaction, active: PromptOut, holdout_reviews: set[str]
) -> list[Failure]:
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


def round_number_of(tx: Transaction) -> int:
    return int(tx.scalar("SELECT count(*) FROM lab_rounds WHERE kind = 'synthesize'")) + 1


class CandidateWriter:
    """Synthesis as a stage of a round: ask the teacher, reject, deduplicate, register."""

    def __init__(self, db: Database, options: Options, models: LabModels) -> None:
        self.db = db
        self.options = options
        self.models = models

    async def write(
        self, ctx: RoundContext, request: SynthesizeRequest, active: PromptOut
    ) -> list[PromptOut]:
        """Synthesis: ask, parse, reject, dedupe, register. The registered candidates."""
        holdout_reviews = {case.review_id for case in ctx.holdout if case.review_id}
        prompts = await self.db.run(lambda tx: registry.all_prompts(tx, ctx.fingerprints))
        earlier = sorted(
            (p for p in prompts if p.train_score is not None and p.current["train"]),
            key=lambda p: -(p.train_score or 0.0),
        )[:OPRO_PROMPTS]
        failures = await self.db.run(lambda tx: collect_failures(tx, active, holdout_reviews))
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
        round_number = await self.db.run(round_number_of)

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
