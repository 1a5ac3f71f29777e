"""The safety-alert blueprint, loaded by Home Assistant and run against a real camera's entities."""

from __future__ import annotations

import asyncio
from pathlib import Path
import shutil
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from homeassistant.components.automation import DOMAIN as AUTOMATION_DOMAIN
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint import models as blueprint_models
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict

from custom_components.vision_tutor.const import CONF_STUDENT_TIMEOUT
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import (
    SAFETY_EVENT,
    STUDENT,
    coordinator,
    fire,
    hazard_on,
    setup,
    verdict_on_display,
)

BLUEPRINT = (
    Path(__file__).parents[2] / "blueprints" / "automation" / "vision_tutor" / "safety_alert.yaml"
)
FRAME = "image.front_door_analysed_frame"


@pytest.fixture
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config folder holding the blueprint where an installation by URL puts it."""
    target = tmp_path / "blueprints" / "automation" / "vision_tutor" / BLUEPRINT.name
    target.parent.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target)
    hass.config.config_dir = str(tmp_path)
    return tmp_path


async def _automation(hass: HomeAssistant, **inputs: Any) -> list[ServiceCall]:
    """An automation from the blueprint, notifying a test notify action; its calls."""
    calls = async_mock_service(hass, "notify", "test_phone")
    assert await async_setup_component(
        hass,
        AUTOMATION_DOMAIN,
        {
            AUTOMATION_DOMAIN: {
                "id": "safety_alert",
                "alias": "Front door safety alert",
                "use_blueprint": {
                    "path": "vision_tutor/safety_alert.yaml",
                    "input": {
                        "safety_event": SAFETY_EVENT,
                        "notify_action": "notify.test_phone",
                        **inputs,
                    },
                },
            }
        },
    )
    await hass.async_block_till_done()
    state = hass.states.get("automation.front_door_safety_alert")
    assert state is not None
    assert state.state == STATE_ON, "the blueprint did not load"
    return calls


def _teacher_confirms(entry: MockConfigEntry) -> None:
    verdict_on_display(entry, "Flames are climbing the living room curtains.", ["fire"])


def test_the_blueprint_is_valid_for_home_assistant() -> None:
    raw = load_yaml_dict(str(BLUEPRINT))  # Home Assistant's loader, which knows !input
    blueprint = blueprint_models.Blueprint(
        raw, expected_domain=AUTOMATION_DOMAIN, schema=AUTOMATION_BLUEPRINT_SCHEMA
    )
    assert blueprint.name == "Vision Tutor safety alert"
    assert set(blueprint.inputs) == {"safety_event", "teacher_only", "notify_action", "cooldown"}
    # Installable by URL: Home Assistant keeps the source URL to re-import it.
    assert str(blueprint.metadata["source_url"]).endswith(
        "blueprints/automation/vision_tutor/safety_alert.yaml"
    )


async def test_a_hazard_notifies_with_the_summary_and_the_frame(
    hass: HomeAssistant,
    config_dir: Path,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
    hass_client: ClientSessionGenerator,
) -> None:
    calls = await _automation(hass)
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    await hass.async_block_till_done()

    assert len(calls) == 1
    data = calls[0].data
    flags = hass.states.get(SAFETY_EVENT).attributes["flags"]
    assert "fire" in flags
    assert data["title"] == f"Hazard at Front door: {', '.join(flags)}"
    summary = hass.states.get("sensor.front_door_observation").state
    assert data["message"].startswith(f"{summary}\nFlagged by the student")
    assert "Confidence" in data["message"]
    # The attachment is the hazard's frame as kept in the event history, not the live one:
    # it stays this alert's frame after newer frames are analysed.
    event = hass.states.get(SAFETY_EVENT).attributes
    assert data["data"]["image"] == event["snapshot_url"]
    assert data["data"]["image"].startswith(f"/api/vision_tutor/history/{entry.entry_id}/")
    assert data["data"]["entity_id"] == FRAME
    assert data["data"]["url"] == data["data"]["clickAction"] == event["media_browser_url"]
    assert event["media_browser_url"].startswith("/media-browser/browser/")
    client = await hass_client()
    response = await client.get(data["data"]["image"])
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert await response.read() == coordinator(entry).data.analysis.frame.jpeg


async def test_the_cool_down_holds_back_the_teacher_confirmation_then_lets_alerts_through(
    hass: HomeAssistant,
    config_dir: Path,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    calls = await _automation(hass, cooldown={"seconds": 1})
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    _teacher_confirms(entry)
    await hass.async_block_till_done()
    assert len(calls) == 1, "the confirmation came within the cool-down"

    await asyncio.sleep(1.1)  # the simulator runs in this loop: real time, not frozen time
    _teacher_confirms(entry)
    await hass.async_block_till_done()
    assert len(calls) == 2
    assert calls[1].data["message"].splitlines()[1].startswith("Confirmed by the teacher.")


async def test_only_teacher_confirmations_when_asked(
    hass: HomeAssistant,
    config_dir: Path,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    calls = await _automation(hass, teacher_only=True)
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    await hass.async_block_till_done()
    assert calls == [], "the student alone does not alert"

    _teacher_confirms(entry)
    await hass.async_block_till_done()
    assert len(calls) == 1
    assert calls[0].data["title"].startswith("Hazard at Front door: fire")
    assert "Flames are climbing the living room curtains." in calls[0].data["message"]
    assert "Confirmed by the teacher." in calls[0].data["message"]


async def test_a_persistent_notification_shows_the_frame_inline(
    hass: HomeAssistant,
    config_dir: Path,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    await _automation(hass, notify_action="notify.persistent_notification")
    assert await async_setup_component(hass, "notify", {})
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    await hass.async_block_till_done()

    notifications = [
        n
        for n in hass.data["persistent_notification"].values()
        if n["title"].startswith("Hazard at Front door: ")
    ]
    assert len(notifications) == 1
    frame_url = hass.states.get(FRAME).attributes["entity_picture"]
    assert f"![Analysed frame]({frame_url})" in notifications[0]["message"]
    browser = hass.states.get(SAFETY_EVENT).attributes["media_browser_url"]
    assert f"[Open the event in the media browser]({browser})" in notifications[0]["message"]


async def test_a_reload_of_the_camera_does_not_alert(
    hass: HomeAssistant,
    config_dir: Path,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    calls = await _automation(hass, cooldown={"seconds": 0})
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    await hass.async_block_till_done()
    assert len(calls) == 1

    # The event entity goes unavailable and comes back with its last event: not a new hazard.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(SAFETY_EVENT).state not in ("unavailable", "unknown")
    assert len(calls) == 1


async def test_a_knife_after_a_cleared_fire_is_alerted_as_a_weapon_only(
    hass: HomeAssistant,
    config_dir: Path,
    simulator: RunningSimulator,
    camera: SceneCamera,
) -> None:
    entry = await setup(
        hass, make_entry(simulator.url, interval=0, options={CONF_STUDENT_TIMEOUT: 60})
    )
    calls = await _automation(hass, cooldown={"seconds": 0})
    answer = '{{"summary": "{}", "observations": ["hall"], "safety_flags": {}, "confidence": 0.9}}'
    fire_answer = answer.format("Flames on the hall rug.", '["fire"]')
    calm = answer.format("An empty hall.", "[]")
    knife = answer.format("A person holds a knife.", '["weapon"]')
    simulator.script(STUDENT, fire_answer, fire_answer, calm, calm, calm, knife, knife)
    for _ in range(7):
        await coordinator(entry).async_analyse_now()
        await hass.async_block_till_done()

    assert [call.data["title"] for call in calls] == [
        "Hazard at Front door: fire",
        "Hazard at Front door: weapon",
    ]
