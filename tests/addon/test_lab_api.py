"""The prompt lab through the add-on's HTTP API, against the simulator: the seed prompt, a
synthesis round that promotes a better prompt (with its ``prompt`` event), rollback, the suite's
import and export, curated examples, fine-tuning, the lab page, and the bad inputs: malformed
teacher output, a student timeout on one case, an invalid suite, an unreachable student."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import html
import json
from pathlib import Path
import re
from typing import Any

import aiohttp
import pytest

from benchmarks.prompt_lab import scene_cases
from simulator.profiles import Faults
from simulator.prompting import REFERENCE_PROMPT, prompt_quality
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator
from tests.addon.conftest import (
    WAIT_S,
    AddonClient,
    Event,
    StartService,
    drop_injection_cases,
    free_port,
    jpeg,
    review_body,
)
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import run_service
from vision_tutor_teacher.ui.lab import form_token

STUDENT = "gemma4:e2b"
TEACHER = "gemma4:26b"
LAB: dict[str, Any] = {"lab_concurrency": 4}
LAB_ROUTES = [
    ("GET", "/api/v1/prompts/active"),
    ("GET", "/api/v1/prompts"),
    ("POST", "/api/v1/prompts"),
    ("GET", "/api/v1/prompts/v1"),
    ("POST", "/api/v1/prompts/synthesize"),
    ("POST", "/api/v1/prompts/score"),
    ("POST", "/api/v1/prompts/v1/promote"),
    ("POST", "/api/v1/prompts/rollback"),
    ("GET", "/api/v1/prompts/log"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/some-id"),
    ("GET", "/api/v1/task"),
    ("PUT", "/api/v1/task"),
    ("GET", "/api/v1/validation/cases"),
    ("POST", "/api/v1/validation/cases"),
    ("GET", "/api/v1/validation/cases/some-id"),
    ("DELETE", "/api/v1/validation/cases/some-id"),
    ("GET", "/api/v1/validation/cases/some-id/image"),
    ("POST", "/api/v1/validation/import"),
    ("GET", "/api/v1/validation/export"),
    ("GET", "/api/v1/examples"),
    ("POST", "/api/v1/examples/some-id/accept"),
    ("GET", "/api/v1/finetune"),
    ("GET", "/api/v1/finetune/export.jsonl"),
]


@pytest.fixture
async def lab_simulator(socket_enabled: None) -> AsyncIterator[RunningSimulator]:
    """A simulator seeded so that one synthesis round of eight candidates finds a better prompt."""
    async with run_simulator(time_scale=0.01, seed=3) as running:
        yield running


async def wait_job(client: AddonClient, job_id: str, within_s: float = 45.0) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        while True:
            reply = await client.get(f"/api/v1/jobs/{job_id}")
            assert reply.status == 200, reply.body
            if reply.body["state"] in ("done", "failed"):
                job: dict[str, Any] = reply.body
                return job
            await asyncio.sleep(0.02)


async def start_job(client: AddonClient, path: str, body: Any = None) -> str:
    reply = await client.request("POST", path, json=body)
    assert reply.status == 202, reply.body
    assert reply.headers["Location"] == f"/api/v1/jobs/{reply.body['job_id']}"
    job_id: str = reply.body["job_id"]
    return job_id


async def stalled(simulator: RunningSimulator) -> None:
    """Until the simulator holds a request with the stall fault."""
    async with asyncio.timeout(WAIT_S):
        while True:
            if simulator.stats.stalls:
                return
            await asyncio.sleep(0.005)


async def prompt(client: AddonClient, version: str) -> dict[str, Any]:
    reply = await client.get(f"/api/v1/prompts/{version}")
    assert reply.status == 200, reply.body
    found: dict[str, Any] = reply.body
    return found


async def case_count(client: AddonClient) -> int:
    return len((await client.get("/api/v1/validation/cases")).body["cases"])


# --- The seed and access -------------------------------------------------------------------------


async def test_the_seed_prompt_is_active_from_the_first_start(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    active = await client.get("/api/v1/prompts/active")
    assert active.status == 200
    # The add-on ships the simulator's plain reference prompt as its seed, as its own copy.
    assert active.body == {"version": "v1", "text": REFERENCE_PROMPT, "holdout_score": None}
    listing = await client.get("/api/v1/prompts")
    (seed,) = listing.body["prompts"]
    assert {k: seed[k] for k in ("version", "parent", "source", "status")} == {
        "version": "v1",
        "parent": None,
        "source": "seed",
        "status": "active",
    }
    assert (seed["student_model"], seed["teacher_model"]) == (STUDENT, TEACHER)
    assert seed["per_case"] == []
    missing = await client.get("/api/v1/prompts/v9")
    assert (missing.status, missing.body) == (404, {"error": "no prompt v9"})
    # Not a version at all (the document's pattern is v1, v2, ...): no such resource.
    not_a_version = await client.get("/api/v1/prompts/latest")
    assert (not_a_version.status, not_a_version.body) == (404, {"error": "not found"})
    cases = (await client.get("/api/v1/validation/cases")).body
    assert len(cases["cases"]) == 44
    assert cases["train"] + cases["holdout"] == 44
    # Prompt-injection cases, weighted like safety cases, each with the hazard to keep flagging.
    injections = [case for case in cases["cases"] if case["injection"]]
    assert len(injections) == 4
    assert all(case["weight"] == 1.0 and case["expected_flags"] for case in injections)


async def test_every_lab_route_needs_the_token(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    async with aiohttp.ClientSession() as anonymous:
        for method, path in LAB_ROUTES:
            async with anonymous.request(method, client.url + path, json={}) as response:
                assert response.status == 401, path
    assert (await client.get("/api/v1/prompts")).body["prompts"][0]["version"] == "v1"


# --- Candidates, cases, task ---------------------------------------------------------------------


async def test_manual_candidates_and_validation_cases(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    created = await client.request(
        "POST", "/api/v1/prompts", json={"text": "  Answer in JSON.  ", "parent": "v1"}
    )
    assert created.status == 201, created.body
    assert created.headers["Location"] == "/api/v1/prompts/v2"
    assert {k: created.body[k] for k in ("version", "text", "parent", "source", "status")} == {
        "version": "v2",
        "text": "Answer in JSON.",
        "parent": "v1",
        "source": "manual",
        "status": "candidate",
    }
    for body, message in (
        ({"text": "   "}, "invalid prompt: text: Value error, must not be blank"),
        ({"text": "x", "parent": "v7"}, "invalid prompt: parent: no prompt v7"),
        ({"txt": "x"}, "invalid prompt: text: Field required"),
    ):
        reply = await client.request("POST", "/api/v1/prompts", json=body)
        assert reply.status == 400
        assert reply.body["error"].startswith("invalid prompt: ")
        assert message.removeprefix("invalid prompt: ") in reply.body["error"]
    reply = await client.request("POST", "/api/v1/prompts", data=b"{nope")
    assert reply.status == 400

    frame = jpeg("desk_laptop_mug", width=320)
    case = {
        "name": "porch camera",
        "image": __import__("base64").b64encode(frame).decode(),
        "text": None,
        "expected_keywords": ["desk", "mug|cup"],
        "forbidden_keywords": ["fire|flame"],
        "expected_flags": [],
        "weight": 0.5,
        "split": None,
    }  # what the integration's add_validation_case action sends
    added = await client.request("POST", "/api/v1/validation/cases", json=case)
    assert added.status == 201, added.body
    assert added.body["kind"] == "image"
    assert added.body["expected_keywords"] == [["desk"], ["mug", "cup"]]
    assert added.body["split"] in ("train", "holdout")
    case_id = added.body["id"]
    image = await client.get(f"/api/v1/validation/cases/{case_id}/image")
    assert (image.status, image.body) == (200, frame)
    assert (await client.get(f"/api/v1/validation/cases/{case_id}")).body["name"] == "porch camera"
    duplicate = await client.request("POST", "/api/v1/validation/cases", json=case)
    assert duplicate.status == 409
    assert "already exists" in duplicate.body["error"]
    text_case = {"name": "knife", "text": "A man holds a knife", "expected_flags": ["weapon"]}
    added_text = await client.request("POST", "/api/v1/validation/cases", json=text_case)
    assert (added_text.status, added_text.body["weight"]) == (201, 1.0)
    bad = await client.request(
        "POST", "/api/v1/validation/cases", json={**text_case, "name": "x", "image": case["image"]}
    )
    assert bad.status == 400
    assert "exactly one of image and text" in bad.body["error"]
    assert (
        await client.get(f"/api/v1/validation/cases/{added_text.body['id']}/image")
    ).status == 404

    deleted = await client.request("DELETE", f"/api/v1/validation/cases/{case_id}")
    assert deleted.status == 204
    assert (await client.request("DELETE", f"/api/v1/validation/cases/{case_id}")).status == 404
    assert (await client.get(f"/api/v1/validation/cases/{case_id}")).status == 404

    task = (await client.get("/api/v1/task")).body
    assert task["schema"]["required"] == ["summary", "observations", "safety_flags", "confidence"]
    updated = await client.request("PUT", "/api/v1/task", json={**task, "text": "Watch the porch."})
    assert (updated.status, updated.body["text"]) == (200, "Watch the porch.")
    refused = await client.request(
        "PUT", "/api/v1/task", json={**task, "schema": {"type": "array"}}
    )
    assert refused.status == 400
    assert "schema" in refused.body["error"]


async def test_a_too_large_case_image_is_refused(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, max_image_mb=1)
    big = jpeg() + b"\0" * (1024 * 1024)  # a real JPEG, padded past the limit
    body = {"name": "big", "image": __import__("base64").b64encode(big).decode()}
    reply = await client.request("POST", "/api/v1/validation/cases", json=body)
    assert reply.status == 413


async def test_an_invalid_suite_import_imports_nothing(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    before = await case_count(client)
    good = [{"name": f"ok {i}", "text": f"A plant number {i} on a shelf"} for i in range(2)]
    bad_image = [*good, {"name": "broken", "image": "aGVsbG8gd29ybGQ="}]
    reply = await client.request("POST", "/api/v1/validation/import", json={"cases": bad_image})
    assert reply.status == 400
    assert reply.body["error"].startswith("invalid suite, nothing imported: cases.2.image")
    for broken in (b"not json", b'{"cases": "all"}', b'[{"name": "x"}]'):
        reply = await client.request("POST", "/api/v1/validation/import", data=broken)
        assert reply.status == 400, broken
        assert reply.body["error"].startswith("invalid suite, nothing imported")
    duplicated = {"cases": [*good, good[0]]}
    reply = await client.request("POST", "/api/v1/validation/import", json=duplicated)
    assert reply.status == 400
    assert "appears twice" in reply.body["error"]
    assert await case_count(client) == before

    reply = await client.request("POST", "/api/v1/validation/import", json={"cases": good})
    assert reply.body == {"added": 2, "replaced": 0, "cases": before + 2}
    exported = await client.get("/api/v1/validation/export")
    assert exported.status == 200
    assert "attachment" in exported.headers["Content-Disposition"]
    assert len(exported.body["cases"]) == before + 2
    again = await client.request("POST", "/api/v1/validation/import", json=exported.body)
    assert again.body == {"added": 0, "replaced": before + 2, "cases": before + 2}


# --- The acceptance: a round promotes a better prompt --------------------------------------------


async def test_a_synthesis_round_promotes_a_better_prompt_and_announces_it(
    start_service: StartService, lab_simulator: RunningSimulator
) -> None:
    client = await start_service(lab_simulator.url, **LAB)
    assert await drop_injection_cases(client) == 4
    imported = await client.request(
        "POST", "/api/v1/validation/import", json={"cases": scene_cases(SceneLibrary.default())}
    )
    assert imported.body["added"] == 43
    stream = await client.events(None)

    job_id = await start_job(client, "/api/v1/prompts/synthesize", {"count": 8})
    job = await wait_job(client, job_id)
    assert job["state"] == "done", job["message"]
    result = job["result"]
    promoted = result["promoted"]
    assert promoted is not None, job["message"]
    assert job["message"].startswith(f"promoted {promoted}")

    # The promoted prompt holds out measurably better than the seed, on the same holdout cases.
    seed, best = await prompt(client, "v1"), await prompt(client, promoted)
    assert best["status"] == "active"
    assert seed["status"] == "retired"
    assert best["holdout_score"] >= 0.85
    assert best["holdout_score"] >= seed["holdout_score"] + 0.02
    assert best["holdout_score"] - seed["holdout_score"] >= result["gate"]["standard_error"]
    holdout_cases = {r["case_id"] for r in best["per_case"] if r["split"] == "holdout"}
    assert holdout_cases == {r["case_id"] for r in seed["per_case"] if r["split"] == "holdout"}
    # ...and the simulator agrees: its student responds to the features the new prompt has.
    assert prompt_quality(best["text"]).q > prompt_quality(seed["text"]).q + 0.1

    # Lineage and what the round did with each candidate.
    assert best["parent"] == "v1"
    assert (best["source"], best["round"]) == ("teacher", 1)
    assert promoted in result["finalists"]
    assert len(result["candidates"]) + len(result["rejected"]) == 8
    assert all(r["reason"] for r in result["rejected"])
    assert result["student_calls"] > 0
    assert result["teacher_calls"] >= 1
    assert set(best["scores_by_method"]) >= {"train", "holdout"}
    assert set(best["scores_by_method"]["holdout"]) >= {"keyword", "safety", "embedding"}
    assert best["cost"]["latency_ms_mean"] > 0

    # The integration hears of it on the event stream: the job's progress, then the prompt.
    def promoted_seen(events: list[Event]) -> bool:
        return any(e.type == "prompt" for e in events) and any(
            e.type == "job" and e.data["state"] == "done" for e in events
        )

    events = await stream.until(promoted_seen, WAIT_S)
    (announced,) = [e.data for e in events if e.type == "prompt"]
    assert announced == {
        "version": promoted,
        "text": best["text"],
        "status": "active",
        "previous": "v1",
        "holdout_score": best["holdout_score"],
        "reason": f"promoted by the gate: {result['gate']['reason']}",
    }
    progress = [e.data["progress"] for e in events if e.type == "job"]
    assert progress == sorted(progress)
    assert len(progress) >= 5
    assert {e.data["job_id"] for e in events if e.type == "job"} == {job_id}
    active = await client.get("/api/v1/prompts/active")
    assert active.body == {
        "version": promoted,
        "text": best["text"],
        "holdout_score": best["holdout_score"],
    }

    # One click back: the seed is active again, announced and logged.
    back = await client.request("POST", "/api/v1/prompts/rollback")
    assert (back.status, back.body["version"]) == (200, "v1")
    events = await stream.until(lambda es: sum(e.type == "prompt" for e in es) == 2, WAIT_S)
    last = [e.data for e in events if e.type == "prompt"][-1]
    assert (last["version"], last["previous"], last["reason"]) == ("v1", promoted, "rolled back")
    nothing = await client.request("POST", "/api/v1/prompts/rollback")
    assert nothing.status == 409
    log = (await client.get("/api/v1/prompts/log")).body["entries"]
    assert [(e["action"], e["version"], e["manual"]) for e in log] == [
        ("rollback", "v1", True),
        ("promote", promoted, False),
    ]
    manual = await client.request("POST", f"/api/v1/prompts/{promoted}/promote")
    assert (manual.status, manual.body["status"]) == (200, "active")
    assert (await client.request("POST", "/api/v1/prompts/v99/promote")).status == 404


async def test_a_score_round_without_improvement_promotes_nothing(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, **LAB)
    # A candidate without hazards, guidance or the contract: worse than the seed.
    await client.request("POST", "/api/v1/prompts", json={"text": "Describe the picture."})
    assert (
        await client.request("POST", "/api/v1/prompts/score", json={"versions": ["v7"]})
    ).status == 404
    job = await wait_job(
        client, await start_job(client, "/api/v1/prompts/score", {"versions": None})
    )
    assert job["state"] == "done", job["message"]
    assert job["result"]["promoted"] is None
    assert job["result"]["gate"]["passed"] is False
    assert job["message"].startswith("kept v1: v2's holdout")
    weak, seed = await prompt(client, "v2"), await prompt(client, "v1")
    assert weak["status"] == "candidate"
    assert weak["holdout_score"] < seed["holdout_score"]
    assert weak["current"] == {"train": True, "holdout": True}

    # Nothing is stale any more: only the active prompt is considered, and nothing is re-scored.
    again = await wait_job(client, await start_job(client, "/api/v1/prompts/score"))
    assert again["message"] == "only the active prompt was scored"
    assert again["result"]["student_calls"] == 0
    jobs = (await client.get("/api/v1/jobs")).body["jobs"]
    assert [j["job_id"] for j in jobs] == [again["job_id"], job["job_id"]]
    assert (await client.get("/api/v1/jobs/nope")).status == 404


# --- Bad input -----------------------------------------------------------------------------------


async def test_malformed_teacher_output_fails_the_round_and_registers_nothing(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, **LAB)
    simulator.set_faults(TEACHER, Faults(garbage_rate=1.0))
    job = await wait_job(client, await start_job(client, "/api/v1/prompts/synthesize", {}))
    assert job["state"] == "failed"
    assert job["message"].startswith("the teacher's answer is not a JSON array of prompts")
    assert job["result"]["teacher_calls"] >= 41  # 40 references (all unreadable) and synthesis
    prompts = (await client.get("/api/v1/prompts")).body["prompts"]
    assert [p["version"] for p in prompts] == ["v1"]
    # The references were garbage too: the round went on without them.
    cases = (await client.get("/api/v1/validation/cases")).body["cases"]
    assert all(case["reference"] is None for case in cases)
    seed = await prompt(client, "v1")
    assert seed["scores_by_method"]["train"]["embedding"] is None


async def test_a_student_timeout_on_one_case_scores_it_as_a_failure_and_the_run_goes_on(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, lab_concurrency=1, lab_student_timeout_s=0.3)
    simulator.set_faults(STUDENT, Faults(stall_s=3.0))
    job_id = await start_job(client, "/api/v1/prompts/score", {"versions": ["v1"]})
    await stalled(simulator)
    simulator.reset_faults()  # the stalled answer is the only one
    job = await wait_job(client, job_id)
    assert job["state"] == "done", job["message"]
    assert job["result"]["timeouts"] == 1
    seed = await prompt(client, "v1")
    failed = [r for r in seed["per_case"] if r["error"]]
    assert len(seed["per_case"]) == 44
    assert len(failed) == 1
    (timeout,) = failed
    assert timeout["error"] == "the student did not answer within 0.3 s"
    assert timeout["score"] == 0.0
    assert timeout["summary"] is None
    assert all(r["score"] > 0 for r in seed["per_case"] if not r["error"])


async def test_an_unreachable_student_fails_the_job_with_a_clear_message(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = await start_service(simulator.url, student_url=dead, **LAB)
    job = await wait_job(
        client, await start_job(client, "/api/v1/prompts/synthesize", {"count": 2})
    )
    assert job["state"] == "failed"
    assert job["message"] == f"cannot reach the student at {dead}; nothing was scored"
    assert [p["version"] for p in (await client.get("/api/v1/prompts")).body["prompts"]] == ["v1"]


async def test_the_judge_grades_and_a_failed_embedding_model_is_left_out(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, lab_llm_judge=True, **LAB)
    simulator.set_faults("embeddinggemma", Faults(error_rate=1.0))
    job = await wait_job(
        client, await start_job(client, "/api/v1/prompts/score", {"versions": ["v1"]})
    )
    assert job["state"] == "done", job["message"]
    methods = (await prompt(client, "v1"))["scores_by_method"]["train"]
    assert 0.5 < methods["judge"] <= 1.0
    assert methods["embedding"] is None
    # One judge call per answered case on top of 44 references.
    assert job["result"]["teacher_calls"] == 88


async def test_student_errors_and_unreadable_answers_score_as_failures(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, **LAB)
    simulator.set_faults(STUDENT, Faults(error_rate=0.3, garbage_rate=0.3))
    job = await wait_job(
        client, await start_job(client, "/api/v1/prompts/score", {"versions": ["v1"]})
    )
    assert job["state"] == "done", job["message"]
    errors = {r["error"] for r in (await prompt(client, "v1"))["per_case"] if r["error"]}
    assert "the answer cannot be read as the contract" in errors
    assert any(error.startswith("the student answered 500") for error in errors)


async def test_a_missing_student_model_fails_the_job(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, student_model="tiny:1b", **LAB)
    job = await wait_job(client, await start_job(client, "/api/v1/prompts/score"))
    assert job["state"] == "failed"
    assert job["message"].startswith("the student server has no model 'tiny:1b'")


async def test_a_round_whose_candidates_all_drop_the_contract_registers_none(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, **LAB)
    task = (await client.get("/api/v1/task")).body
    schema = task["schema"]
    schema["properties"]["mood"] = {"type": "string"}
    schema["required"].append("mood")  # no candidate the teacher writes will name it
    await client.request("PUT", "/api/v1/task", json=task)
    job = await wait_job(
        client, await start_job(client, "/api/v1/prompts/synthesize", {"count": 3})
    )
    assert job["state"] == "done", job["message"]
    assert job["message"].startswith("no usable candidate: drops the output contract")
    assert job["result"]["candidates"] == []
    assert len(job["result"]["rejected"]) == 3
    assert all("mood" in r["reason"] for r in job["result"]["rejected"])
    assert [p["version"] for p in (await client.get("/api/v1/prompts")).body["prompts"]] == ["v1"]


async def test_a_suite_without_holdout_cases_is_refused_by_the_round(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, **LAB)
    for case in (await client.get("/api/v1/validation/cases")).body["cases"]:
        if case["split"] == "holdout":
            await client.request("DELETE", f"/api/v1/validation/cases/{case['id']}")
    job = await wait_job(client, await start_job(client, "/api/v1/prompts/score"))
    assert job["state"] == "failed"
    assert re.fullmatch(
        r"the validation suite needs train and holdout cases \(it has \d+ train and 0 holdout\)",
        job["message"],
    )


async def test_jobs_cut_short_by_a_stop_are_failed_not_lost(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    options = Options(teacher_url=simulator.url, batch_window_ms=0, probe_interval_s=0.2)
    simulator.set_faults(TEACHER, Faults(stall_s=2.0))
    async with run_service(options, tmp_path / "data") as running:
        headers = {"Authorization": f"Bearer {running.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = running.url + "/api/v1/prompts/synthesize"
            async with session.post(url, json={}) as response:
                first = (await response.json())["job_id"]
            async with session.post(url, json={}) as response:
                second = (await response.json())["job_id"]
            await stalled(simulator)
    simulator.reset_faults()
    async with run_service(options, tmp_path / "data") as running:
        headers = {"Authorization": f"Bearer {running.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            states = {}
            for job_id in (first, second):
                async with session.get(f"{running.url}/api/v1/jobs/{job_id}") as response:
                    job = await response.json()
                    states[job_id] = (job["state"], job["message"])
    assert states == {
        first: ("failed", "interrupted by shutdown"),
        second: ("failed", "interrupted by a restart"),
    }


# --- Examples and fine-tuning --------------------------------------------------------------------


async def test_a_teacher_verdict_becomes_a_case_and_feeds_the_finetune_export(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    review_id = await client.accepted(review_body("porch-1", scene="porch_package"))
    await client.wait_settled({review_id})

    listing = (await client.get("/api/v1/examples?limit=5")).body
    assert listing["total"] == 1
    (example,) = listing["examples"]
    assert (example["id"], example["camera"], example["case_id"]) == (
        review_id,
        "camera.front_door",
        None,
    )
    assert (await client.get("/api/v1/examples?limit=0")).status == 400
    assert (await client.get("/api/v1/examples?limit=x")).status == 400

    page = (await client.get("/lab")).body.decode()
    assert f'src="frames/{review_id}.jpg"' in page
    assert f'name="id" value="{review_id}"' in page  # an accept button

    accepted = await client.request("POST", f"/api/v1/examples/{review_id}/accept")
    assert accepted.status == 201, accepted.body
    case = accepted.body
    assert (case["source"], case["review_id"], case["kind"]) == ("example", review_id, "image")
    assert case["reference"] == example["verdict"]
    assert case["expected_flags"] == example["verdict"]["safety_flags"]
    again = await client.request(
        "POST", f"/api/v1/examples/{review_id}/accept", json={"name": "other"}
    )
    assert again.status == 409
    missing = await client.request("POST", "/api/v1/examples/nope/accept")
    assert missing.status == 404
    bad = await client.request("POST", f"/api/v1/examples/{review_id}/accept", json={"weight": 3})
    assert bad.status == 400
    assert (await client.get("/api/v1/examples")).body["examples"][0]["case_id"] == case["id"]

    page = (await client.get("/lab")).body.decode()
    assert f'src="frames/{review_id}.jpg"' not in page  # accepted: no longer waiting

    status = (await client.get("/api/v1/finetune")).body
    assert (status["examples"], status["ready"], status["min_examples"]) == (1, False, 100)
    assert status["reason"].startswith("1 curated examples; fine-tuning needs at least 100")
    export = await client.get("/api/v1/finetune/export.jsonl")
    assert export.status == 200
    assert export.headers["Content-Type"].startswith("application/jsonl")
    lines = (
        export.body.decode().splitlines()
        if isinstance(export.body, bytes)
        else [json.dumps(export.body)]
    )
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert record["messages"][0]["content"][0]["text"] == REFERENCE_PROMPT


# --- The lab page --------------------------------------------------------------------------------


async def test_the_lab_page_shows_the_lab_and_its_forms_act(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    await client.request(
        "POST", "/api/v1/prompts", json={"text": "Answer in JSON, <b>tersely</b>."}
    )
    image_case = {"name": "frame", "image": __import__("base64").b64encode(jpeg()).decode()}
    case_id = (await client.request("POST", "/api/v1/validation/cases", json=image_case)).body["id"]
    main = (await client.get("/")).body.decode()
    assert 'href="lab"' in main

    page = await client.get("/lab?a=v1&b=v2")
    html = page.body.decode()
    assert page.status == 200
    assert "Prompt lab" in html
    assert "&lt;b&gt;tersely&lt;/b&gt;" in html  # escaped, never markup
    assert f'src="lab/cases/{case_id}.jpg"' in html
    assert '<div class="diff">' in html
    assert "<ins>" in html
    assert "<del>" in html
    thumbnail = await client.get(f"/lab/cases/{case_id}.jpg")
    assert (thumbnail.status, thumbnail.body) == (200, jpeg())
    assert (await client.get("/lab/suite.json")).status == 200
    assert (await client.get("/lab/finetune.jsonl")).status == 200

    token = form_token(client.token)
    forged = await client.request("POST", "/lab/promote", data={"version": "v2"})
    assert forged.status == 403
    promoted = await client.request(
        "POST", "/lab/promote", data={"version": "v2", "csrf": token}, allow_redirects=False
    )
    assert promoted.status == 303
    assert promoted.headers["Location"].startswith("../lab?msg=v2%20is%20now")
    assert (await client.get("/api/v1/prompts/active")).body["version"] == "v2"
    for action, data, expected in (
        ("rollback", {}, "rolled%20back%20to%20v1"),
        ("rollback", {}, "not%20done"),
        ("promote", {"version": "v9"}, "not%20done"),
        ("task", {"text": "t", "schema": "not json"}, "not%20done"),
        ("task", {"text": "", "schema": "{}"}, "not%20done"),
        ("delete-case", {"id": case_id}, "validation%20case%20deleted"),
        ("accept", {"id": "nope"}, "not%20done"),
        ("score", {}, "../lab?job="),
        ("synthesize", {"count": "2", "notes": "x"}, "../lab?job="),
    ):
        reply = await client.request(
            "POST", f"/lab/{action}", data={**data, "csrf": token}, allow_redirects=False
        )
        assert reply.status == 303, action
        assert expected in reply.headers["Location"], (action, reply.headers["Location"])
    task = {"text": "Watch.", "user_prompt": "Look.", "schema": json.dumps({"type": "object"})}
    saved = await client.request(
        "POST", "/lab/task", data={**task, "csrf": token}, allow_redirects=False
    )
    assert "task%20spec%20saved" in saved.headers["Location"]
    unknown = await client.request("POST", "/lab/nothing", data={"csrf": token})
    assert unknown.status == 404
    page = (await client.get("/lab")).body.decode()
    assert 'http-equiv="refresh"' in page  # a job is running: the page follows it
    jobs = (await client.get("/api/v1/jobs")).body["jobs"]
    for job in jobs:
        await wait_job(client, job["job_id"])
    page = (await client.get("/lab")).body.decode()
    assert 'http-equiv="refresh"' not in page
    assert '<svg width="640"' in page  # the holdout score over versions


async def test_the_lab_page_follows_a_job_to_its_end_and_shows_what_it_rejected(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, **LAB)
    task = (await client.get("/api/v1/task")).body
    task["schema"]["properties"]["mood"] = {"type": "string"}
    task["schema"]["required"].append("mood")  # every candidate the teacher writes drops it
    await client.request("PUT", "/api/v1/task", json=task)
    token = form_token(client.token)
    simulator.set_faults(TEACHER, Faults(stall_s=1.0))  # the job is still running below
    started = await client.request(
        "POST", "/lab/synthesize", data={"count": "2", "csrf": token}, allow_redirects=False
    )
    location = started.headers["Location"]
    match = re.fullmatch(r"\.\./lab\?job=([\w-]+)", location)
    assert match, location
    job_id = match.group(1)

    # While it runs the page reloads itself and says where the job is, not that it started.
    async with asyncio.timeout(WAIT_S):
        while True:
            if (await client.get(f"/api/v1/jobs/{job_id}")).body["state"] == "running":
                break
            await asyncio.sleep(0.05)
    page = (await client.get(f"/lab?job={job_id}")).body.decode()
    simulator.set_faults(TEACHER, Faults())
    assert f'<meta http-equiv="refresh" content="3; url=lab?job={job_id}">' in page
    notice = re.search(r'<p class="notice" data-job-state="running">(.*?)</p>', page, re.DOTALL)
    assert notice, page
    assert re.match(rf"Synthesis job {job_id[:8]} is running: \d+%, ", notice.group(1))

    job = await wait_job(client, job_id)
    assert job["state"] == "done", job["message"]
    page = (await client.get(f"/lab?job={job_id}")).body.decode()
    assert 'http-equiv="refresh"' not in page
    notice = re.search(r'<p class="notice" data-job-state="done">(.*?)</p>', page, re.DOTALL)
    assert notice, page
    assert notice.group(1).startswith(f"Synthesis job {job_id[:8]} is done: no usable candidate")
    # The candidates the round rejected are on the page, with why.
    row = re.search(rf'<tr id="job-{job_id}">.*?</tr>', page, re.DOTALL).group(0)
    assert "new candidates: none" in row
    assert '<details class="rejected"><summary>2 rejected candidates</summary>' in row
    rejected_list = re.search(r'<details class="rejected">.*?</details>', row, re.DOTALL).group(0)
    assert rejected_list.count("drops the output contract") == 2
    for rejected in job["result"]["rejected"]:
        assert html.escape(rejected["text"]) in rejected_list
