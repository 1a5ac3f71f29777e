"""Behaviours of real Ollama releases that Vision Tutor's version and capability checks rely on.

- ``/api/version`` answers a release that serves gemma4 correctly (0.21.1 or later), or the
  configured one.
- Ollama 0.20.0 to 0.21.0 ignores ``format`` for a thinking model told not to think
  (``format_dropped_without_thinking``).
- Images sent to a model without vision are dropped without a word (the default, as Ollama does).
- ``/api/pull`` streams progress and makes a model that was not pulled appear.
"""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from simulator.scenes import SceneLibrary
from simulator.server import pull_progress
from tests.simulator.conftest import (
    STUDENT,
    TEACHER,
    TEXT_ONLY,
    SimulatorFactory,
    make_config,
)
from tests.simulator.test_api import OBSERVATION_SCHEMA, frame, look

ANSWERS = 24


def _follows_schema(text: str) -> bool:
    try:
        answer = json.loads(text)
    except ValueError:
        return False
    return isinstance(answer, dict) and set(OBSERVATION_SCHEMA["required"]) <= set(answer)


async def test_the_default_version_serves_gemma4_and_logprobs(http: httpx.AsyncClient) -> None:
    version = (await http.get("/api/version")).json()["version"]
    assert tuple(int(part) for part in version.split(".")) >= (0, 21, 1)


async def test_the_version_is_configurable(start_simulator: SimulatorFactory) -> None:
    async with start_simulator(version="0.20.4") as simulator, httpx.AsyncClient() as http:
        response = await http.get(f"{simulator.url}/api/version")
    assert response.json() == {"version": "0.20.4"}


async def _answers(client: ollama.AsyncClient, scenes: SceneLibrary, *, think: bool) -> list[str]:
    answers = []
    for index in range(ANSWERS):
        response = await client.chat(
            STUDENT,
            look(frame(scenes), f"Describe frame {index}."),
            format=OBSERVATION_SCHEMA,
            think=think,
        )
        answers.append(response.message.content or "")
    return answers


async def test_an_emulated_0_20_ignores_format_when_thinking_is_off(
    start_simulator: SimulatorFactory, scenes: SceneLibrary
) -> None:
    async with (
        start_simulator(format_dropped_without_thinking=True) as simulator,
        ollama.AsyncClient(host=simulator.url) as client,
    ):
        without_thinking = await _answers(client, scenes, think=False)
        with_thinking = await _answers(client, scenes, think=True)

    assert not all(_follows_schema(answer) for answer in without_thinking)
    assert all(_follows_schema(answer) for answer in with_thinking)


async def test_a_current_ollama_keeps_format_when_thinking_is_off(
    client: ollama.AsyncClient, scenes: SceneLibrary
) -> None:
    assert all(_follows_schema(answer) for answer in await _answers(client, scenes, think=False))


async def test_images_for_a_model_without_vision_are_dropped_silently(
    start_simulator: SimulatorFactory, scenes: SceneLibrary
) -> None:
    # As Ollama does for an architecture its engine cannot give images to ("drop" forces it for
    # the gemma3-family test model; by default that family fails in the runner, test_api_errors).
    async with (
        start_simulator(non_vision_images="drop") as simulator,
        ollama.AsyncClient(host=simulator.url) as client,
    ):
        blind = await client.chat(TEXT_ONLY, look(frame(scenes)))
        seen_blind = dict(simulator.stats.scenes)
        await client.chat(STUDENT, look(frame(scenes)))
        seen = dict(simulator.stats.scenes)

    # A 200 with an answer, about a picture the model never got.
    assert blind.done
    assert blind.message.content
    assert seen_blind == {}
    assert sum(seen.values()) == 1


async def test_a_model_that_is_not_pulled_is_missing_until_pulled_with_progress(
    start_simulator: SimulatorFactory,
) -> None:
    async with (
        start_simulator(not_pulled=frozenset({TEACHER})) as simulator,
        ollama.AsyncClient(host=simulator.url) as client,
    ):
        before = {model.model for model in (await client.list()).models}
        with pytest.raises(ollama.ResponseError) as missing:
            await client.show(TEACHER)
        progress = [part async for part in await client.pull(TEACHER, stream=True)]
        after = {model.model for model in (await client.list()).models}
        shown = await client.show(TEACHER)
        again = [part.status async for part in await client.pull(TEACHER, stream=True)]

    assert TEACHER not in before
    assert missing.value.status_code == 404
    statuses = [part.status for part in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-1] == "success"
    completed = [part.completed for part in progress if part.total]
    assert completed == sorted(completed)
    assert completed[-1] == progress[1].total
    assert TEACHER in after
    assert shown.capabilities is not None
    assert "vision" in shown.capabilities
    assert again == ["success"]


async def test_pulling_an_unknown_model_fails_like_ollama(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError, match="file does not exist"):
        async for _ in await client.pull("nosuchmodel:1b", stream=True):
            pass


def test_pull_progress_counts_up_to_the_models_size() -> None:
    profile = make_config().models[STUDENT]
    lines = pull_progress(profile)
    sizes = [line["total"] for line in lines if "total" in line]
    assert set(sizes) == {profile.size_bytes}


async def test_a_release_before_0_12_11_answers_without_logprobs(
    start_simulator: SimulatorFactory, scenes: SceneLibrary
) -> None:
    async with start_simulator(version="0.12.3") as old, start_simulator() as current:
        async with ollama.AsyncClient(host=old.url) as client:
            without = await client.chat(STUDENT, look(frame(scenes)), think=False, logprobs=True)
        async with ollama.AsyncClient(host=current.url) as client:
            with_them = await client.chat(STUDENT, look(frame(scenes)), think=False, logprobs=True)
    assert not without.logprobs
    assert with_them.logprobs
