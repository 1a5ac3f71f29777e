"""End to end with the real teacher service (the add-on) in-process and the simulator as both
models: escalations go out, verdicts come back over the event stream and change the entities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.const import STATE_ON
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.vision_tutor.const import (
    EVENT_ESCALATION,
    EVENT_SAFETY,
    EVENT_TEACHER_REVIEW,
)
from simulator.profiles import Faults
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import RunningService, run_service

from .conftest import SUBENTRY_ID, SceneCamera, make_entry
from .helpers import fast_teacher_retries  # noqa: F401  (autouse fixture)

OBSERVATION = "sensor.front_door_observation"
SAFETY = "binary_sensor.front_door_safety"
QUEUE_DEPTH = "sensor.127_0_0_1_teacher_queue_depth"
OUTBOX = "sensor.127_0_0_1_teacher_outbox"


def _options(simulator: RunningSimulator, **overrides: Any) -> Options:
    return Options(
        teacher_url=simulator.url,
        batch_window_ms=0,
        retry_base_s=0.05,
        retry_max_s=0.2,
        probe_interval_s=0.2,
        heartbeat_s=0.5,
        **overrides,
    )


@asynccontextmanager
async def _teacher(
    simulator: RunningSimulator, data: Path, port: int = 0, **overrides: Any
) -> AsyncIterator[RunningService]:
    async with run_service(_options(simulator, **overrides), data, port=port) as running:
        yield running


async def _wait_for(hass: HomeAssistant, event_type: str, match: Callable[[Event], bool]) -> Event:
    """The first bus event of a type that matches, waiting at most ten seconds."""
    found: asyncio.Future[Event] = hass.loop.create_future()

    @callback
    def _listener(event: Event) -> None:
        if match(event) and not found.done():
            found.set_result(event)

    unsubscribe = hass.bus.async_listen(event_type, _listener)
    try:
        async with asyncio.timeout(10):
            return await found
    finally:
        unsubscribe()


async def _analyse(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await entry.runtime_data.cameras[SUBENTRY_ID].async_analyse_now()
    await hass.async_block_till_done()


async def test_a_safety_frame_is_confirmed_by_the_teacher(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
) -> None:
    fire = next(s for s in library.scenes if s.safety_flags == ("fire",))
    async with _teacher(simulator, tmp_path) as teacher:
        entry = make_entry(simulator.url, teacher=(teacher.url, teacher.token))
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        safety_events = async_capture_events(hass, EVENT_SAFETY)
        escalations = async_capture_events(hass, EVENT_ESCALATION)
        entity_events: list[str] = []
        unsubscribe = async_track_state_change_event(
            hass,
            "event.front_door_safety_event",
            callback(lambda e: entity_events.append(e.data["new_state"].attributes["event_type"])),
        )

        camera.show(fire.id)
        reviewed = asyncio.ensure_future(
            _wait_for(hass, EVENT_TEACHER_REVIEW, lambda e: bool(e.data["flags"]))
        )
        await _analyse(hass, entry)
        review = await reviewed
        await hass.async_block_till_done()

        assert review.data["camera"] == "camera.front_door"
        assert "fire" in review.data["flags"]
        # (The frame analysed at setup may still be on its way; this is the fire frame's.)
        assert [e.data["outcome"] for e in escalations if e.data["reason"] == "safety"] == [
            "queued"
        ]
        observation = hass.states.get(OBSERVATION)
        assert observation.attributes["source"] == "teacher"
        assert "fire" in observation.attributes["safety_flags"]
        safety = hass.states.get(SAFETY)
        # One flagged student frame is not enough on its own; the teacher's word is.
        assert safety.state == STATE_ON
        assert safety.attributes["confirmed_by_teacher"] is True
        assert [e.data["type"] for e in safety_events][-2:] == [
            "hazard_detected",
            "teacher_confirmed",
        ]
        # The event entity shows each of them, so automations on it see both.
        unsubscribe()
        assert entity_events[-2:] == ["hazard_detected", "teacher_confirmed"]
        assert hass.states.get(QUEUE_DEPTH).state == "0"

        # The event history keeps the frame with the real teacher's verdict, and the review
        # event points at it (Media → Vision Tutor → Front door → the event).
        snapshot = observation.attributes["snapshot"]
        assert review.data["media_content_id"] == snapshot
        kept = entry.runtime_data.history.get(SUBENTRY_ID, snapshot.rsplit("/", 1)[-1])
        assert kept.verdict == "confirmed"
        assert kept.teacher.summary == observation.state
        assert kept.reason == "safety"
        # The add-on's pages name the camera as its user does.
        stored = await teacher.service.queue.get(review.data["review_id"])
        assert stored is not None
        assert (stored.camera, stored.camera_name) == ("camera.front_door", "Front door")

        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_teacher_dismisses_a_false_alarm_and_clears_the_sensor(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
) -> None:
    calm = next(s for s in library.scenes if s.kind == "routine")
    async with _teacher(simulator, tmp_path) as teacher:
        entry = make_entry(simulator.url, teacher=(teacher.url, teacher.token))
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data.cameras[SUBENTRY_ID]
        camera.show(calm.id)
        await _analyse(hass, entry)
        # As if the student had flagged this calm frame twice: the sensor is on.
        window = coordinator.pipeline.window
        window.add_frame(("fire",), coordinator.data.analysis.analysed_at)
        window.add_frame(("fire",), coordinator.data.analysis.analysed_at)
        assert window.state.on

        dismissed = asyncio.ensure_future(
            _wait_for(hass, EVENT_SAFETY, lambda e: e.data["type"] == "teacher_dismissed")
        )
        await hass.services.async_call(
            "vision_tutor",
            "analyze",
            {"camera": "camera.front_door", "force_teacher": True},
            blocking=True,
            return_response=True,
        )
        await dismissed
        await hass.async_block_till_done()
        assert not window.state.on
        assert hass.states.get(SAFETY).state == "off"
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_with_the_teacher_down_the_cameras_go_on_and_catch_up_on_reconnect(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    fire = next(s for s in library.scenes if s.safety_flags == ("fire",))
    # The teacher model hangs, so the review stays queued while the service goes away.
    simulator.set_faults("gemma4:26b", Faults(stall_s=30))
    async with _teacher(simulator, tmp_path, unused_tcp_port) as teacher:
        url, token = teacher.url, teacher.token
        entry = make_entry(simulator.url, teacher=(url, token))
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        camera.show(fire.id)
        queued = asyncio.ensure_future(
            _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["teacher"] == "queued")
        )
        await _analyse(hass, entry)
        await queued
    # The service is gone: analysis goes on student-only; the escalation waits in the outbox.
    retrying = asyncio.ensure_future(
        _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["outcome"] == "retrying")
    )
    await _analyse(hass, entry)
    await retrying
    await hass.async_block_till_done()
    observation = hass.states.get(OBSERVATION)
    assert observation.attributes["source"] == "student"
    assert observation.attributes["teacher_unavailable"] is True
    assert observation.attributes["teacher"].startswith("sending: retrying (unreachable")
    assert hass.states.get(QUEUE_DEPTH).state == "unavailable"
    assert hass.states.get(OUTBOX).state == "1"

    simulator.reset_faults()
    delivered = asyncio.ensure_future(
        _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["outcome"] == "queued")
    )
    reviewed = asyncio.ensure_future(
        _wait_for(hass, EVENT_TEACHER_REVIEW, lambda e: len(e.data["flags"]) > 0)
    )
    async with _teacher(simulator, tmp_path, unused_tcp_port):
        # The review accepted before the outage survived it, and the escalation made during
        # it reaches the service once it is back: both verdicts come back.
        await delivered
        review = await reviewed
        assert "fire" in review.data["flags"]
        await hass.async_block_till_done()
        assert hass.states.get(SAFETY).attributes["confirmed_by_teacher"] is True
        assert hass.states.get(OUTBOX).state == "0"
        assert await hass.config_entries.async_unload(entry.entry_id)
