"""After a restart, a camera analysed only on motion or on request shows its restored state
until its next analysis (an interval-0 camera is not analysed at setup)."""

from __future__ import annotations

from typing import Any

from pytest_homeassistant_custom_component.common import mock_restore_cache_with_extra_data

from homeassistant.core import HomeAssistant, State

from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import CONFIDENCE, OBSERVATION, chat_requests, coordinator, setup

SUMMARY = "A parcel on the porch."
ATTRIBUTES: dict[str, Any] = {
    "observations": ["porch", "parcel"],
    "safety_flags": [],
    "confidence": 0.9,
    "effective_confidence": 0.88,
    "source": "student",
    "escalated": False,
    "escalation_reason": None,
    "prompt_version": "builtin",
    "model": "gemma4:e2b",
}


async def test_an_interval_0_camera_shows_its_restored_state_until_it_is_analysed(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(OBSERVATION, SUMMARY, ATTRIBUTES),
                {"native_value": SUMMARY, "native_unit_of_measurement": None},
            ),
            (
                State(CONFIDENCE, "88.0", {"unit_of_measurement": "%"}),
                {"native_value": 88.0, "native_unit_of_measurement": "%"},
            ),
        ],
    )

    entry = await setup(hass, make_entry(simulator.url, interval=0))

    assert chat_requests(simulator.stats) == 0, "interval 0: no analysis until asked"
    observation = hass.states.get(OBSERVATION)
    assert observation.state == SUMMARY
    assert observation.attributes == {
        **ATTRIBUTES,
        "restored": True,
        "friendly_name": "Front door Observation",
    }
    assert hass.states.get(CONFIDENCE).state == "88.0"

    await coordinator(entry).async_analyse_now()
    await hass.async_block_till_done()
    observation = hass.states.get(OBSERVATION)
    assert observation.state != SUMMARY
    assert "restored" not in observation.attributes
