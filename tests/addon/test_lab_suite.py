"""The task spec and the validation suite: the stable split, what a case accepts, the default
suite, import (all or nothing) and export, and what makes a score stale."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
import json
from pathlib import Path

from hypothesis import given, strategies as st
from pydantic import ValidationError
import pytest

from tests.addon.conftest import jpeg
from vision_tutor_teacher.lab import suite
from vision_tutor_teacher.lab.models import (
    Split,
    SuiteDocument,
    TaskSpec,
    ValidationCaseIn,
    keyword_groups,
)
from vision_tutor_teacher.storage.database import Database, Transaction

JPEG = jpeg("kitchen_empty_day", width=64)


def text_case(name: str, text: str, **fields: object) -> ValidationCaseIn:
    return ValidationCaseIn.model_validate({"name": name, "text": text, **fields})


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "data")
    await database.open()
    default = suite.load_default_suite()
    await database.run(lambda tx: suite.seed(tx, default, 0.3))
    try:
        yield database
    finally:
        await database.close()


# --- The split -----------------------------------------------------------------------------------


def test_the_split_is_stable_and_follows_the_share() -> None:
    cases = [text_case(f"c{i}", f"A scene number {i} with a chair") for i in range(2000)]
    splits = [suite.split_by_hash(suite.content_hash(case), 0.3) for case in cases]
    holdout = splits.count(Split.HOLDOUT) / len(splits)
    assert 0.26 < holdout < 0.34
    again = [suite.split_by_hash(suite.content_hash(case), 0.3) for case in cases]
    assert again == splits
    # The content decides, not the name or the spacing.
    a = text_case("one name", "A  dog on   a rug")
    b = text_case("another", "a dog on a rug")
    assert suite.content_hash(a) == suite.content_hash(b)
    image = ValidationCaseIn(name="frame", image=JPEG)
    assert suite.content_hash(image) != suite.content_hash(text_case("t", "x"))


@given(st.text(min_size=1, max_size=40), st.floats(0.01, 0.99))
def test_a_larger_share_never_moves_a_case_out_of_the_holdout(text: str, share: float) -> None:
    digest = suite.content_hash(text_case("n", text + "x"))
    if suite.split_by_hash(digest, share) is Split.HOLDOUT:
        assert suite.split_by_hash(digest, min(0.99, share + 0.1)) is Split.HOLDOUT


# --- What a case accepts -------------------------------------------------------------------------


def test_keywords_come_as_synonym_groups_or_pipes() -> None:
    assert keyword_groups(["Mug | cup", ["Laptop", "computer", ""], "", "  "]) == [
        ["mug", "cup"],
        ["laptop", "computer"],
    ]
    case = text_case(
        "desk", "A desk", expected_keywords=["mug|cup"], expected_flags=[" Fire ", "fire"]
    )
    assert case.groups == [["mug", "cup"]]
    assert case.expected_flags == ["fire"]
    assert case.effective_weight == 1.0  # a safety case weighs more
    assert text_case("d", "A desk").effective_weight == 0.5
    assert text_case("d", "A desk", weight=0.7).effective_weight == 0.7


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "a", "image": None}, None),
        ({}, "exactly one of image and text"),
        ({"text": "   "}, "exactly one of image and text"),
        ({"text": "a", "image": base64.b64encode(JPEG).decode()}, "exactly one of image and text"),
        ({"image": "aGVsbG8="}, "not a JPEG"),
        ({"image": "%%%"}, "base64"),
        ({"text": "a", "weight": 0.2}, "greater than or equal to 0.5"),
        ({"text": "a", "weight": 1.5}, "less than or equal to 1"),
        ({"text": "a", "split": "test"}, "'train' or 'holdout'"),
        ({"text": "a", "expected_keywords": ["x" * 101]}, "longer than 100"),
        ({"text": "a", "colour": "red"}, "Extra inputs"),
    ],
)
def test_a_case_is_validated(fields: dict[str, object], message: str | None) -> None:
    raw = json.dumps({"name": "case", **fields})
    if message is None:
        ValidationCaseIn.model_validate_json(raw)
        return
    with pytest.raises(ValidationError, match=message):
        ValidationCaseIn.model_validate_json(raw)


def test_a_suite_document_refuses_duplicate_names_and_bad_task_schemas() -> None:
    with pytest.raises(ValidationError, match=r"cases.1.name: 'a' appears twice"):
        SuiteDocument.model_validate(
            {"cases": [{"name": "a", "text": "x"}, {"name": "a", "text": "y"}]}
        )
    with pytest.raises(ValidationError, match='"type": "object"'):
        TaskSpec.model_validate({"text": "t", "schema": {"type": "array"}})


# --- The default suite ---------------------------------------------------------------------------


def test_the_default_suite_ships_text_cases_with_weights_and_forbidden_words() -> None:
    default = suite.load_default_suite()
    assert default.task is not None
    assert default.task.output_schema["required"] == [
        "summary",
        "observations",
        "safety_flags",
        "confidence",
    ]
    texts = {case.text for case in default.cases}
    assert "A person is holding a lighter with a visible flame" in texts
    assert all(case.image is None for case in default.cases)
    hazards = [case for case in default.cases if case.expected_flags]
    benign = [case for case in default.cases if not case.expected_flags]
    assert len(hazards) >= 10
    assert len(benign) >= 10
    assert all(case.effective_weight == 1.0 for case in hazards)
    assert all(case.effective_weight == 0.5 for case in benign)
    desk = next(case for case in benign if "desk" in (case.text or ""))
    assert any("fire" in group for group in desk.forbidden_groups)  # a benign desk: no fire


async def test_seeding_stores_the_default_suite_once(db: Database) -> None:
    listing = await db.run(suite.list_cases)
    default = suite.load_default_suite()
    assert len(listing.cases) == len(default.cases)
    assert listing.train > 0
    assert listing.holdout > 0
    assert {case.source for case in listing.cases} == {"default"}
    first = listing.cases[0]
    await db.run(lambda tx: suite.delete_case(tx, first.id))
    assert await db.run(lambda tx: suite.seed(tx, default, 0.3)) is False  # never re-added
    assert len((await db.run(suite.list_cases)).cases) == len(default.cases) - 1
    with pytest.raises(suite.UnknownCase):
        await db.run(lambda tx: suite.delete_case(tx, first.id))


# --- Cases, import, export -----------------------------------------------------------------------


async def test_a_pinned_split_wins_and_names_are_unique(db: Database) -> None:
    case = ValidationCaseIn(name="frame", image=JPEG, split=Split.HOLDOUT, expected_flags=["smoke"])

    def add(tx: Transaction) -> str:
        case_id, replaced = suite.insert_case(tx, case, "manual", 0.0)
        assert not replaced
        return case_id

    case_id = await db.run(add)
    stored = await db.run(lambda tx: suite.get_case(tx, case_id))
    assert stored is not None
    assert (stored.kind, stored.split, stored.split_pinned, stored.weight) == (
        "image",
        "holdout",
        True,
        1.0,
    )
    assert stored.image_url == f"/api/v1/validation/cases/{case_id}/image"
    assert await db.run(lambda tx: suite.case_image(tx, case_id)) == JPEG
    with pytest.raises(suite.DuplicateCase, match="'frame' already exists"):
        await db.run(lambda tx: suite.insert_case(tx, case, "manual", 0.3))


async def test_import_is_all_or_nothing_and_export_round_trips(db: Database) -> None:
    before = await db.run(suite.list_cases)
    document = SuiteDocument(
        cases=[
            text_case("new one", "A bicycle in the garage"),
            ValidationCaseIn(name="img", image=JPEG),
        ]
    )
    result = await db.run(lambda tx: suite.import_suite(tx, document, 0.3))
    assert (result.added, result.replaced, result.cases) == (2, 0, len(before.cases) + 2)
    again = await db.run(lambda tx: suite.import_suite(tx, document, 0.3))
    assert (again.added, again.replaced, again.cases) == (0, 2, result.cases)

    def failing(tx: Transaction) -> None:
        suite.import_suite(tx, SuiteDocument(cases=[text_case("third", "A boat")]), 0.3)
        raise RuntimeError("something broke half way")

    with pytest.raises(RuntimeError):
        await db.run(failing)
    names = {case.name for case in (await db.run(suite.list_cases)).cases}
    assert "third" not in names  # the transaction rolled back as a whole

    exported = await db.run(suite.export_suite)
    assert len(exported.cases) == result.cases
    round_trip = SuiteDocument.model_validate_json(exported.model_dump_json(by_alias=True))
    assert round_trip == exported
    image = next(case for case in round_trip.cases if case.name == "img")
    assert image.image == JPEG
    assert image.split is not None  # exported pinned, so it lands on the same side


async def test_a_new_task_spec_drops_cached_references_but_not_verdicts(db: Database) -> None:
    from vision_tutor_teacher.models import Observation

    reference = Observation(summary="A desk.", safety_flags=[], confidence=0.9)
    listing = await db.run(suite.list_cases)
    case_id = listing.cases[0].id
    await db.run(lambda tx: suite.set_reference(tx, case_id, reference, "gemma4:26b"))
    assert (await db.run(lambda tx: suite.get_case(tx, case_id))).reference == reference  # type: ignore[union-attr]
    spec = (await db.run(suite.task_spec)).model_copy(update={"text": "A new task."})
    await db.run(lambda tx: suite.set_task_spec(tx, spec))
    assert (await db.run(suite.task_spec)).text == "A new task."
    assert (await db.run(lambda tx: suite.get_case(tx, case_id))).reference is None  # type: ignore[union-attr]


async def test_fingerprints_change_with_the_cases_the_task_and_the_judge(db: Database) -> None:
    cases = await db.run(suite.cases)
    task = await db.run(suite.task_spec)
    base = suite.fingerprint(cases, task=task, judge=False)
    assert suite.fingerprint(list(reversed(cases)), task=task, judge=False) == base
    assert suite.fingerprint(cases[1:], task=task, judge=False) != base
    assert suite.fingerprint(cases, task=task, judge=True) != base
    other = task.model_copy(update={"user_prompt": "Describe."})
    assert suite.fingerprint(cases, task=other, judge=False) != base
    train, holdout = suite.split_counts(cases)
    assert train + holdout == len(cases)
    assert len(await db.run(lambda tx: suite.cases(tx, Split.HOLDOUT))) == holdout


def test_the_default_suite_is_installed_with_the_package() -> None:
    import tomllib

    from tests.addon.conftest import ADDON

    project = tomllib.loads((ADDON / "pyproject.toml").read_text())
    package_data = project["tool"]["setuptools"]["package-data"]["vision_tutor_teacher"]
    assert "data/*.json" in package_data
    assert (ADDON / "vision_tutor_teacher" / "data" / "default_suite.json").is_file()
