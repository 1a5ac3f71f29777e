"""The frame path in Home Assistant: the gate, the re-look, the limiter, the phases, the queue.

Frames here are photo-like (benchmarks.photo_frames) where the change gate is what is tested,
and the simulator's scenes elsewhere.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from benchmarks.photo_frames import Person, Room
from custom_components.vision_tutor import coordinator as coordinator_module
from custom_components.vision_tutor.const import (
    CONF_CAMERA_ENTITY,
    CONF_MAX_CONCURRENT,
    CONF_RELOOK_MINUTES,
    CONF_SCAN_INTERVAL,
    CONF_STUDENT_TIMEOUT,
    DOMAIN,
    SUBENTRY_CAMERA,
)
from custom_components.vision_tutor.coordinator import image_limiter
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import OBSERVATION, chat_requests, coordinator, next_frame, routine, setup


async def test_a_person_appearing_in_a_still_room_is_analysed(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    room = Room(1280, 720, seed=9)
    camera.payload = room.frame()
    entry = await setup(hass, make_entry(simulator.url, options={CONF_STUDENT_TIMEOUT: 60.0}))
    skipped = coordinator(entry).skipped
    # The simulator does not know this room: until it answers clean (a flagged or unreadable
    # answer keeps the camera watched frame by frame), every frame is analysed.
    for _ in range(6):
        camera.payload = room.frame()
        await next_frame(hass, entry)
        if skipped["unchanged"]:
            break
    assert skipped["unchanged"] == 1
    requests = chat_requests(simulator.stats)

    for frame in (room.frame(), room.frame(flicker=0.05), room.frame(banding=0.04)):
        camera.payload = frame
        await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == requests
    assert skipped["unchanged"] == 4

    camera.payload = room.frame(person=Person(0.03, 2))
    await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == requests + 1


async def test_a_still_scene_is_analysed_again_after_the_relook_interval(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    options = {CONF_RELOOK_MINUTES: 5, CONF_STUDENT_TIMEOUT: 60.0}
    entry = await setup(hass, make_entry(simulator.url, options=options))
    camera_coordinator = coordinator(entry)
    analysed_at = camera_coordinator.data.analysis.analysed_at
    requests = chat_requests(simulator.stats)

    await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == requests

    # Five minutes on (the coordinator gives the gate the time): looked at again.
    later = analysed_at + timedelta(minutes=5)
    with patch.object(coordinator_module, "dt_util", SimpleNamespace(utcnow=lambda: later)):
        await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == requests + 1
    assert camera_coordinator.data.analysis.analysed_at == later
    assert hass.states.get(OBSERVATION).attributes["analysed_at"] == later


async def test_a_frame_that_waited_its_whole_timeout_is_skipped_not_sent(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    options = {CONF_STUDENT_TIMEOUT: 0.5, CONF_MAX_CONCURRENT: 1}
    entry = await setup(hass, make_entry(simulator.url, options=options))
    before = hass.states.get(OBSERVATION)
    requests = chat_requests(simulator.stats)
    camera.show(routine(library, 3).id)

    # Another camera's frame holds the only turn with the student past this frame's timeout.
    semaphore = entry.runtime_data.student._semaphore
    await semaphore.acquire()
    try:
        await next_frame(hass, entry)
        assert coordinator(entry).skipped["queued_too_long"] == 1
        assert chat_requests(simulator.stats) == requests
        assert hass.states.get(OBSERVATION) == before  # the last result stays, still available

        # Asked for by an action, the same wait is an error that says why.
        with pytest.raises(HomeAssistantError) as raised:
            await coordinator(entry).async_analyse_now()
        assert raised.value.translation_key == "student_queue_timeout"
    finally:
        semaphore.release()

    # With the student free again, the frame is analysed.
    await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == requests + 1
    assert coordinator(entry).last_update_success


def _entry(url: str, cameras: int, interval: int) -> MockConfigEntry:
    """An entry with `cameras` subentries, all watching the same camera entity."""
    entry = make_entry(url, cameras=0)
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data=dict(entry.data),
        subentries_data=_cameras(cameras, interval),
    )


def _cameras(count: int, interval: int) -> list[ConfigSubentryData]:
    return [
        ConfigSubentryData(
            data={CONF_CAMERA_ENTITY: "camera.front_door", CONF_SCAN_INTERVAL: interval},
            subentry_id=f"camera{index}",
            subentry_type=SUBENTRY_CAMERA,
            title=f"Camera {index}",
            unique_id=f"camera.front_door_{index}",
        )
        for index in range(count)
    ]


async def test_cameras_take_turns_within_their_interval(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, _entry(simulator.url, 4, 8))
    cameras = list(entry.runtime_data.cameras.values())

    assert [c.phase for c in cameras] == [0.0, 2.0, 4.0, 6.0]
    # Each one's next refresh falls on its own slot of the 8 s grid, 2 s apart.
    whens = [c._unsub_refresh.__self__.when() for c in cameras]  # type: ignore[union-attr]
    assert sorted(round(when % 8, 3) for when in whens) == [0.0, 2.0, 4.0, 6.0]
    # None of them waits longer than one interval (and a little) for its first turn.
    now = hass.loop.time()
    assert all(now < when <= now + 8 + 0.8 for when in whens)


async def test_all_cameras_share_one_image_limiter(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, _entry(simulator.url, 6, 30))
    limiter = image_limiter(hass)
    cameras = list(entry.runtime_data.cameras.values())
    assert all(c.limiter is limiter for c in cameras)

    await asyncio.gather(*(c.async_refresh() for c in cameras))
    await asyncio.gather(*(c.async_analyse_now() for c in cameras))
    assert 1 <= limiter.peak <= limiter.workers <= 2
    assert (limiter.in_use, limiter.waiting) == (0, 0)
    assert hass.data.get(f"{DOMAIN}_image_limiter") is limiter
