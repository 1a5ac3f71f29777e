"""The task spec and the validation suite: cases, their stable train/holdout split, import/export.

A case is a frame (JPEG) or a text description, with expected keywords (groups of synonyms),
forbidden keywords, expected safety flags and a weight. The split is assigned by a hash of the
case's content, so the same frame or description always lands on the same side, whoever adds it
and however often it is re-imported; a user may pin a case to a side instead. The holdout side
is never shown to the teacher: only the promotion gate scores on it.

The add-on ships a default task spec and a default suite of text cases as data
(``data/default_suite.json``); image cases come from the user (a frame saved from a teacher
review, a camera frame the integration captures, or an imported suite). Everything is stored in
the database (tables ``lab_settings`` and ``validation_cases``); the functions taking a
`Transaction` run on the database thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
import hashlib
from importlib import resources
import json
import sqlite3
from typing import Final, Literal
import uuid

from vision_tutor_teacher.models import Observation
from vision_tutor_teacher.storage.database import Transaction, dumps

from .models import (
    CaseList,
    ImportResult,
    KeywordGroups,
    Split,
    SuiteDocument,
    TaskSpec,
    ValidationCaseIn,
    ValidationCaseOut,
)

DEFAULT_HOLDOUT_SHARE: Final = 0.3
TASK_KEY: Final = "task_spec"
SEEDED_KEY: Final = "suite_seeded"

type CaseSource = Literal["default", "manual", "import", "example"]


class DuplicateCase(Exception):
    """A case with this name already exists."""


class UnknownCase(Exception):
    """No case with this id."""


def load_default_suite() -> SuiteDocument:
    """The suite shipped with the add-on (blocking read of package data: call it off the loop)."""
    text = (
        resources.files("vision_tutor_teacher")
        .joinpath("data/default_suite.json")
        .read_text("utf-8")
    )
    return SuiteDocument.model_validate_json(text)


def content_hash(case: ValidationCaseIn) -> str:
    """What the split hashes: the frame's bytes, or the description with spacing normalised."""
    if case.image is not None:
        return hashlib.sha256(b"image\0" + case.image).hexdigest()
    text = " ".join((case.text or "").lower().split())
    return hashlib.sha256(b"text\0" + text.encode()).hexdigest()


def split_by_hash(digest: str, holdout_share: float) -> Split:
    """Stable: the first 32 bits of the content hash as a fraction, against the share."""
    return Split.HOLDOUT if int(digest[:8], 16) / 2**32 < holdout_share else Split.TRAIN


@dataclass(frozen=True, slots=True)
class Case:
    """A case as the scoring reads it."""

    id: str
    name: str
    split: Split
    weight: float
    text: str | None
    image: bytes | None
    expected_keywords: KeywordGroups
    forbidden_keywords: KeywordGroups
    expected_flags: tuple[str, ...]
    reference: Observation | None
    reference_model: str | None
    review_id: str | None
    content_hash: str
    injection: bool = False

    @property
    def flagged(self) -> bool:
        return bool(self.expected_flags)


# --- The task spec -------------------------------------------------------------------------------


def task_spec(tx: Transaction) -> TaskSpec:
    raw = tx.scalar("SELECT value FROM lab_settings WHERE name = ?", (TASK_KEY,))
    if raw is None:
        raise LookupError("the lab has not been seeded")
    return TaskSpec.model_validate_json(raw)


def set_task_spec(tx: Transaction, spec: TaskSpec) -> TaskSpec:
    """Replace the task spec; references were written for the old one, so they are dropped."""
    tx.execute(
        "INSERT INTO lab_settings (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (TASK_KEY, spec.model_dump_json(by_alias=True)),
    )
    tx.execute(
        "UPDATE validation_cases SET reference = NULL, reference_model = NULL "
        "WHERE review_id IS NULL"
    )
    return spec


def seed(tx: Transaction, default: SuiteDocument, holdout_share: float) -> bool:
    """On first start: the default task spec and cases. Never again, even if they are deleted."""
    if tx.scalar("SELECT value FROM lab_settings WHERE name = ?", (SEEDED_KEY,)) is not None:
        return False
    if default.task is not None:
        set_task_spec(tx, default.task)
    for case in default.cases:
        insert_case(tx, case, "default", holdout_share)
    tx.execute("INSERT INTO lab_settings (name, value) VALUES (?, '1')", (SEEDED_KEY,))
    return True


# --- Cases ---------------------------------------------------------------------------------------


def insert_case(
    tx: Transaction,
    case: ValidationCaseIn,
    source: CaseSource,
    holdout_share: float,
    *,
    review_id: str | None = None,
    reference: Observation | None = None,
    reference_model: str | None = None,
    replace: bool = False,
) -> tuple[str, bool]:
    """Store a case; its id and whether it replaced one of the same name.

    Raises DuplicateCase when the name exists and `replace` is false.
    """
    existing = tx.one("SELECT id FROM validation_cases WHERE name = ?", (case.name,))
    if existing is not None:
        if not replace:
            raise DuplicateCase(f"a validation case named {case.name!r} already exists")
        tx.execute("DELETE FROM validation_cases WHERE id = ?", (existing["id"],))
    digest = content_hash(case)
    split = case.split or split_by_hash(digest, holdout_share)
    case_id = str(uuid.uuid7())
    tx.execute(
        "INSERT INTO validation_cases (id, name, text, image, content_hash, expected_keywords, "
        "forbidden_keywords, expected_flags, weight, split, split_pinned, source, review_id, "
        "reference, reference_model, created_at, injection) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            case_id,
            case.name,
            case.text.strip() if case.text is not None else None,
            case.image,
            digest,
            dumps(case.groups),
            dumps(case.forbidden_groups),
            dumps(case.expected_flags),
            case.effective_weight,
            split.value,
            int(case.split is not None),
            source,
            review_id,
            None if reference is None else reference.model_dump_json(),
            reference_model,
            tx.now,
            int(case.injection),
        ),
    )
    return case_id, existing is not None


def _case(row: sqlite3.Row) -> Case:
    reference = row["reference"]
    image = row["image"]
    return Case(
        id=row["id"],
        name=row["name"],
        split=Split(row["split"]),
        weight=row["weight"],
        text=row["text"],
        image=None if image is None else bytes(image),
        expected_keywords=json.loads(row["expected_keywords"]),
        forbidden_keywords=json.loads(row["forbidden_keywords"]),
        expected_flags=tuple(json.loads(row["expected_flags"])),
        reference=None if reference is None else Observation.model_validate_json(reference),
        reference_model=row["reference_model"],
        review_id=row["review_id"],
        content_hash=row["content_hash"],
        injection=bool(row["injection"]),
    )


def cases(tx: Transaction, split: Split | None = None) -> list[Case]:
    """The cases (of one split), oldest first."""
    if split is None:
        rows = tx.execute("SELECT * FROM validation_cases ORDER BY created_at, id").fetchall()
    else:
        rows = tx.execute(
            "SELECT * FROM validation_cases WHERE split = ? ORDER BY created_at, id",
            (split.value,),
        ).fetchall()
    return [_case(row) for row in rows]


def case_out(row: sqlite3.Row) -> ValidationCaseOut:
    reference = row["reference"]
    return ValidationCaseOut(
        id=row["id"],
        name=row["name"],
        kind="image" if row["image"] is not None else "text",
        text=row["text"],
        image_url=(
            f"/api/v1/validation/cases/{row['id']}/image" if row["image"] is not None else None
        ),
        expected_keywords=json.loads(row["expected_keywords"]),
        forbidden_keywords=json.loads(row["forbidden_keywords"]),
        expected_flags=json.loads(row["expected_flags"]),
        weight=row["weight"],
        split=Split(row["split"]),
        split_pinned=bool(row["split_pinned"]),
        injection=bool(row["injection"]),
        source=row["source"],
        review_id=row["review_id"],
        reference=None if reference is None else Observation.model_validate_json(reference),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
    )


def get_case(tx: Transaction, case_id: str) -> ValidationCaseOut | None:
    row = tx.one("SELECT * FROM validation_cases WHERE id = ?", (case_id,))
    return None if row is None else case_out(row)


def list_cases(tx: Transaction) -> CaseList:
    rows = tx.execute("SELECT * FROM validation_cases ORDER BY created_at, id").fetchall()
    out = [case_out(row) for row in rows]
    holdout = sum(1 for case in out if case.split is Split.HOLDOUT)
    return CaseList(cases=out, train=len(out) - holdout, holdout=holdout)


def case_image(tx: Transaction, case_id: str) -> bytes | None:
    value = tx.scalar("SELECT image FROM validation_cases WHERE id = ?", (case_id,))
    return None if value is None else bytes(value)


def delete_case(tx: Transaction, case_id: str) -> None:
    if tx.execute("DELETE FROM validation_cases WHERE id = ?", (case_id,)).rowcount == 0:
        raise UnknownCase(f"no validation case {case_id}")


def set_reference(tx: Transaction, case_id: str, reference: Observation, model: str) -> None:
    tx.execute(
        "UPDATE validation_cases SET reference = ?, reference_model = ? WHERE id = ?",
        (reference.model_dump_json(), model, case_id),
    )


def import_suite(tx: Transaction, suite: SuiteDocument, holdout_share: float) -> ImportResult:
    """Add a whole suite in this one transaction: it is validated before, so it all goes in.

    A case whose name exists replaces the old one, so re-importing an export is idempotent.
    """
    if suite.task is not None:
        set_task_spec(tx, suite.task)
    replaced = 0
    for case in suite.cases:
        _, was_replaced = insert_case(tx, case, "import", holdout_share, replace=True)
        replaced += was_replaced
    total = int(tx.scalar("SELECT count(*) FROM validation_cases"))
    return ImportResult(added=len(suite.cases) - replaced, replaced=replaced, cases=total)


def export_suite(tx: Transaction) -> SuiteDocument:
    """The task spec and every case, in the form `import_suite` takes (splits pinned)."""
    documents = [
        ValidationCaseIn(
            name=case.name,
            image=case.image,
            text=case.text,
            expected_keywords=list(case.expected_keywords),
            forbidden_keywords=list(case.forbidden_keywords),
            expected_flags=list(case.expected_flags),
            weight=case.weight,
            split=case.split,
            injection=case.injection,
        )
        for case in cases(tx)
    ]
    return SuiteDocument(task=task_spec(tx), cases=documents)


def fingerprint(split_cases: Iterable[Case], *, task: TaskSpec, judge: bool) -> str:
    """What a score on these cases depends on: change any of it and old scores are stale.

    The task spec counts too: its schema and user message shape the student's answers.
    """
    digest = hashlib.sha256(b"judge" if judge else b"no-judge")
    digest.update(task.model_dump_json(by_alias=True).encode())
    # By content, not by id: the same cases imported again are the same suite.
    for case in sorted(split_cases, key=lambda c: (c.content_hash, c.name)):
        digest.update(
            dumps(
                [
                    case.name,
                    case.content_hash,
                    case.weight,
                    case.expected_keywords,
                    case.forbidden_keywords,
                    list(case.expected_flags),
                ]
            ).encode()
        )
    return digest.hexdigest()[:16]


def split_counts(all_cases: Sequence[Case]) -> tuple[int, int]:
    holdout = sum(1 for case in all_cases if case.split is Split.HOLDOUT)
    return len(all_cases) - holdout, holdout
