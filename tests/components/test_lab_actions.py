"""The prompt lab's actions and select against the real teacher service: capturing a camera's
frame as a validation case, choosing a version the lab does not have, and a lab that is away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir

from custom_components.vision_tutor.const import DOMAIN
from custom_components.vision_tutor.teacher import TeacherRequestError
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import RunningService, run_service

from .conftest import SceneCamera, make_entry
from .helpers import fire, setup
from .test_lab import _synced

ACTIVE_PROMPT = "select.127_0_0_1_active_prompt"
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


async def _cases(teacher: RunningService) -> list[dict[str, object]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {teacher.token}"}) as http,
        http.get(f"{teacher.url}/api/v1/validation/cases") as response,
    ):
        cases: list[dict[str, object]] = (await response.json())["cases"]
    return cases


async def test_a_cameras_frame_becomes_a_validation_case_of_the_lab(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    teacher: RunningService,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    before = await _cases(teacher)
    camera.show(fire(library).id)
    response = await hass.services.async_call(
        DOMAIN,
        "add_validation_case",
        {
            "camera": "camera.front_door",
            "name": "kitchen fire",
            "expected_keywords": ["fire"],
            "expected_flags": ["fire"],
        },
        blocking=True,
        return_response=True,
    )
    after = await _cases(teacher)

    assert response is not None
    assert response["name"] == "kitchen fire"
    added = [case for case in after if case["name"] == "kitchen fire"]
    assert len(after) == len(before) + 1
    assert len(added) == 1
    assert added[0]["expected_flags"] == ["fire"]
    # A safety case weighs more unless told otherwise, as the lab's own suite does.
    assert added[0]["weight"] == 1.0
    assert added[0]["kind"] == "image"  # the frame itself, not a description


async def test_a_broken_camera_adds_no_case(
    hass: HomeAssistant, entry: MockConfigEntry, teacher: RunningService, camera: SceneCamera
) -> None:
    before = await _cases(teacher)
    camera.broken = True
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "add_validation_case",
            {"camera": "camera.front_door", "name": "nothing"},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "camera_unavailable"
    assert await _cases(teacher) == before


async def test_choosing_a_version_the_lab_does_not_have_says_so(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    active = await _synced(hass, entry)  # the select is unavailable until the lab answers
    lab = entry.runtime_data.lab
    assert lab is not None
    lab.versions.append("v99")  # a list gone stale: the lab never had it
    entry.runtime_data.host.async_update_listeners()
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "select",
            "select_option",
            {ATTR_ENTITY_ID: ACTIVE_PROMPT, "option": "v99"},
            blocking=True,
        )
    assert err.value.translation_key == "lab_request_failed"
    assert entry.runtime_data.prompt.version == active["version"]


async def test_a_lab_that_is_away_leaves_the_student_and_repairs_alone(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    unused_tcp_port: int,
) -> None:
    entry = await setup(
        hass, make_entry(simulator.url, teacher=(f"http://127.0.0.1:{unused_tcp_port}", "t"))
    )
    lab = entry.runtime_data.lab
    assert lab is not None
    await lab.async_sync()
    await lab.async_check_finetune()
    assert lab.versions == []
    assert entry.runtime_data.prompt.version == "builtin"
    assert not [key for key in ir.async_get(hass).issues if key[0] == DOMAIN]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def _lab(teacher: RunningService, method: str, path: str, body: object = None) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {teacher.token}"}) as http,
        http.request(method, f"{teacher.url}{path}", json=body) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def test_a_prompt_promoted_while_home_assistant_was_off_is_used_at_start(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    teacher: RunningService,
    camera: SceneCamera,
) -> None:
    created = await _lab(teacher, "POST", "/api/v1/prompts", {"text": PROMOTED})
    await _lab(teacher, "POST", f"/api/v1/prompts/{created['version']}/promote")

    entry = await setup(hass, make_entry(simulator.url, teacher=(teacher.url, teacher.token)))
    lab = entry.runtime_data.lab
    assert lab is not None
    await lab.async_sync()  # what setup starts in the background, done here to the end
    await lab.async_sync()  # again: nothing changes

    assert entry.runtime_data.prompt.version == created["version"]
    assert entry.runtime_data.prompt.text == PROMOTED
    assert lab.versions.count(created["version"]) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_without_a_teacher_the_lab_does_nothing_and_says_why(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, make_entry(simulator.url))
    lab = entry.runtime_data.lab
    assert lab is not None
    await lab.async_sync()
    await lab.async_check_finetune()
    with pytest.raises(TeacherRequestError, match="no teacher service"):
        await lab.async_request("GET", "/api/v1/prompts")
    assert lab.versions == []
    assert await hass.config_entries.async_unload(entry.entry_id)
