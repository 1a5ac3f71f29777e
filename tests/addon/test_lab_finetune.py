"""Curated examples and fine-tuning: the readiness rule, accepting an example into the suite,
and the JSONL export in chat format with images."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
import json
from pathlib import Path

import pytest

from tests.addon.conftest import jpeg, review_body
from vision_tutor_teacher.lab import examples, finetune, registry, suite
from vision_tutor_teacher.lab.models import AcceptExample, Split
from vision_tutor_teacher.models import Agreement, Observation, ReviewRequest, Verdict
from vision_tutor_teacher.reviews.queue import ClaimedReview, Idle, QueuePolicy, ReviewQueue
from vision_tutor_teacher.storage.database import Database, Transaction

FRAME = jpeg("porch_package", width=64)


def test_readiness_needs_enough_examples_first() -> None:
    verdict = finetune.readiness(99, [0.0, 0.0, 0.0], min_examples=100, epsilon=0.01, rounds=3)
    assert not verdict.ready
    assert verdict.reason.startswith("99 curated examples; fine-tuning needs at least 100")


def test_readiness_needs_enough_rounds_to_see_a_plateau() -> None:
    verdict = finetune.readiness(150, [0.0, 0.0], min_examples=100, epsilon=0.01, rounds=3)
    assert not verdict.ready
    assert "only 2 synthesis rounds so far; 3 are needed" in verdict.reason


def test_readiness_waits_while_prompting_still_helps() -> None:
    # The newest three rounds count; one of them gained 0.04.
    verdict = finetune.readiness(
        150, [0.0, 0.04, 0.005, 0.3], min_examples=100, epsilon=0.01, rounds=3
    )
    assert not verdict.ready
    assert "prompting still helps" in verdict.reason
    assert "0.040" in verdict.reason


def test_readiness_says_fine_tuning_is_justified_on_a_plateau() -> None:
    # An old big gain does not matter: the last three rounds each gained less than epsilon.
    verdict = finetune.readiness(
        100, [0.0, 0.009, 0.002, 0.3], min_examples=100, epsilon=0.01, rounds=3
    )
    assert verdict.ready
    assert verdict.reason.startswith("prompting has plateaued; fine-tuning is justified")


def verdict_for(claimed: ClaimedReview, *, flags: list[str], agrees: bool) -> Verdict:
    return Verdict(
        review_id=claimed.id,
        idempotency_key=claimed.idempotency_key,
        camera=claimed.camera,
        reason=claimed.reason,
        verdict=Observation(
            summary="A person at the front door holding a knife.",
            observations=["a person", "front door", "a knife", "a person in a dark coat"],
            safety_flags=flags,
            confidence=0.91,
        ),
        agrees_with_student=agrees,
        agreement=Agreement(flags=agrees, summary_similarity=0.5, basis="flags_and_summary"),
        teacher_model="gemma4:26b",
        latency_ms=800.0,
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "data")
    await database.open()

    def seed(tx: Transaction) -> None:
        registry.ensure_seed(tx, registry.SEED_PROMPT, "gemma4:e2b", "gemma4:26b")
        suite.seed(tx, suite.load_default_suite(), 0.3)

    await database.run(seed)
    try:
        yield database
    finally:
        await database.close()


async def reviewed(db: Database, count: int) -> list[str]:
    """`count` reviews with verdicts (the first one disagreeing), oldest first."""
    queue = ReviewQueue(db, QueuePolicy(limit=100, batch_window_s=0.0))
    ids = []
    for index in range(count):
        body = review_body(f"key-{index}", camera=f"camera.cam{index}", reason="safety")
        meta = ReviewRequest.model_validate_json(json.dumps(body))
        await queue.submit(meta, FRAME)
        claimed = await queue.claim()
        assert not isinstance(claimed, Idle)
        await queue.complete(claimed, verdict_for(claimed, flags=["weapon"], agrees=index > 0))
        ids.append(claimed.id)
    return ids


async def test_curated_examples_are_verdicts_with_their_frames(db: Database) -> None:
    ids = await reviewed(db, 3)
    listing = await db.run(lambda tx: examples.list_examples(tx, 2))
    assert listing.total == 3
    assert [example.id for example in listing.examples] == ids[:0:-1]  # newest first, limited
    example = listing.examples[0]
    assert example.verdict.safety_flags == ["weapon"]
    assert example.frame_url == f"/api/v1/reviews/{example.id}/frame"
    assert example.case_id is None
    assert await db.run(finetune.example_count) == 3


async def test_accepting_an_example_makes_a_case_with_the_teachers_reference(db: Database) -> None:
    ids = await reviewed(db, 2)
    share = 0.3
    case_id = await db.run(lambda tx: examples.accept(tx, ids[0], AcceptExample(), share))
    case = await db.run(lambda tx: suite.get_case(tx, case_id))
    assert case is not None
    assert case.kind == "image"
    assert case.source == "example"
    assert case.review_id == ids[0]
    assert case.expected_flags == ["weapon"]
    assert case.weight == 1.0
    assert case.expected_keywords == [["person"], ["front door"], ["knife"]]  # short ones only
    assert case.reference is not None
    assert case.reference.summary == "A person at the front door holding a knife."
    assert await db.run(lambda tx: suite.case_image(tx, case_id)) == FRAME
    listed = await db.run(lambda tx: examples.list_examples(tx, 10))
    assert {e.id: e.case_id for e in listed.examples}[ids[0]] == case_id

    with pytest.raises(suite.DuplicateCase, match="already the validation case"):
        await db.run(lambda tx: examples.accept(tx, ids[0], AcceptExample(name="x"), share))
    overrides = AcceptExample(
        name="porch knife", expected_keywords=["knife|blade"], split=Split.HOLDOUT, weight=0.7
    )
    other = await db.run(lambda tx: examples.accept(tx, ids[1], overrides, share))
    case = await db.run(lambda tx: suite.get_case(tx, other))
    assert case is not None
    assert (case.name, case.expected_keywords, case.split, case.weight) == (
        "porch knife",
        [["knife", "blade"]],
        "holdout",
        0.7,
    )
    with pytest.raises(examples.UnknownExample):
        await db.run(lambda tx: examples.accept(tx, "no-such-review", AcceptExample(), share))


async def test_the_jsonl_export_is_chat_format_with_images(db: Database) -> None:
    await reviewed(db, 5)
    system = await db.run(registry.active_prompt)
    lines, after = await db.run(
        lambda tx: finetune.export_page(tx, "", 3, system.text, "Analyse this camera frame.")
    )
    assert len(lines) == 3
    assert after is not None
    rest, done = await db.run(
        lambda tx: finetune.export_page(tx, after, 3, system.text, "Analyse this camera frame.")
    )
    assert len(rest) == 2
    assert done is None

    record = json.loads(lines[0])
    assert set(record) == {"messages"}
    system_turn, user_turn, assistant_turn = record["messages"]
    assert system_turn == {"role": "system", "content": [{"type": "text", "text": system.text}]}
    assert user_turn["role"] == "user"
    image, text = user_turn["content"]
    assert text == {"type": "text", "text": "Analyse this camera frame."}
    assert image["type"] == "image"
    prefix = "data:image/jpeg;base64,"
    assert image["image"].startswith(prefix)
    assert base64.b64decode(image["image"][len(prefix) :]) == FRAME
    assert assistant_turn["role"] == "assistant"
    answer = json.loads(assistant_turn["content"][0]["text"])
    assert answer == {
        "summary": "A person at the front door holding a knife.",
        "observations": ["a person", "front door", "a knife", "a person in a dark coat"],
        "safety_flags": ["weapon"],
        "confidence": 0.91,
    }
    assert all("\n" not in line for line in lines + rest)


async def test_the_teacher_is_shown_disagreements_but_never_holdout_cases(db: Database) -> None:
    from vision_tutor_teacher.lab.candidates import collect_failures
    from vision_tutor_teacher.lab.models import CaseResult

    ids = await reviewed(db, 3)  # the first one disagrees with the student
    holdout_case = await db.run(
        lambda tx: examples.accept(tx, ids[0], AcceptExample(split=Split.HOLDOUT), 0.3)
    )
    assert holdout_case
    active = await db.run(registry.active)
    train_case = (await db.run(lambda tx: suite.cases(tx, Split.TRAIN)))[0]
    holdout_text = (await db.run(lambda tx: suite.cases(tx, Split.HOLDOUT)))[0]
    missed = CaseResult(
        case_id=train_case.id,
        name=train_case.name,
        split=Split.TRAIN,
        weight=1.0,
        score=0.2,
        methods={},
        summary="A calm room.",
        flags=[],
        latency_ms=1.0,
        answer_chars=10,
        error=None,
    )
    failed = missed.model_copy(update={"summary": None, "error": "timeout", "score": 0.0})
    hidden = missed.model_copy(
        update={"case_id": holdout_text.id, "name": holdout_text.name, "split": Split.HOLDOUT}
    )
    active = active.model_copy(update={"per_case": [missed, failed, hidden]})

    failures = await db.run(lambda tx: collect_failures(tx, active, set()))
    wheres = [f.where for f in failures]
    assert wheres[:2] == [f"case {train_case.name!r}", f"case {train_case.name!r}"]
    assert failures[0].said.startswith("nothing usable (timeout)")
    assert failures[1].said == "'A calm room.' with flags none"
    assert f"case {holdout_text.name!r}" not in wheres
    assert wheres[2:] == ["camera camera.cam0 (safety)"]  # the disagreement
    assert "weapon" in failures[2].expected

    hiding = await db.run(lambda tx: collect_failures(tx, active, {ids[0]}))
    assert all(not f.where.startswith("camera") for f in hiding)
