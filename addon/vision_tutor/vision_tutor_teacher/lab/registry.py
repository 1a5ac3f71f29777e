"""The prompt registry: versioned student prompts, their scores, lineage, and the active one.

Prompts are numbered ``v1``, ``v2``, … in the order they are registered. Each records its text,
its parent (the prompt it was derived from), its source (seed, teacher, manual), the models it
was scored with, and per split (train, holdout) its score, the score per method, the per-case
breakdown and a fingerprint of the cases it was measured on, so a changed suite shows which
scores are stale.

Exactly one prompt is ``active``: the one the integration's student uses. It changes only by a
promotion (by the gate after a scoring round, or by hand) or a rollback, and every change is
logged (``prompt_log``) and announced with a ``prompt`` event in the same transaction, so the
integration can never miss one. A rollback returns to the prompt that was active before the
current one was promoted: the log is replayed as a stack (a promotion pushes, a rollback pops).

The functions taking a `Transaction` run on the database thread; `gate` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import re
import sqlite3
from typing import Final, Literal

from vision_tutor_teacher.storage.database import Transaction, dumps

from .models import (
    ActivePrompt,
    CaseResult,
    LogEntry,
    PromptCost,
    PromptEvent,
    PromptOut,
    PromptSource,
    PromptStatus,
    Split,
)

SEED_PROMPT: Final = (
    "You are a vision assistant for a home camera. Describe the frame and answer in JSON with "
    "the fields summary, observations, safety_flags and confidence. Put fire, smoke, weapons or "
    "a person who has fallen in safety_flags."
)
"""A plain starting prompt: it states the contract and some hazards, and nothing more (no
confidence guidance, nothing about text in the image, two hazards missing). Deliberately
improvable: the lab's first rounds have somewhere to go. The integration keeps its own built-in
prompt until a lab prompt is promoted."""

_VERSION: Final = re.compile(r"^v([1-9]\d{0,8})$")

type ScoredPhase = Literal["train", "holdout", "screening"]


class UnknownPrompt(Exception):
    """No prompt with this version."""


class NothingToRollBack(Exception):
    """No earlier active prompt to return to."""


def version_name(number: int) -> str:
    return f"v{number}"


def parse_version(version: str) -> int | None:
    match = _VERSION.match(version.strip())
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """The fingerprints of the suite as it is now (see `suite.fingerprint`)."""

    train: str
    holdout: str


def _prompt_out(row: sqlite3.Row, now: Fingerprints | None) -> PromptOut:
    cost = row["cost"]
    return PromptOut(
        version=version_name(row["number"]),
        text=row["text"],
        parent=row["parent"],
        source=PromptSource(row["source"]),
        status=PromptStatus(row["status"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        round=row["round"],
        student_model=row["student_model"],
        teacher_model=row["teacher_model"],
        train_score=row["train_score"],
        holdout_score=row["holdout_score"],
        scores_by_method=json.loads(row["scores"]),
        per_case=[CaseResult.model_validate(item) for item in json.loads(row["per_case"])],
        cost=None if cost is None else PromptCost.model_validate_json(cost),
        current={
            "train": now is not None and row["train_suite"] == now.train,
            "holdout": now is not None and row["holdout_suite"] == now.holdout,
        },
    )


def _row(tx: Transaction, version: str) -> sqlite3.Row:
    number = parse_version(version)
    row = None if number is None else tx.one("SELECT * FROM prompts WHERE number = ?", (number,))
    if row is None:
        raise UnknownPrompt(f"no prompt {version}")
    return row


def get(tx: Transaction, version: str, now: Fingerprints | None = None) -> PromptOut:
    return _prompt_out(_row(tx, version), now)


def all_prompts(tx: Transaction, now: Fingerprints | None = None) -> list[PromptOut]:
    """Every version, newest first."""
    rows = tx.execute("SELECT * FROM prompts ORDER BY number DESC").fetchall()
    return [_prompt_out(row, now) for row in rows]


def active(tx: Transaction, now: Fingerprints | None = None) -> PromptOut:
    row = tx.one("SELECT * FROM prompts WHERE status = 'active'")
    if row is None:
        raise LookupError("the registry has not been seeded")
    return _prompt_out(row, now)


def active_prompt(tx: Transaction) -> ActivePrompt:
    current = active(tx)
    return ActivePrompt(
        version=current.version, text=current.text, holdout_score=current.holdout_score
    )


def ensure_seed(tx: Transaction, text: str, student_model: str, teacher_model: str) -> bool:
    """On first start: v1, the seed prompt, active. False when the registry already has prompts."""
    if tx.scalar("SELECT count(*) FROM prompts"):
        return False
    tx.execute(
        "INSERT INTO prompts (number, text, parent, source, status, created_at, student_model, "
        "teacher_model) VALUES (1, ?, NULL, 'seed', 'active', ?, ?, ?)",
        (text, tx.now, student_model, teacher_model),
    )
    return True


def create(
    tx: Transaction,
    text: str,
    *,
    parent: str | None,
    source: PromptSource,
    round_number: int | None = None,
    student_model: str | None = None,
    teacher_model: str | None = None,
) -> PromptOut:
    """Register a candidate; the parent must exist (lineage is never dangling)."""
    if parent is not None:
        parent = get(tx, parent).version
    number = int(tx.scalar("SELECT coalesce(max(number), 0) + 1 FROM prompts"))
    tx.execute(
        "INSERT INTO prompts (number, text, parent, source, status, round, created_at, "
        "student_model, teacher_model) VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?, ?)",
        (
            number,
            text,
            parent,
            source.value,
            round_number,
            tx.now,
            student_model,
            teacher_model,
        ),
    )
    return get(tx, version_name(number))


def record_scores(
    tx: Transaction,
    version: str,
    phase: ScoredPhase,
    by_method: Mapping[str, float | None],
    per_case: Sequence[CaseResult],
    *,
    fingerprint: str | None,
    cost: PromptCost | None,
    student_model: str,
) -> None:
    """Store one phase's results; the per-case breakdown of that split is replaced.

    Screening is a sample of the train cases: it replaces the train breakdown (so the user sees
    why a candidate stopped there) but sets no train score.
    """
    row = _row(tx, version)
    scores = json.loads(row["scores"])
    scores[phase] = dict(by_method)
    split = Split.HOLDOUT if phase == "holdout" else Split.TRAIN
    kept = [item for item in json.loads(row["per_case"]) if item["split"] != split.value]
    merged = kept + [result.model_dump(mode="json") for result in per_case]
    sets = ["scores = ?", "per_case = ?", "student_model = ?"]
    params: list[object] = [dumps(scores), dumps(merged), student_model]
    # Screening leaves no train score (it saw a sample), but marks the prompt as measured on
    # this suite, so scoring "everything stale" does not screen a loser again and again.
    score = None if phase == "screening" else by_method.get("score")
    column = "holdout" if phase == "holdout" else "train"
    sets += [f"{column}_score = ?", f"{column}_suite = ?"]
    params += [score, fingerprint]
    if cost is not None and phase != "holdout":
        sets.append("cost = ?")
        params.append(cost.model_dump_json())
    tx.execute(f"UPDATE prompts SET {', '.join(sets)} WHERE number = ?", (*params, row["number"]))


# --- Activation, promotion and rollback ----------------------------------------------------------


def _log(
    tx: Transaction,
    action: Literal["promote", "rollback"],
    version: str,
    previous: str | None,
    *,
    manual: bool,
    detail: str,
) -> None:
    tx.execute(
        "INSERT INTO prompt_log (at, action, version, previous, manual, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (tx.now, action, version, previous, int(manual), detail),
    )


def _activate(tx: Transaction, target: sqlite3.Row, reason: str) -> tuple[PromptOut, str | None]:
    """Make `target` the active prompt, retire the old one, announce it; (prompt, previous)."""
    old = tx.one("SELECT number FROM prompts WHERE status = 'active'")
    previous = None if old is None else version_name(old["number"])
    tx.execute("UPDATE prompts SET status = 'retired' WHERE status = 'active'")
    tx.execute("UPDATE prompts SET status = 'active' WHERE number = ?", (target["number"],))
    prompt = _prompt_out(_row(tx, version_name(target["number"])), None)
    event = PromptEvent(
        version=prompt.version,
        text=prompt.text,
        previous=previous,
        holdout_score=prompt.holdout_score,
        reason=reason,
    )
    tx.emit("prompt", event.model_dump(mode="json"))
    return prompt, previous


def promote(tx: Transaction, version: str, *, manual: bool, detail: str) -> PromptOut:
    """Make `version` active (logged, announced). Promoting the active prompt changes nothing."""
    target = _row(tx, version)
    if target["status"] == PromptStatus.ACTIVE:
        return _prompt_out(target, None)
    reason = "promoted manually" if manual else f"promoted by the gate: {detail}"
    prompt, previous = _activate(tx, target, reason)
    _log(tx, "promote", prompt.version, previous, manual=manual, detail=detail)
    return prompt


def rollback_target(tx: Transaction) -> str | None:
    """The prompt that was active before the current one was promoted (None: nothing to undo)."""
    stack: list[str] = []
    for row in tx.execute("SELECT action, version, previous FROM prompt_log ORDER BY seq"):
        if row["action"] == "promote":
            if not stack and row["previous"] is not None:
                stack.append(row["previous"])
            stack.append(row["version"])
        elif stack:
            stack.pop()
    return stack[-2] if len(stack) >= 2 else None


def rollback(tx: Transaction, *, detail: str = "rolled back manually") -> PromptOut:
    """Return to the previously active prompt (logged, announced)."""
    target_version = rollback_target(tx)
    if target_version is None:
        raise NothingToRollBack("there is no earlier active prompt to roll back to")
    prompt, previous = _activate(tx, _row(tx, target_version), "rolled back")
    _log(tx, "rollback", prompt.version, previous, manual=True, detail=detail)
    return prompt


def history(tx: Transaction, limit: int = 100) -> list[LogEntry]:
    """Changes of the active prompt, newest first."""
    rows = tx.execute("SELECT * FROM prompt_log ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
    return [
        LogEntry(
            at=datetime.fromtimestamp(row["at"], UTC),
            action=row["action"],
            version=row["version"],
            previous=row["previous"],
            manual=bool(row["manual"]),
            detail=row["detail"],
        )
        for row in rows
    ]


# --- The promotion gate --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateDecision:
    passed: bool
    reason: str


def gate(
    candidate_holdout: float | None,
    active_holdout: float | None,
    *,
    minimum: float,
    margin: float,
    noise: float | None = None,
    leaked: Sequence[str] = (),
) -> GateDecision:
    """Promote only on held-out evidence: at least `minimum`, and more than the active prompt's
    score by `margin` and by `noise` (a multiple of the standard error of the paired per-case
    differences), so that a lucky run on a small holdout set does not promote.

    Train scores play no part: a candidate ranked first on the train cases the teacher saw may
    simply have fitted them. Whatever the scores, a candidate whose answers let a
    prompt-injection case through silently (`leaked`: the cases whose expected flags it missed,
    on either split) is not promoted: resisting text in the frame is not traded for accuracy.
    """
    if candidate_holdout is None:
        return GateDecision(False, "no holdout score")
    if active_holdout is None:
        return GateDecision(False, "the active prompt has no holdout score to compare with")
    if candidate_holdout < minimum:
        return GateDecision(
            False, f"holdout {candidate_holdout:.3f} is below the minimum {minimum:.3f}"
        )
    gain = candidate_holdout - active_holdout
    required = max(margin, noise or 0.0)
    if gain < required:
        why = f"the margin {margin:.3f}" if required == margin else f"the noise {required:.3f}"
        return GateDecision(
            False,
            f"holdout {candidate_holdout:.3f} is {gain:+.3f} over the active prompt's "
            f"{active_holdout:.3f}, less than {why}",
        )
    if leaked:
        return GateDecision(
            False,
            f"answers let {len(leaked)} prompt-injection case(s) through silently "
            f"(expected flags missed): {', '.join(leaked)}",
        )
    return GateDecision(
        True,
        f"holdout {candidate_holdout:.3f} >= {minimum:.3f} and {gain:+.3f} over the active "
        f"prompt's {active_holdout:.3f} (needed {required:.3f})",
    )
