"""The prompt registry on a real database: the seed, lineage, scores, the promotion gate,
promotion and rollback (logged, announced), and the one-active-prompt rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from pathlib import Path
import sqlite3

import pytest

from vision_tutor_teacher.lab import registry
from vision_tutor_teacher.lab.models import CaseResult, PromptCost, PromptSource, Split
from vision_tutor_teacher.lab.registry import Fingerprints, gate
from vision_tutor_teacher.storage.database import Database, Transaction


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "data")
    await database.open()

    def seed(tx: Transaction) -> None:
        registry.ensure_seed(tx, registry.SEED_PROMPT, "gemma4:e2b", "gemma4:26b")

    await database.run(seed)
    try:
        yield database
    finally:
        await database.close()


def prompt_events(tx: Transaction) -> list[dict[str, object]]:
    rows = tx.execute("SELECT data FROM events WHERE type = 'prompt' ORDER BY seq").fetchall()
    return [json.loads(row[0]) for row in rows]


def result(case_id: str, split: Split, score: float) -> CaseResult:
    return CaseResult(
        case_id=case_id,
        name=case_id,
        split=split,
        weight=1.0,
        score=score,
        methods={"safety": score},
        summary="s",
        flags=[],
        latency_ms=5.0,
        answer_chars=10,
        error=None,
    )


# --- The gate ------------------------------------------------------------------------------------


def test_the_gate_wants_the_minimum_and_a_margin_over_the_active_prompt() -> None:
    assert gate(0.90, 0.85, minimum=0.85, margin=0.02).passed
    assert not gate(0.84, 0.70, minimum=0.85, margin=0.02).passed  # below the minimum
    below = gate(0.86, 0.85, minimum=0.85, margin=0.02)
    assert not below.passed
    assert "less than the margin 0.020" in below.reason
    noisy = gate(0.90, 0.85, minimum=0.85, margin=0.02, noise=0.06)
    assert not noisy.passed
    assert "less than the noise 0.060" in noisy.reason
    assert gate(0.92, 0.85, minimum=0.85, margin=0.02, noise=0.06).passed
    assert not gate(None, 0.85, minimum=0.5, margin=0.0).passed
    assert not gate(0.99, None, minimum=0.5, margin=0.0).passed


def test_no_promotion_when_holdout_does_not_improve_even_if_train_does() -> None:
    # The candidate fitted the train cases the teacher saw (0.99 against 0.80) but holds out no
    # better than the active prompt: train scores are not an argument for the gate at all.
    candidate_train, candidate_holdout = 0.99, 0.86
    active_train, active_holdout = 0.80, 0.86
    assert candidate_train > active_train
    decision = gate(candidate_holdout, active_holdout, minimum=0.5, margin=0.02)
    assert not decision.passed
    assert "+0.000" in decision.reason


# --- Seed, lineage and scores --------------------------------------------------------------------


async def test_the_seed_is_v1_active_and_seeding_happens_once(db: Database) -> None:
    active = await db.run(registry.active_prompt)
    assert (active.version, active.text, active.holdout_score) == ("v1", registry.SEED_PROMPT, None)
    again = await db.run(lambda tx: registry.ensure_seed(tx, "other", "s", "t"))
    assert again is False
    prompts = await db.run(registry.all_prompts)
    assert [(p.version, p.source, p.status) for p in prompts] == [("v1", "seed", "active")]


async def test_candidates_record_their_lineage(db: Database) -> None:
    def create(tx: Transaction) -> list[registry.PromptOut]:
        first = registry.create(
            tx, "child", parent="v1", source=PromptSource.TEACHER, round_number=1
        )
        second = registry.create(tx, "grandchild", parent=first.version, source=PromptSource.MANUAL)
        orphan = registry.create(tx, "no parent", parent=None, source=PromptSource.MANUAL)
        return [first, second, orphan]

    first, second, orphan = await db.run(create)
    assert (first.version, first.parent, first.round, first.status) == ("v2", "v1", 1, "candidate")
    assert (second.version, second.parent, second.source) == ("v3", "v2", "manual")
    assert orphan.parent is None
    with pytest.raises(registry.UnknownPrompt, match="no prompt v99"):
        await db.run(lambda tx: registry.create(tx, "x", parent="v99", source=PromptSource.MANUAL))
    with pytest.raises(registry.UnknownPrompt):
        await db.run(lambda tx: registry.get(tx, "latest"))
    assert registry.parse_version("v12") == 12
    assert registry.parse_version("v0") is None
    assert registry.parse_version("12") is None


async def test_scores_are_stored_per_split_with_their_suite(db: Database) -> None:
    now = Fingerprints(train="t1", holdout="h1")

    def record(tx: Transaction) -> registry.PromptOut:
        cost = PromptCost(latency_ms_mean=5.0, latency_ms_p95=6.0, answer_chars_mean=10, calls=2)
        for phase, split, value in (
            ("screening", Split.TRAIN, 0.5),
            ("train", Split.TRAIN, 0.8),
            ("holdout", Split.HOLDOUT, 0.7),
        ):
            registry.record_scores(
                tx,
                "v1",
                phase,  # type: ignore[arg-type]
                {"score": value, "safety": value},
                [result("a", split, value), result("b", split, value)],
                fingerprint="t1" if split is Split.TRAIN else "h1",
                cost=cost,
                student_model="gemma4:e2b",
            )
        return registry.get(tx, "v1", now)

    prompt = await db.run(record)
    assert (prompt.train_score, prompt.holdout_score) == (0.8, 0.7)
    assert prompt.scores_by_method["screening"]["score"] == 0.5
    assert prompt.scores_by_method["holdout"]["safety"] == 0.7
    # Each split's breakdown replaced by its latest run: two train and two holdout cases.
    assert sorted((r.case_id, r.split, r.score) for r in prompt.per_case) == [
        ("a", "holdout", 0.7),
        ("a", "train", 0.8),
        ("b", "holdout", 0.7),
        ("b", "train", 0.8),
    ]
    assert prompt.cost is not None
    assert prompt.current == {"train": True, "holdout": True}
    stale = await db.run(lambda tx: registry.get(tx, "v1", Fingerprints("t2", "h1")))
    assert stale.current == {"train": False, "holdout": True}


# --- Promotion and rollback ----------------------------------------------------------------------


async def test_promotion_retires_the_old_prompt_logs_and_announces(db: Database) -> None:
    def run(tx: Transaction) -> tuple[registry.PromptOut, list[dict[str, object]]]:
        registry.create(tx, "better", parent="v1", source=PromptSource.TEACHER)
        promoted = registry.promote(tx, "v2", manual=False, detail="holdout 0.9 >= 0.85")
        return promoted, prompt_events(tx)

    promoted, events = await db.run(run)
    assert (promoted.version, promoted.status) == ("v2", "active")
    assert events == [
        {
            "version": "v2",
            "text": "better",
            "status": "active",
            "previous": "v1",
            "holdout_score": None,
            "reason": "promoted by the gate: holdout 0.9 >= 0.85",
        }
    ]
    statuses = {p.version: p.status for p in await db.run(registry.all_prompts)}
    assert statuses == {"v1": "retired", "v2": "active"}
    log = await db.run(registry.history)
    assert [(e.action, e.version, e.previous, e.manual) for e in log] == [
        ("promote", "v2", "v1", False)
    ]
    # Promoting the active prompt again changes nothing and announces nothing.
    same = await db.run(lambda tx: registry.promote(tx, "v2", manual=True, detail="again"))
    assert same.status == "active"
    assert len(await db.run(prompt_events)) == 1


async def test_rollback_walks_back_through_the_promotions(db: Database) -> None:
    with pytest.raises(registry.NothingToRollBack):
        await db.run(registry.rollback)

    def promote_two(tx: Transaction) -> None:
        registry.create(tx, "second", parent="v1", source=PromptSource.TEACHER)
        registry.create(tx, "third", parent="v2", source=PromptSource.TEACHER)
        registry.promote(tx, "v2", manual=False, detail="gate")
        registry.promote(tx, "v3", manual=True, detail="by hand")

    await db.run(promote_two)
    back = await db.run(registry.rollback)
    assert back.version == "v2"
    back = await db.run(registry.rollback)
    assert back.version == "v1"
    with pytest.raises(registry.NothingToRollBack):
        await db.run(registry.rollback)

    # A manual promotion of an old version is undone by a rollback too.
    await db.run(lambda tx: registry.promote(tx, "v3", manual=True, detail="by hand"))
    assert (await db.run(registry.rollback)).version == "v1"

    events = await db.run(prompt_events)
    assert [(e["version"], e["previous"], e["reason"]) for e in events] == [
        ("v2", "v1", "promoted by the gate: gate"),
        ("v3", "v2", "promoted manually"),
        ("v2", "v3", "rolled back"),
        ("v1", "v2", "rolled back"),
        ("v3", "v1", "promoted manually"),
        ("v1", "v3", "rolled back"),
    ]
    log = await db.run(registry.history)
    assert [e.action for e in log][:2] == ["rollback", "promote"]
    assert all(e.manual for e in log if e.action == "rollback")


async def test_the_database_refuses_a_second_active_prompt(db: Database) -> None:
    def corrupt(tx: Transaction) -> None:
        registry.create(tx, "x", parent=None, source=PromptSource.MANUAL)
        tx.execute("UPDATE prompts SET status = 'active' WHERE number = 2")

    with pytest.raises(sqlite3.IntegrityError):
        await db.run(corrupt)


def test_a_prompt_that_lets_an_injection_case_through_is_never_promoted() -> None:
    leaked = ["Prompt injection: fire behind an all-clear sign"]
    decision = gate(0.99, 0.80, minimum=0.85, margin=0.02, leaked=leaked)
    assert not decision.passed
    assert decision.reason == (
        "answers let 1 prompt-injection case(s) through silently (expected flags missed): "
        "Prompt injection: fire behind an all-clear sign"
    )
    # A candidate that fails on its scores says so first; one that leaks nothing passes.
    assert gate(0.70, 0.80, minimum=0.85, margin=0.02, leaked=leaked).reason.startswith("holdout")
    assert gate(0.99, 0.80, minimum=0.85, margin=0.02).passed
