"""The teacher's Ollama, checked by the service: release, capabilities, and a pull at start.

Against the simulator emulating an old release, one that ignores ``format`` without thinking,
a teacher model without vision, and a teacher model that is not pulled yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import replace
import logging
from typing import Any

import httpx
import pytest

from simulator.profiles import ModelProfile, load_config
from simulator.server import RunningSimulator, run_simulator
from tests.addon.conftest import AddonClient, StartService, review_body
from vision_tutor_teacher.ollama_checks import ModelInfo, parse_version, release_notes

TEACHER = "gemma4:26b"
TEXT_ONLY = "textonly:1b"
WAIT_S = 20.0
POLL_S = 0.05


@contextlib.asynccontextmanager
async def ollama(**overrides: Any) -> AsyncIterator[RunningSimulator]:
    """The default profiles plus a text-only model."""
    config = load_config(time_scale=0.01, seed=1234)
    text_only = ModelProfile(
        name=TEXT_ONLY, role="teacher", capabilities=("completion",), family="gemma3"
    )
    config = replace(config, models={**config.models, TEXT_ONLY: text_only}, **overrides)
    async with run_simulator(config) as running:
        yield running


async def health(client: AddonClient) -> dict[str, Any]:
    reply = await client.get("/api/v1/health")
    assert reply.status == 200
    body: dict[str, Any] = reply.body
    return body


async def until_health(client: AddonClient, check: Any) -> dict[str, Any]:
    """Poll health until `check` holds (the pull runs in the background), within WAIT_S."""
    for _ in range(int(WAIT_S / POLL_S)):
        if check(body := await health(client)):
            return body
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"health never got there: {body}")


async def test_a_teacher_without_vision_is_refused_and_reviews_wait(
    start_service: StartService, socket_enabled: None
) -> None:
    async with ollama() as server:
        client = await start_service(server.url, teacher_model=TEXT_ONLY)
        body = await health(client)
        review_id = await client.accepted(review_body("blind-1"))
        await asyncio.sleep(0.3)
        review = await client.review(review_id)
        chats = server.stats.models[TEXT_ONLY].requests

    assert body["status"] == "degraded"
    assert body["teacher"] == "unreachable"
    assert "cannot see images" in body["teacher_error"]
    # Not reviewed blind: it waits in the queue for a teacher that can see.
    assert review["status"] == "queued"
    assert chats == 0


async def test_a_format_dropping_release_is_a_health_note(
    start_service: StartService, socket_enabled: None
) -> None:
    async with ollama(version="0.20.4") as server:
        client = await start_service(server.url)
        body = await health(client)
    assert body["status"] == "ok"  # it works, less well
    assert len(body["notes"]) == 1
    assert "ignores the JSON format" in body["notes"][0]
    assert "0.21.1" in body["notes"][0]


async def test_a_release_without_logprobs_is_a_health_note(
    start_service: StartService, socket_enabled: None
) -> None:
    async with ollama(version="0.12.3") as server:
        client = await start_service(server.url)
        body = await health(client)
    assert body["status"] == "ok"
    assert any("no logprobs" in note for note in body["notes"])
    assert any("falls back to the confidence the model states" in n for n in body["notes"])


async def test_the_teacher_model_is_pulled_at_start_with_its_progress_logged(
    start_service: StartService, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vision_tutor_teacher")
    async with ollama(not_pulled=frozenset({TEACHER})) as server:
        client = await start_service(server.url)
        body = await until_health(client, lambda b: b["status"] == "ok")
        listed = {model["name"] for model in await _tags(server.url)}

    assert body["teacher_error"] is None
    assert TEACHER in listed
    messages = [record.getMessage() for record in caplog.records]
    assert any("Pulling the teacher model gemma4:26b" in m for m in messages)
    percents = [m for m in messages if m.startswith("Pulling gemma4:26b:") and "%" in m]
    assert percents
    assert percents[-1].startswith("Pulling gemma4:26b: 100%")


async def _tags(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        models: list[dict[str, Any]] = (await http.get(f"{url}/api/tags")).json()["models"]
    return models


def test_release_notes_by_release_and_model() -> None:
    gemma4 = ModelInfo(TEACHER, frozenset({"completion", "vision", "thinking"}), "gemma4")
    qwen = ModelInfo("qwen3-vl:8b", frozenset({"completion", "vision", "thinking"}), "qwen3vl")
    llava = ModelInfo("llava:7b", frozenset({"completion", "vision"}), "llama")
    assert release_notes(parse_version("0.24.0"), gemma4, "u") == []
    assert release_notes(parse_version("0.21.0"), gemma4, "u")
    assert release_notes(parse_version("0.24.0"), qwen, "u")
    assert release_notes(parse_version("0.31.2"), qwen, "u") == []
    assert release_notes(parse_version("0.24.0"), llava, "u") == []
    assert release_notes(None, gemma4, "u") == []
    assert parse_version("nightly") is None
