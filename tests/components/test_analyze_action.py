"""The vision_tutor.analyze action: a camera analysed now, with the result as response data."""

from __future__ import annotations

from datetime import datetime

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr

from custom_components.vision_tutor.const import DOMAIN, EVENT_ESCALATION
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import CAMERA_ENTITY, ENTRY_ID, SUBENTRY_ID, SceneCamera
from .helpers import CONFIDENCE, OBSERVATION, SAFETY, chat_requests, fire

RESPONSE_KEYS = {
    "camera",
    "summary",
    "observations",
    "safety_flags",
    "confidence",
    "effective_confidence",
    "calibrated_confidence",
    "teacher",
    "student_error",
    "escalated",
    "escalation_reason",
    "escalation_detail",
    "safety",
    "source",
    "model",
    "prompt_version",
    "latency_ms",
    "analysed_at",
}


async def _analyze(hass: HomeAssistant, **data: object) -> dict[str, object]:
    response = await hass.services.async_call(
        DOMAIN, "analyze", data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


async def test_analyze_by_camera_entity_returns_what_the_entities_show(
    hass: HomeAssistant, entry: MockConfigEntry, simulator: RunningSimulator
) -> None:
    before = chat_requests(simulator.stats)
    response = await _analyze(hass, camera=CAMERA_ENTITY)

    # Past the change gate: the unchanged frame was analysed again.
    assert chat_requests(simulator.stats) == before + 1
    assert set(response) == RESPONSE_KEYS
    observation = hass.states.get(OBSERVATION)
    assert response["camera"] == CAMERA_ENTITY
    assert response["summary"] == observation.state
    for key in (
        "observations",
        "safety_flags",
        "confidence",
        "effective_confidence",
        "student_error",
        "escalated",
        "escalation_reason",
        "escalation_detail",
        "source",
        "model",
        "prompt_version",
        "latency_ms",
    ):
        assert response[key] == observation.attributes[key], key
    assert datetime.fromisoformat(response["analysed_at"]) == observation.attributes["analysed_at"]
    assert response["safety"] == {"on": False, "flags": [], "confirmed_by_teacher": False}
    assert response["model"] == "gemma4:e2b"
    assert response["source"] == "student"
    assert float(hass.states.get(CONFIDENCE).state) == round(
        response["effective_confidence"] * 100, 1
    )
    # Rounded for reading, to the three decimals the detail compares with.
    assert response["effective_confidence"] == round(response["effective_confidence"], 3)
    assert response["calibrated_confidence"] is None  # no teacher: nothing to calibrate from


async def test_analyze_by_the_cameras_device(
    hass: HomeAssistant, entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    device = device_registry.async_get_device_by_identifier((DOMAIN, SUBENTRY_ID), ENTRY_ID)
    assert device is not None

    response = await _analyze(hass, device_id=device.id)

    assert response["camera"] == CAMERA_ENTITY
    assert response["summary"] == hass.states.get(OBSERVATION).state


async def test_analyze_reports_a_hazard_in_its_response(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    camera.show(fire(library).id)
    responses = [await _analyze(hass, camera=CAMERA_ENTITY) for _ in range(3)]

    flagged = [r for r in responses if r["escalation_reason"] == "safety"]
    assert flagged
    assert all(r["escalated"] for r in flagged)
    last = responses[-1]
    assert last["safety"]["on"] is (hass.states.get(SAFETY).state == "on")
    assert last["safety"]["flags"] == hass.states.get(SAFETY).attributes["flags"]


async def test_force_teacher_escalates_a_calm_frame(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    calm = await _analyze(hass, camera=CAMERA_ENTITY)
    assert calm["escalated"] is False
    assert calm["teacher"] == "not sent (no escalation signal)"
    assert escalations == []

    forced = await _analyze(hass, camera=CAMERA_ENTITY, force_teacher=True)

    assert forced["escalated"] is True
    # This entry has no teacher service: the response says what became of the frame.
    assert forced["teacher"] == "not reviewed (no teacher is configured)"
    assert forced["escalation_reason"] == "audit"
    assert forced["escalation_detail"].startswith("requested by an action; no signal")
    assert len(escalations) == 1
    assert escalations[0].data["reason"] == "audit"
    assert escalations[0].data["priority"] == 1
    assert escalations[0].data["detail"] == forced["escalation_detail"]
    attributes = hass.states.get(OBSERVATION).attributes
    assert attributes["escalated"] is True
    assert attributes["teacher_unavailable"] is True


async def test_force_teacher_keeps_the_reason_of_a_frame_that_escalates_anyway(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    camera.show(fire(library).id)
    response = await _analyze(hass, camera=CAMERA_ENTITY, force_teacher=True)

    assert response["escalated"] is True
    assert response["escalation_reason"] == "safety"
    assert [event.data["reason"] for event in escalations] == ["safety"]


async def test_analyze_without_asking_for_the_response(
    hass: HomeAssistant, entry: MockConfigEntry, simulator: RunningSimulator
) -> None:
    before = chat_requests(simulator.stats)
    assert (
        await hass.services.async_call(DOMAIN, "analyze", {"camera": CAMERA_ENTITY}, blocking=True)
        is None
    )
    assert chat_requests(simulator.stats) == before + 1


async def test_analyze_an_unknown_camera(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await _analyze(hass, camera="camera.garage")

    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == "camera_not_monitored"
    assert raised.value.translation_placeholders == {"camera": "camera.garage"}
    assert "camera.garage is not a camera monitored" in str(raised.value)


async def test_analyze_a_device_that_is_not_a_vision_tutor_camera(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await _analyze(hass, device_id="0123456789abcdef")

    assert raised.value.translation_key == "device_not_a_camera"
    assert "Device 0123456789abcdef is not a Vision Tutor camera device" in str(raised.value)


async def test_analyze_the_hub_device(
    hass: HomeAssistant, entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """The device selector offers the hub too; it gets the same clear answer."""
    hub = device_registry.async_get_device_by_identifier((DOMAIN, ENTRY_ID), ENTRY_ID)
    assert hub is not None

    with pytest.raises(ServiceValidationError) as raised:
        await _analyze(hass, device_id=hub.id)

    assert raised.value.translation_key == "device_not_a_camera"
    assert raised.value.translation_placeholders == {"device_id": hub.id}


async def test_analyze_needs_a_camera_or_a_device(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A translated error that says what is missing, not the validator's text."""
    with pytest.raises(ServiceValidationError) as raised:
        await _analyze(hass, force_teacher=True)
    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == "no_camera_given"
    assert "camera" in str(raised.value)
    assert "at least one of" not in str(raised.value)


async def test_analyze_a_broken_camera(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera
) -> None:
    camera.broken = True

    with pytest.raises(HomeAssistantError) as raised:
        await _analyze(hass, camera=CAMERA_ENTITY)

    assert not isinstance(raised.value, ServiceValidationError)
    assert raised.value.translation_key == "camera_unavailable"
    assert "Could not get a usable frame from camera.front_door" in str(raised.value)
    assert hass.states.get(OBSERVATION).state == STATE_UNAVAILABLE

    camera.broken = False
    response = await _analyze(hass, camera=CAMERA_ENTITY)
    assert hass.states.get(OBSERVATION).state == response["summary"]


async def test_analyze_when_the_entry_is_not_loaded(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)

    with pytest.raises(ServiceValidationError) as raised:
        await _analyze(hass, camera=CAMERA_ENTITY)

    assert raised.value.translation_key == "camera_not_monitored"
    assert "loaded Vision Tutor entry" in str(raised.value)
