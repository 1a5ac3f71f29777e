"""A camera's frames through the student, the policy and the window, to entities and events."""

from __future__ import annotations

from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant

from custom_components.vision_tutor.const import EVENT_ESCALATION, EVENT_SAFETY
from simulator.scenes import SceneLibrary

from .conftest import SUBENTRY_ID, SceneCamera

OBSERVATION = "sensor.front_door_observation"
CONFIDENCE = "sensor.front_door_confidence"
SAFETY = "binary_sensor.front_door_safety"
SAFETY_EVENT = "event.front_door_safety_event"


async def _next_frame(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """What the scan interval does: grab a frame and analyse it if the gate lets it through.

    (Frozen time would also freeze the simulator's answers, which run in the same event loop.)
    """
    await entry.runtime_data.cameras[SUBENTRY_ID].async_refresh()
    await hass.async_block_till_done()


async def test_a_routine_scene_becomes_a_calm_observation(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    state = hass.states.get(OBSERVATION)
    assert state is not None
    assert state.state
    attributes = state.attributes
    assert attributes["source"] == "student"
    assert attributes["model"] == "gemma4:e2b"
    assert attributes["prompt_version"] == "builtin"
    assert attributes["safety_flags"] == []
    assert attributes["observations"]
    assert 0.72 <= attributes["effective_confidence"] <= 1
    assert hass.states.get(SAFETY).state == STATE_OFF
    confidence = hass.states.get(CONFIDENCE)
    assert confidence.attributes["unit_of_measurement"] == "%"
    assert float(confidence.state) == round(attributes["effective_confidence"] * 100, 1)


async def test_a_fire_turns_the_safety_sensor_on_after_two_frames_and_fires_events(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    safety_events = async_capture_events(hass, EVENT_SAFETY)
    fire = next(s for s in library.scenes if s.safety_flags == ("fire",))
    camera.show(fire.id)

    await _next_frame(hass, entry)
    assert escalations, "a flagged frame escalates"
    assert escalations[-1].data["reason"] == "safety"
    assert escalations[-1].data["teacher"] == "unavailable"
    first = hass.states.get(SAFETY).state

    await _next_frame(hass, entry)
    await _next_frame(hass, entry)
    safety = hass.states.get(SAFETY)
    assert safety.state == STATE_ON, (first, safety)
    assert "fire" in safety.attributes["flags"]
    assert safety.attributes["confirmed_by_teacher"] is False
    assert [e.data["type"] for e in safety_events] == ["hazard_detected"]
    assert safety_events[0].data["camera"] == "camera.front_door"
    event_state = hass.states.get(SAFETY_EVENT)
    assert event_state.attributes["event_type"] == "hazard_detected"
    assert "fire" in event_state.attributes["flags"]


async def test_a_broken_camera_makes_the_entities_unavailable_until_it_recovers(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera
) -> None:
    camera.broken = True
    await _next_frame(hass, entry)
    assert hass.states.get(OBSERVATION).state == STATE_UNAVAILABLE
    assert hass.states.get(SAFETY).state == STATE_UNAVAILABLE

    camera.broken = False
    await _next_frame(hass, entry)
    assert hass.states.get(OBSERVATION).state != STATE_UNAVAILABLE


async def test_a_camera_returning_something_that_is_not_an_image_is_unavailable(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera
) -> None:
    camera.payload = b"<html>login required</html>"
    await _next_frame(hass, entry)
    assert hass.states.get(OBSERVATION).state == STATE_UNAVAILABLE
