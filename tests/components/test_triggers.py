"""When a camera is analysed: the motion trigger, and the change gate that skips unchanged frames."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant

import custom_components.vision_tutor
from custom_components.vision_tutor.const import CONF_CHANGE_SENSITIVITY
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import (
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


async def _motion(hass: HomeAssistant, state: str, **attributes: object) -> None:
    hass.states.async_set(MOTION, state, attributes)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_motion_turning_on_analyses_the_camera(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera, library: SceneLibrary
) -> None:
    await _motion(hass, STATE_OFF)
    entry = await setup(hass, make_entry(simulator.url, motion=MOTION, interval=0))
    assert coordinator(entry).update_interval is None
    requests = chat_requests(simulator.stats)

    camera.show(routine(library, 1).id)
    await _motion(hass, STATE_ON)
    await simulator_idle(simulator)
    assert chat_requests(simulator.stats) == requests + 1
    assert simulator.stats.scenes.get(routine(library, 1).id) == 1

    # Still on (an attribute changed): no new analysis.
    await _motion(hass, STATE_ON, friendly_name="Porch motion")
    assert chat_requests(simulator.stats) == requests + 1
    # Off: nothing to do.
    await _motion(hass, STATE_OFF)
    assert chat_requests(simulator.stats) == requests + 1
    # On again: analysed again, past the change gate (the scene has not changed).
    await _motion(hass, STATE_ON)
    await simulator_idle(simulator)
    assert chat_requests(simulator.stats) == requests + 2
    assert simulator.stats.scenes.get(routine(library, 1).id) == 2


async def test_a_motion_sensor_that_appears_already_on_triggers(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, make_entry(simulator.url, motion=MOTION, interval=0))
    requests = chat_requests(simulator.stats)

    await _motion(hass, STATE_ON)

    assert chat_requests(simulator.stats) == requests + 1
    assert entry.runtime_data.cameras


async def test_motion_on_a_broken_camera_makes_its_entities_unavailable(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    await _motion(hass, STATE_OFF)
    await setup(hass, make_entry(simulator.url, motion=MOTION, interval=0))
    requests = chat_requests(simulator.stats)
    camera.broken = True

    await _motion(hass, STATE_ON)

    assert hass.states.get(OBSERVATION).state == STATE_UNAVAILABLE
    assert hass.states.get(SAFETY).state == STATE_UNAVAILABLE
    assert chat_requests(simulator.stats) == requests

    camera.broken = False
    await _motion(hass, STATE_OFF)
    await _motion(hass, STATE_ON)
    assert hass.states.get(OBSERVATION).state != STATE_UNAVAILABLE
    assert chat_requests(simulator.stats) == requests + 1


async def test_an_unchanged_calm_frame_is_not_analysed_again(
    hass: HomeAssistant, entry: MockConfigEntry, simulator: RunningSimulator
) -> None:
    before = hass.states.get(OBSERVATION)
    checked = coordinator(entry).data.last_checked
    requests = chat_requests(simulator.stats)
    woken: list[None] = []
    unsubscribe = coordinator(entry).async_add_listener(lambda: woken.append(None))
    await asyncio.sleep(0.001)  # so that "last checked" can move

    await next_frame(hass, entry)
    unsubscribe()

    assert chat_requests(simulator.stats) == requests
    after = hass.states.get(OBSERVATION)
    # Nothing the recorder would store moved: not even the state's last update.
    assert after == before
    assert after.last_updated == before.last_updated
    assert coordinator(entry).data.last_checked > checked
    assert coordinator(entry).skipped["unchanged"] == 1
    assert woken == []  # the entities were not even asked to write their state


async def test_a_changed_scene_is_analysed(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    before = hass.states.get(OBSERVATION)
    requests = chat_requests(simulator.stats)
    other = routine(library, 3)
    camera.show(other.id)

    await next_frame(hass, entry)

    assert chat_requests(simulator.stats) == requests + 1
    assert simulator.stats.scenes.get(other.id) == 1
    after = hass.states.get(OBSERVATION)
    assert after.attributes["analysed_at"] > before.attributes["analysed_at"]
    assert coordinator(entry).data.last_checked == after.attributes["analysed_at"]
    assert "last_checked" not in after.attributes


async def test_a_flagged_frame_keeps_being_analysed(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    """A still hazard must build up the window: flagged frames skip the gate."""
    camera.show(fire(library).id)
    await next_frame(hass, entry)
    requests = chat_requests(simulator.stats)

    for count in range(1, 4):
        await next_frame(hass, entry)
        assert chat_requests(simulator.stats) == requests + count
    assert hass.states.get(SAFETY).state == STATE_ON


async def test_full_sensitivity_analyses_every_frame(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, make_entry(simulator.url, options={CONF_CHANGE_SENSITIVITY: 1.0}))
    requests = chat_requests(simulator.stats)

    await next_frame(hass, entry)
    await next_frame(hass, entry)

    assert chat_requests(simulator.stats) == requests + 2


def test_the_options_form_describes_sensitivity_the_way_the_gate_uses_it() -> None:
    """1 analyses every frame (see the test above); the form must not promise the opposite."""
    strings = json.loads(
        (Path(custom_components.vision_tutor.__file__).parent / "translations/en.json").read_text()
    )
    performance = strings["options"]["step"]["init"]["sections"]["performance"]
    description = performance["data_description"][CONF_CHANGE_SENSITIVITY]
    assert "0 (only big changes)" in description
    assert "1 (every frame" in description
