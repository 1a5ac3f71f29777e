"""The add-on against a real Ollama: a teacher review with the grafted gemma3 vision model (the real
Gemma 3 270M language model on the real image path), and a prompt-lab round whose synthesis and
judging are Gemma 3 270M's, whose student is Gemma 3 270M on text cases, and whose embeddings are
all-MiniLM-L6-v2's.

These models are small and the 270M is a base model: the tests check that each job runs to its end
on real output and that what the add-on records is what the models said, not that the output is good.
"""

from __future__ import annotations

from typing import Any

from realollama.models import EMBED, TEACHER, TEXT
from realollama.server import OllamaServer
from tests.addon.conftest import (
    FAST,
    OBSERVATION_SCHEMA,
    AddonClient,
    StartService,
    review_body,
)
from tests.addon.test_lab_api import start_job, wait_job

REAL_WAIT_S = 600.0
EXAMPLE_ANSWER = (
    '{"summary": "A kitchen with a pan on fire.", "observations": ["pan", "flames"], '
    '"safety_flags": ["fire"], "confidence": 0.8}'
)
FEW_SHOT = (
    f"Answer with one JSON object and nothing else, exactly like this example:\n{EXAMPLE_ANSWER}"
)
"""A base model continues text: shown an answer, the 270M writes one in the same shape (it copies
it, image or not: what is checked is the review's path through the real server, not judgement)."""
"""The 2-core machine runs the models on CPU: a review takes seconds, a lab round minutes."""


async def test_a_review_gets_the_real_teachers_verdict(
    start_service: StartService, real_ollama: OllamaServer
) -> None:
    client: AddonClient = await start_service(
        real_ollama.url,
        teacher_model=TEACHER,
        embedding_model=EMBED,
        teacher_timeout_s=300.0,
    )
    body = review_body(
        "real-1",
        scene="fire_kitchen_pan",
        contract={"system_prompt": FEW_SHOT, "schema": OBSERVATION_SCHEMA},
    )
    review_id = await client.accepted(body)
    events = await client.wait_settled({review_id}, within_s=REAL_WAIT_S)

    review = await client.review(review_id)
    assert review["status"] == "done", review
    verdicts = [e.data for e in events if e.type == "verdict" and e.data["review_id"] == review_id]
    assert len(verdicts) == 1
    verdict = verdicts[0]
    # The teacher's own observation, in the contract's schema (Ollama's grammar held).
    assert verdict["teacher_model"] == TEACHER
    teacher: dict[str, Any] = verdict["verdict"]
    assert teacher["summary"]
    assert teacher["safety_flags"] == ["fire"]
    assert 0 <= teacher["confidence"] <= 1
    # The summaries were compared with the real embedding model.
    assert verdict["agreement"]["summary_similarity"] is not None


async def test_a_lab_round_runs_on_real_models(
    start_service: StartService, real_ollama: OllamaServer
) -> None:
    client = await start_service(
        real_ollama.url,
        teacher_model=TEXT,
        student_url=real_ollama.url,
        student_model=TEXT,
        embedding_model=EMBED,
        lab_llm_judge=True,
        lab_student_timeout_s=120.0,
        lab_concurrency=1,
        lab_minibatch=2,
        teacher_timeout_s=300.0,
        **FAST,
    )
    # A few of the default text cases keep the round within minutes on CPU: both splits.
    cases = (await client.get("/api/v1/validation/cases")).body["cases"]
    keep = [c for c in cases if c["split"] == "train"][:3] + [
        c for c in cases if c["split"] == "holdout"
    ][:2]
    for case in cases:
        if case not in keep:
            assert (
                await client.request("DELETE", f"/api/v1/validation/cases/{case['id']}")
            ).status == 204

    job_id = await start_job(client, "/api/v1/prompts/synthesize", {"count": 2})
    job = await wait_job(client, job_id, within_s=REAL_WAIT_S)

    # The round ends either way on real output: candidates scored and the gate decided, or every
    # candidate rejected with a reason; never a crash or a hang.
    assert job["state"] == "done", job
    result = job["result"]
    assert result["teacher_calls"] >= 1
    assert result["student_calls"] >= len(keep)
    assert len(result["candidates"]) + len(result["rejected"]) == 2
    assert all(r["reason"] for r in result["rejected"])
    seed = (await client.get("/api/v1/prompts/v1")).body
    # The seed was scored on the holdout cases by the real student, with the judge's grades and
    # all-MiniLM's embeddings among the methods.
    assert seed["holdout_score"] is not None
    assert {"keyword", "embedding", "judge"} <= set(seed["scores_by_method"]["holdout"])
