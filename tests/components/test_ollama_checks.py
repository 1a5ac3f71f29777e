"""What the integration tells the user about the Ollama it runs on, as repair issues.

Against the simulator emulating the releases that matter: one without logprobs (before
0.12.11), one that ignores ``format`` when thinking is off (0.20.0 to 0.21.0 for gemma4), a
student model without vision, and a student slower than its timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
from dataclasses import replace
from typing import Any

import ollama
import pytest

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.vision_tutor.const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_TIMEOUT,
    DOMAIN,
)
from custom_components.vision_tutor.contract import StudentError
from custom_components.vision_tutor.ollama_client import (
    ModelInfo,
    Version,
    async_server_version,
    create_client,
    drops_format_without_thinking,
    parse_version,
    serves_logprobs,
)
from simulator.profiles import Faults, ModelProfile, load_config
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator

from .conftest import ENTRY_ID, SUBENTRY_ID, SceneCamera, make_entry
from .helpers import STUDENT, coordinator, routine, setup
from .test_config_flow_helpers import (
    Serve,
    answer,
    serve_fixture,  # noqa: F401  (fixture)
)

TEXT_ONLY = "textonly:1b"


@contextlib.asynccontextmanager
async def ollama_server(**overrides: Any) -> AsyncIterator[RunningSimulator]:
    """The simulator with the default profiles plus a text-only model."""
    config = load_config(time_scale=0.01, seed=1234)
    text_only = ModelProfile(
        name=TEXT_ONLY, role="student", capabilities=("completion",), family="gemma3"
    )
    config = replace(config, models={**config.models, TEXT_ONLY: text_only}, **overrides)
    async with run_simulator(config) as running:
        yield running


def issues(hass: HomeAssistant) -> dict[str, ir.IssueEntry]:
    """This integration's repair issues by translation key."""
    return {
        str(issue.translation_key): issue
        for (domain, _), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN
    }


async def test_a_current_ollama_raises_no_issue(
    hass: HomeAssistant, camera: SceneCamera, socket_enabled: None
) -> None:
    async with ollama_server() as server:
        await setup(hass, make_entry(server.url))
        assert issues(hass) == {}


async def test_an_ollama_without_logprobs_says_confidence_falls_back_to_stated(
    hass: HomeAssistant, camera: SceneCamera, socket_enabled: None
) -> None:
    async with ollama_server(version="0.12.3") as server:
        entry = await setup(hass, make_entry(server.url))
        issue = issues(hass)["ollama_no_logprobs"]
        assert issue.severity is ir.IssueSeverity.WARNING
        assert issue.translation_placeholders == {
            "url": server.url,
            "model": STUDENT,
            "version": "0.12.3",
            "needed": "0.12.11",
        }
        # What it means: no token evidence, so effective confidence is the stated one.
        analysis = await coordinator(entry).async_analyse_now()
        assert analysis.observation is not None
        assert analysis.decision.effective_confidence == analysis.observation.confidence
        # Upgraded: the next poll of the host clears it.
        server.simulator.config = replace(server.simulator.config, version="0.24.0")
        await entry.runtime_data.host.async_refresh()
        assert "ollama_no_logprobs" not in issues(hass)


async def test_a_release_that_drops_format_without_thinking_is_reported_and_it_shows(
    hass: HomeAssistant, camera: SceneCamera, library: SceneLibrary, socket_enabled: None
) -> None:
    async with ollama_server(version="0.21.0", format_dropped_without_thinking=True) as server:
        entry = await setup(hass, make_entry(server.url))
        issue = issues(hass)["ollama_format_dropped"]
        assert issue.severity is ir.IssueSeverity.WARNING
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["needed"] == "0.21.1"
        # What it means: answers that ignore the schema and had to be repaired, or could not.
        results = [await coordinator(entry).async_analyse_now() for _ in range(12)]
    assert not all(result.observation and result.observation.valid_as_sent for result in results)
    assert "ollama_no_logprobs" not in issues(hass)


async def test_the_fixed_release_keeps_the_format(
    hass: HomeAssistant, camera: SceneCamera, socket_enabled: None
) -> None:
    async with ollama_server(version="0.21.1") as server:
        entry = await setup(hass, make_entry(server.url))
        assert "ollama_format_dropped" not in issues(hass)
        results = [await coordinator(entry).async_analyse_now() for _ in range(12)]
    assert all(result.observation and result.observation.valid_as_sent for result in results)


async def test_a_student_model_without_vision_is_an_error_repair(
    hass: HomeAssistant, camera: SceneCamera, socket_enabled: None
) -> None:
    async with ollama_server() as server:
        await setup(hass, replace_model(make_entry(server.url), TEXT_ONLY))
        issue = issues(hass)["student_not_vision"]
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["model"] == TEXT_ONLY


def replace_model(entry: Any, model: str) -> Any:
    """The same entry for another student model."""
    return type(entry)(
        domain=entry.domain,
        entry_id=entry.entry_id,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**entry.data, CONF_STUDENT_MODEL: model},
        options=dict(entry.options),
        subentries_data=[
            {
                "data": dict(sub.data),
                "subentry_id": sub.subentry_id,
                "subentry_type": sub.subentry_type,
                "title": sub.title,
                "unique_id": sub.unique_id,
            }
            for sub in entry.subentries.values()
        ],
    )


async def test_a_student_slower_than_its_timeout_raises_a_repair_that_clears(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    entry = await setup(hass, make_entry(simulator.url, options={CONF_STUDENT_TIMEOUT: 0.2}))
    camera.show(routine(library, 1).id)
    simulator.set_faults(STUDENT, Faults(stall_s=2.0))
    for _ in range(9):
        await coordinator(entry).async_analyse_now()
    # The first analysis (at setup) was answered: 9 timeouts of the last 10 frames.
    issue = issues(hass)["student_too_slow"]
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.issue_id == f"student_too_slow_{ENTRY_ID}_{SUBENTRY_ID}"
    assert issue.translation_placeholders == {
        "camera": "camera.front_door",
        "timeouts": "9",
        "frames": "10",
        "timeout": "0.2",
        "model": STUDENT,
        "width": "768",
    }

    simulator.reset_faults()
    for _ in range(6):
        await coordinator(entry).async_analyse_now()
    assert "student_too_slow" in issues(hass)  # still 4 of the last 10
    await coordinator(entry).async_analyse_now()
    assert "student_too_slow" not in issues(hass)


async def test_a_few_timeouts_raise_no_repair(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    entry = await setup(hass, make_entry(simulator.url, options={CONF_STUDENT_TIMEOUT: 0.2}))
    for index in range(12):
        simulator.set_faults(STUDENT, Faults(stall_s=2.0 if index % 3 == 0 else 0.0))
        camera.show(routine(library, index % 2).id)
        await coordinator(entry).async_analyse_now()
    assert "student_too_slow" not in issues(hass)


async def test_the_first_call_after_a_load_waits_for_the_load(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    """A timeout that fits a loaded model, and a cold model that takes longer than it."""
    simulator.set_faults(STUDENT, Faults(stall_s=0.5))
    entry = await setup(hass, make_entry(simulator.url, options={CONF_STUDENT_TIMEOUT: 0.3}))
    student = entry.runtime_data.student
    # The first frame (at setup) had the load allowance on top of the timeout: answered.
    first = coordinator(entry).data.analysis
    assert first is not None
    assert not isinstance(first.result, StudentError)
    assert student.call_timeout() == pytest.approx(0.3)
    # The model is loaded now: the same delay is a timeout.
    camera.show(routine(library, 2).id)
    second = await coordinator(entry).async_analyse_now()
    assert isinstance(second.result, StudentError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.21.1", (0, 21, 1)),
        ("v0.12.11-rc2", (0, 12, 11)),
        ("0.5", (0, 5, 0)),
        ("", None),
        (None, None),
        ("latest", None),
    ],
)
def test_parse_version(text: object, expected: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    ("version", "model", "dropped"),
    [
        ("0.19.9", ModelInfo("gemma4:e2b", frozenset({"vision", "thinking"}), "gemma4"), False),
        ("0.20.0", ModelInfo("gemma4:e2b", frozenset({"vision", "thinking"}), "gemma4"), True),
        ("0.21.0", ModelInfo("gemma4:e2b", frozenset({"vision", "thinking"}), "gemma4"), True),
        ("0.21.1", ModelInfo("gemma4:e2b", frozenset({"vision", "thinking"}), "gemma4"), False),
        ("0.25.0", ModelInfo("qwen3-vl:4b", frozenset({"vision", "thinking"}), "qwen3vl"), True),
        ("0.31.2", ModelInfo("qwen3-vl:4b", frozenset({"vision", "thinking"}), "qwen3vl"), False),
        ("0.25.0", ModelInfo("llava:7b", frozenset({"vision"}), "llama"), False),
        (None, ModelInfo("gemma4:e2b", frozenset({"vision", "thinking"}), "gemma4"), False),
    ],
)
def test_which_releases_drop_format_for_which_models(
    version: str | None, model: ModelInfo, dropped: bool
) -> None:
    assert drops_format_without_thinking(parse_version(version), model) is dropped


def test_logprobs_arrived_in_0_12_11() -> None:
    assert not serves_logprobs((0, 12, 10))
    assert serves_logprobs((0, 12, 11))
    assert serves_logprobs(None)  # a server that does not say is not accused


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (200, '{"version": "0.21.1"}', "application/json", (0, 21, 1)),
        (404, "404 page not found", "text/plain", None),  # no such route: a proxy, say
        (200, "<html>hello</html>", "text/html", None),
        (200, '["0.21.1"]', "application/json", None),
    ],
)
async def test_the_release_is_read_or_left_unknown(
    serve: Serve, status: int, body: str, content_type: str, expected: Version | None
) -> None:
    url = await serve(answer(status, body, content_type))
    async with create_client(url) as client:
        assert await async_server_version(client) == expected


async def test_a_refused_release_query_is_an_ollama_error(serve: Serve) -> None:
    url = await serve(answer(403, '{"error": "forbidden"}', "application/json"))
    async with create_client(url) as client:
        with pytest.raises(ollama.ResponseError) as err:
            await async_server_version(client)
    assert err.value.status_code == 403
