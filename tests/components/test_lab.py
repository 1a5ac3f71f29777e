"""The integration's side of the prompt lab: promoted prompts reach the student, and the lab
actions and entities, against the real teacher service in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiohttp
import ollama
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event

from benchmarks.prompt_lab import scene_cases
from custom_components.vision_tutor import _dispatch_teacher_event
from custom_components.vision_tutor.const import DOMAIN
from custom_components.vision_tutor.prompts import STUDENT_SYSTEM_PROMPT
from custom_components.vision_tutor.teacher import StreamEvent
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import RunningService, run_service

from .conftest import SceneCamera, make_entry
from .helpers import OBSERVATION, PROMPT_VERSION, coordinator, next_frame, setup

ACTIVE_PROMPT = "select.127_0_0_1_active_prompt"
LAB_PROGRESS = "sensor.127_0_0_1_prompt_lab_progress"
PROMOTED = "You watch a camera. Answer in JSON: summary, observations, safety_flags, confidence."


@pytest.fixture
async def teacher(simulator: RunningSimulator, tmp_path: Path) -> AsyncIterator[RunningService]:
    options = Options(teacher_url=simulator.url, heartbeat_s=0.5, probe_interval_s=0.2)
    async with run_service(options, tmp_path) as running:
        yield running


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    teacher: RunningService,
    camera: SceneCamera,
) -> AsyncIterator[MockConfigEntry]:
    config_entry = await setup(
        hass, make_entry(simulator.url, teacher=(teacher.url, teacher.token))
    )
    yield config_entry
    assert await hass.config_entries.async_unload(config_entry.entry_id)


def _deliver(entry: MockConfigEntry, event: StreamEvent) -> None:
    """Hand an event to the entry as its link to the add-on's event stream does."""
    _dispatch_teacher_event(entry, event)


def _promote(entry: MockConfigEntry, version: str, text: str) -> None:
    """What the add-on's event stream delivers when a prompt is promoted."""
    _deliver(
        entry,
        StreamEvent(9999, "prompt", {"version": version, "text": text, "status": "active"}),
    )


async def _connected(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait until the entry follows the add-on's event stream (its select becomes available)."""
    teacher = entry.runtime_data.teacher
    assert teacher is not None
    if teacher.connected:
        return
    connected = asyncio.Event()

    @callback
    def _changed(_: Event[EventStateChangedData]) -> None:
        if teacher.connected:
            connected.set()

    unsubscribe = async_track_state_change_event(hass, ACTIVE_PROMPT, _changed)
    try:
        async with asyncio.timeout(10):
            await connected.wait()
    finally:
        unsubscribe()


async def _until(
    hass: HomeAssistant, entity_id: str, check: Callable[[State | None], bool], seconds: float = 10
) -> None:
    """Wait until the entity's state passes `check` (at most `seconds`)."""
    if check(hass.states.get(entity_id)):
        return
    done = asyncio.Event()

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        if check(event.data["new_state"]):
            done.set()

    unsubscribe = async_track_state_change_event(hass, entity_id, _changed)
    try:
        async with asyncio.timeout(seconds):
            await done.wait()
    finally:
        unsubscribe()


async def _synced(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Once the entry has caught up with the lab (as it does at setup): the lab's active prompt."""
    lab = entry.runtime_data.lab
    assert lab is not None
    await _connected(hass, entry)
    await lab.async_sync()
    await hass.async_block_till_done()
    active: dict[str, Any] = await lab.async_request("GET", "/api/v1/prompts/active")
    return active


async def test_home_assistant_and_the_lab_name_the_same_prompt(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """The student keeps its built-in prompt, and the lab is given it: both say its version."""
    active = await _synced(hass, entry)

    assert active["version"] != "v1", "not the lab's seed, which the student does not use"
    assert active["text"] == STUDENT_SYSTEM_PROMPT.strip()
    assert entry.runtime_data.prompt.text.strip() == STUDENT_SYSTEM_PROMPT.strip()
    assert hass.states.get(PROMPT_VERSION).state == active["version"]
    assert hass.states.get(ACTIVE_PROMPT).state == active["version"]
    lab = entry.runtime_data.lab
    assert lab is not None
    registered = await lab.async_request("GET", f"/api/v1/prompts/{active['version']}")
    assert registered["parent"] == "v1"

    # A second sync (a reload, a restart) reuses the lab's record instead of adding another.
    assert await hass.config_entries.async_reload(entry.entry_id)
    again = await _synced(hass, entry)
    assert again["version"] == active["version"]
    listing = await lab.async_request("GET", "/api/v1/prompts")
    texts = [p["text"] for p in listing["prompts"]]
    assert texts.count(STUDENT_SYSTEM_PROMPT.strip()) == 1


async def test_a_rollback_to_the_seed_in_the_lab_is_followed(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Whatever the lab makes active is what the student uses and both show, the seed too."""
    await _synced(hass, entry)
    lab = entry.runtime_data.lab
    assert lab is not None
    seed = await lab.async_request("POST", "/api/v1/prompts/rollback")
    assert seed["version"] == "v1"
    await _until(hass, PROMPT_VERSION, lambda state: state is not None and state.state == "v1")
    assert entry.runtime_data.prompt.text == seed["text"]


async def test_a_promoted_prompt_is_sent_with_the_next_frame_and_shown(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera
) -> None:
    await _synced(hass, entry)
    _promote(entry, "v7", PROMOTED)
    sent: list[dict[str, Any]] = []
    chat = ollama.AsyncClient.chat

    async def spy(self: ollama.AsyncClient, *args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs)
        return await chat(self, *args, **kwargs)

    with patch.object(ollama.AsyncClient, "chat", spy):
        await coordinator(entry).async_analyse_now()
        await hass.async_block_till_done()

    system = sent[-1]["messages"][0]
    assert system["role"] == "system"
    assert system["content"] == PROMOTED
    assert hass.states.get(OBSERVATION).attributes["prompt_version"] == "v7"
    assert hass.states.get(PROMPT_VERSION).state == "v7"
    select = hass.states.get(ACTIVE_PROMPT)
    assert select.state == "v7"
    assert "v7" in select.attributes["options"]


async def test_the_promoted_prompt_survives_a_reload(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    await _synced(hass, entry)
    lab = entry.runtime_data.lab
    assert lab is not None
    created = await lab.async_request("POST", "/api/v1/prompts", {"text": PROMOTED})
    await lab.async_request("POST", f"/api/v1/prompts/{created['version']}/promote")
    await _until(
        hass,
        PROMPT_VERSION,
        lambda state: state is not None and state.state == created["version"],
    )
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.prompt.version == created["version"]
    assert entry.runtime_data.prompt.text == PROMOTED


async def test_job_progress_is_shown_on_the_lab_sensor(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    await _connected(hass, entry)
    _deliver(
        entry,
        StreamEvent(
            10_000,
            "job",
            {"job_id": "j1", "kind": "synthesize", "state": "running", "progress": 0.4},
        ),
    )
    await hass.async_block_till_done()
    state = hass.states.get(LAB_PROGRESS)
    assert float(state.state) == 40.0
    assert state.attributes["kind"] == "synthesize"
    assert state.attributes["state"] == "running"


async def test_events_that_are_not_the_labs_are_left_alone(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    lab = entry.runtime_data.lab
    assert lab is not None
    assert not lab.handle_event(StreamEvent(1, "stats", {"queued": 0}))
    # A prompt event without text is ignored rather than blanking the student's prompt.
    lab.handle_event(StreamEvent(2, "prompt", {"version": "v9", "text": " ", "status": "active"}))
    assert entry.runtime_data.prompt.text == STUDENT_SYSTEM_PROMPT


async def test_lab_actions_report_what_the_service_said(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    with pytest.raises(HomeAssistantError, match="prompt lab did not accept") as err:
        await hass.services.async_call(
            DOMAIN, "promote_prompt", {"version": "v404"}, blocking=True, return_response=True
        )
    assert err.value.translation_key == "lab_request_failed"


async def test_lab_actions_need_a_teacher(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, make_entry(simulator.url))
    for action, data in (
        ("synthesize_prompts", {}),
        ("score_prompts", {}),
        ("add_validation_case", {"camera": "camera.front_door", "name": "porch"}),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, action, data, blocking=True, return_response=True
            )
        assert err.value.translation_key == "no_teacher"
    assert hass.states.get(ACTIVE_PROMPT) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_select_is_unavailable_while_the_teacher_is_away(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    active = await _synced(hass, entry)
    teacher = entry.runtime_data.teacher
    assert teacher is not None
    assert hass.states.get(ACTIVE_PROMPT).state == active["version"]
    teacher._set_connected(False)
    await hass.async_block_till_done()
    assert hass.states.get(ACTIVE_PROMPT).state == "unavailable"
    await next_frame(hass, entry)


@contextlib.asynccontextmanager
async def _lab_round_entry(
    hass: HomeAssistant, tmp_path: Path
) -> AsyncIterator[tuple[MockConfigEntry, RunningService]]:
    """An entry whose lab runs fast rounds: a quick simulator (seed 3) as student and teacher."""
    async with (
        run_simulator(time_scale=0.01, seed=3) as simulator,
        run_service(
            Options(teacher_url=simulator.url, student_url=simulator.url, lab_concurrency=4),
            tmp_path,
        ) as teacher,
    ):
        yield (
            await setup(hass, make_entry(simulator.url, teacher=(teacher.url, teacher.token))),
            teacher,
        )


async def test_a_lab_round_from_the_seed_promotes_a_prompt_the_student_then_uses(
    hass: HomeAssistant, socket_enabled: None, camera: SceneCamera, tmp_path: Path
) -> None:
    """The issue's acceptance, end to end: action -> lab round -> promotion -> next frame."""
    # Seed 3 is one where a single round of 8 candidates promotes (see tests/addon).
    async with _lab_round_entry(hass, tmp_path) as (entry, teacher):
        lab = entry.runtime_data.lab
        assert lab is not None
        # The seed was chosen for a round that promotes; the default suite's injection cases
        # would make that a matter of the simulated student's luck (see drop_injection_cases).
        headers = {"Authorization": f"Bearer {teacher.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for case in (await lab.async_request("GET", "/api/v1/validation/cases"))["cases"]:
                if case["injection"]:
                    url = f"{teacher.url}/api/v1/validation/cases/{case['id']}"
                    async with session.delete(url) as deleted:
                        assert deleted.status == 204
        await lab.async_request(
            "POST", "/api/v1/validation/import", {"cases": scene_cases(SceneLibrary.default())}
        )
        # The lab starts from the student's built-in prompt; a user who rolls back to the lab's
        # plain seed has a prompt a round can improve on.
        adopted = await _synced(hass, entry)
        assert (await lab.async_request("POST", "/api/v1/prompts/rollback"))["version"] == "v1"
        await _until(hass, PROMPT_VERSION, lambda state: state is not None and state.state == "v1")

        promoted = asyncio.Event()

        @callback
        def _version_changed(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            if new is not None and new.state not in ("v1", adopted["version"], "unavailable"):
                promoted.set()

        unsubscribe = async_track_state_change_event(hass, PROMPT_VERSION, _version_changed)
        job = await hass.services.async_call(
            DOMAIN, "synthesize_prompts", {"count": 8}, blocking=True, return_response=True
        )
        assert job is not None
        assert job["job_id"]
        try:
            async with asyncio.timeout(60):
                await promoted.wait()
        finally:
            unsubscribe()

        version = hass.states.get(PROMPT_VERSION).state
        active = await lab.async_request("GET", f"/api/v1/prompts/{version}")
        assert active["status"] == "active"
        assert active["parent"] == "v1"
        sent: list[dict[str, Any]] = []
        chat = ollama.AsyncClient.chat

        async def spy(self: ollama.AsyncClient, *args: Any, **kwargs: Any) -> Any:
            sent.append(kwargs)
            return await chat(self, *args, **kwargs)

        with patch.object(ollama.AsyncClient, "chat", spy):
            await coordinator(entry).async_analyse_now()
            await hass.async_block_till_done()
        assert sent[-1]["messages"][0]["content"] == active["text"]
        assert hass.states.get(OBSERVATION).attributes["prompt_version"] == version
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_plateaued_lab_says_fine_tuning_is_justified_in_repairs(
    hass: HomeAssistant,
    socket_enabled: None,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    """One curated example and one round are the whole history here (the rule's thresholds are
    options of the add-on); the integration raises the notice when the round is done."""
    options = Options(
        teacher_url="http://127.0.0.1:1",  # replaced below
        finetune_min_examples=1,
        finetune_rounds=1,
        finetune_epsilon=1.0,
        lab_concurrency=4,
        batch_window_ms=0,
    )
    async with run_simulator(time_scale=0.01, seed=3) as simulator:
        options = options.model_copy(
            update={"teacher_url": simulator.url, "student_url": simulator.url}
        )
        async with run_service(options, tmp_path) as teacher:
            entry = await setup(
                hass, make_entry(simulator.url, teacher=(teacher.url, teacher.token))
            )
            issue_id = f"finetune_ready_{entry.entry_id}"
            lab = entry.runtime_data.lab
            assert lab is not None
            await _connected(hass, entry)
            assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

            # A teacher verdict on an escalated frame is the curated example.
            fire = next(s for s in library.scenes if s.safety_flags == ("fire",))
            camera.show(fire.id)
            reviewed = asyncio.Event()
            unsubscribe = hass.bus.async_listen(
                "vision_tutor_teacher_review", callback(lambda _: reviewed.set())
            )
            await coordinator(entry).async_analyse_now()
            async with asyncio.timeout(30):
                await reviewed.wait()
            unsubscribe()

            await lab.async_request(
                "POST", "/api/v1/validation/import", {"cases": scene_cases(library)}
            )
            await hass.services.async_call(
                DOMAIN, "synthesize_prompts", {"count": 2}, blocking=True, return_response=True
            )
            async with asyncio.timeout(60):
                while issue_registry.async_get_issue(DOMAIN, issue_id) is None:
                    await hass.async_block_till_done()
                    await asyncio.sleep(0.05)
            issue = issue_registry.async_get_issue(DOMAIN, issue_id)
            assert issue.translation_key == "finetune_ready"
            assert issue.translation_placeholders["url"].endswith("/api/v1/finetune/export.jsonl")
            assert await hass.config_entries.async_unload(entry.entry_id)


async def test_after_a_synthesis_round_the_select_offers_its_candidates(
    hass: HomeAssistant, socket_enabled: None, camera: SceneCamera, tmp_path: Path
) -> None:
    """Promoted or not, the round's candidates are versions a user can choose in the select."""
    async with _lab_round_entry(hass, tmp_path) as (entry, _teacher):
        lab = entry.runtime_data.lab
        assert lab is not None
        before = await _synced(hass, entry)
        offered_before = hass.states.get(ACTIVE_PROMPT).attributes["options"]
        assert before["version"] in offered_before

        job = await hass.services.async_call(
            DOMAIN, "synthesize_prompts", {"count": 8}, blocking=True, return_response=True
        )
        assert job is not None
        await _until(
            hass,
            LAB_PROGRESS,
            lambda state: state is not None and state.attributes.get("state") in ("done", "failed"),
            seconds=60,
        )
        assert hass.states.get(LAB_PROGRESS).attributes["state"] == "done"

        listing = await lab.async_request("GET", "/api/v1/prompts")
        candidates = [p["version"] for p in listing["prompts"] if p["source"] == "teacher"]
        assert candidates, "the round registered candidates"
        await _until(
            hass,
            ACTIVE_PROMPT,
            lambda state: state is not None and set(candidates) <= set(state.attributes["options"]),
        )
        offered = hass.states.get(ACTIVE_PROMPT).attributes["options"]
        assert sorted(offered) == sorted(p["version"] for p in listing["prompts"])
        assert await hass.config_entries.async_unload(entry.entry_id)
