"""Per-camera controls: the analysis switch (a pause that survives restarts), the analyse-now
button, and the camera's own overrides of the hub's routing options."""

from __future__ import annotations

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import ServiceValidationError

from custom_components.vision_tutor.const import (
    CONF_AUDIT_RATE,
    CONF_MIN_CONFIDENCE,
    CONF_SAFETY_KEYWORDS,
    DOMAIN,
)
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import CAMERA_ENTITY, SceneCamera, make_entry
from .helpers import (
    ANALYSE_NOW,
    ANALYSIS_SWITCH,
    OBSERVATION,
    SAFETY,
    chat_requests,
    coordinator,
    fire,
    next_frame,
    routine,
    setup,
    simulator_idle,
)

MOTION = "binary_sensor.porch_motion"


async def _switch(hass: HomeAssistant, service: str) -> None:
    await hass.services.async_call(
        SWITCH_DOMAIN, service, {ATTR_ENTITY_ID: ANALYSIS_SWITCH}, blocking=True
    )
    await hass.async_block_till_done()


async def _press(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: ANALYSE_NOW}, blocking=True
    )
    await hass.async_block_till_done()


async def test_a_paused_camera_sends_no_frame_and_does_not_say_no_hazard(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    assert hass.states.get(ANALYSIS_SWITCH).state == STATE_ON
    assert hass.states.get(SAFETY).state == STATE_OFF
    summary = hass.states.get(OBSERVATION).state

    await _switch(hass, SERVICE_TURN_OFF)
    assert hass.states.get(ANALYSIS_SWITCH).state == STATE_OFF
    safety = hass.states.get(SAFETY)
    assert safety.state == STATE_UNKNOWN, "nobody looks at the frames: not 'no hazard'"
    assert safety.attributes["paused"] is True
    observation = hass.states.get(OBSERVATION)
    assert observation.state == summary, "the last answer stays on display"
    assert observation.attributes["paused"] is True

    before = chat_requests(simulator.stats)
    camera.show(fire(library).id)
    await next_frame(hass, entry)
    await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == before
    assert hass.states.get(SAFETY).state == STATE_UNKNOWN

    # Back on: it looks at once, and sees the fire the pause hid.
    await _switch(hass, SERVICE_TURN_ON)
    await simulator_idle(simulator)
    await hass.async_block_till_done()
    assert chat_requests(simulator.stats) == before + 1
    assert hass.states.get(SAFETY).attributes["paused"] is False
    assert hass.states.get(OBSERVATION).attributes["paused"] is False
    assert hass.states.get(SAFETY).state in (STATE_ON, STATE_OFF)


async def test_motion_is_ignored_while_paused(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    hass.states.async_set(MOTION, STATE_OFF)
    await setup(hass, make_entry(simulator.url, motion=MOTION, interval=0))
    await _switch(hass, SERVICE_TURN_OFF)

    hass.states.async_set(MOTION, STATE_ON)
    await hass.async_block_till_done(wait_background_tasks=True)
    await simulator_idle(simulator)
    assert chat_requests(simulator.stats) == 0


async def test_analyse_now_button(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    before = chat_requests(simulator.stats)
    # An unchanged frame is analysed too: the button goes past the change gate.
    await _press(hass)
    assert chat_requests(simulator.stats) == before + 1

    camera.show(routine(library, 1).id)
    await _press(hass)
    assert chat_requests(simulator.stats) == before + 2
    assert simulator.stats.scenes.get(routine(library, 1).id) == 1


async def test_analyse_now_is_refused_while_paused(
    hass: HomeAssistant, entry: MockConfigEntry, simulator: RunningSimulator
) -> None:
    await _switch(hass, SERVICE_TURN_OFF)
    before = chat_requests(simulator.stats)

    with pytest.raises(ServiceValidationError) as raised:
        await _press(hass)
    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == "camera_paused"
    assert raised.value.translation_placeholders == {"camera": CAMERA_ENTITY}
    with pytest.raises(ServiceValidationError, match="paused"):
        await hass.services.async_call(
            DOMAIN, "analyze", {"camera": CAMERA_ENTITY}, blocking=True, return_response=True
        )
    assert chat_requests(simulator.stats) == before


async def test_a_pause_survives_a_restart(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    mock_restore_cache(hass, [State(ANALYSIS_SWITCH, STATE_OFF)])

    await setup(hass, make_entry(simulator.url))

    # An interval camera is analysed at setup; a paused one is not, not even once.
    assert chat_requests(simulator.stats) == 0
    assert hass.states.get(ANALYSIS_SWITCH).state == STATE_OFF
    assert hass.states.get(SAFETY).state == STATE_UNKNOWN


async def test_a_switched_on_camera_restores_on(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    mock_restore_cache(hass, [State(ANALYSIS_SWITCH, STATE_ON)])
    await setup(hass, make_entry(simulator.url))
    assert chat_requests(simulator.stats) == 1
    assert hass.states.get(ANALYSIS_SWITCH).state == STATE_ON


async def test_a_camera_uses_its_own_minimum_confidence(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    """The hub's 0.72 lets an ordinary answer through; this camera's own 0.99 does not."""
    await setup(
        hass,
        make_entry(
            simulator.url,
            options={CONF_MIN_CONFIDENCE: 0.72},
            overrides={CONF_MIN_CONFIDENCE: 0.99},
        ),
    )
    attributes = hass.states.get(OBSERVATION).attributes
    assert attributes["escalation_reason"] == "low_confidence"
    assert "< 0.99" in attributes["escalation_detail"]


async def test_empty_overrides_are_the_hubs_options(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(
        hass,
        make_entry(
            simulator.url,
            options={CONF_MIN_CONFIDENCE: 0.99, CONF_SAFETY_KEYWORDS: ["fire"]},
            overrides={CONF_MIN_CONFIDENCE: None, CONF_SAFETY_KEYWORDS: [], CONF_AUDIT_RATE: None},
        ),
    )
    attributes = hass.states.get(OBSERVATION).attributes
    assert attributes["escalation_reason"] == "low_confidence"
    assert "< 0.99" in attributes["escalation_detail"]
    policy = coordinator(entry).pipeline.settings.policy
    assert policy.safety_keywords == ("fire",)


async def test_a_camera_with_its_own_keywords(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    """A kitchen camera that only cares about smoke: fire in the words is not its trigger."""
    entry = await setup(
        hass, make_entry(simulator.url, overrides={CONF_SAFETY_KEYWORDS: ["smoke"]})
    )
    policy = coordinator(entry).pipeline.settings.policy
    assert policy.safety_keywords == ("smoke",)
    assert policy.min_confidence == 0.72, "what the camera leaves empty is the hub's"
