"""Shared helpers for the entity, pipeline, action and lifecycle tests of the integration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.types import PropertyPath

from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant

from custom_components.vision_tutor.coordinator import CameraCoordinator
from simulator.scenes import Scene, SceneLibrary
from simulator.server import RunningSimulator

from .conftest import SUBENTRY_ID

OBSERVATION = "sensor.front_door_observation"
CONFIDENCE = "sensor.front_door_confidence"
SAFETY = "binary_sensor.front_door_safety"
SAFETY_EVENT = "event.front_door_safety_event"
ANALYSED_FRAME = "image.front_door_analysed_frame"
ANALYSIS_SWITCH = "switch.front_door_analysis"
ANALYSE_NOW = "button.front_door_analyse_now"
CONNECTIVITY = "binary_sensor.127_0_0_1_student_connectivity"
ESCALATIONS_PER_HOUR = "sensor.127_0_0_1_escalations_per_hour"
PROMPT_VERSION = "sensor.127_0_0_1_active_prompt_version"

CAMERA_ENTITIES = (OBSERVATION, CONFIDENCE, SAFETY, SAFETY_EVENT)
"""A camera's entities that go unavailable with it (its last analysed frame stays on show)."""
STUDENT = "gemma4:e2b"

VOLATILE = frozenset(
    {
        "analysed_at",
        "last_checked",
        "latency_ms",
        "since",
        "last_triggered",
        # The event history's ids carry the frame's time and a random part.
        "snapshot",
        "media_content_id",
        "snapshot_url",
        "media_browser_url",
        "bytes",  # the history's size: its records hold those times
        "frames_per_hour",  # the calibration's: hour boundaries fall anywhere in a run
    }
)
"""Attributes that change from run to run: replaced by their type in snapshots."""


def volatile_matcher(*, data: Any, path: PropertyPath) -> Any:
    """A syrupy matcher: timestamps and latencies become `<volatile TYPE>` in a snapshot."""
    if path and path[-1][0] in VOLATILE and data is not None:
        return f"<volatile {type(data).__name__}>"
    return data


def coordinator(entry: MockConfigEntry) -> CameraCoordinator:
    """The front door's camera coordinator."""
    return entry.runtime_data.cameras[SUBENTRY_ID]


async def next_frame(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """What the scan interval does: grab a frame and analyse it if the change gate lets it.

    (Frozen time would also freeze the simulator's answers, which run in the same event loop.)
    """
    await coordinator(entry).async_refresh()
    await hass.async_block_till_done()


async def hazard_on(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Frames (of a hazard the camera shows) until the safety sensor turns on."""
    for _ in range(5):
        await next_frame(hass, entry)
        if hass.states.get(SAFETY).state == STATE_ON:
            await hass.async_block_till_done()
            return
    pytest.fail("the safety sensor did not turn on")


def verdict_on_display(entry: MockConfigEntry, summary: str, flags: list[str]) -> None:
    """The teacher's verdict on the front door's frame on display, as its stream brings it."""
    coordinator(entry).async_apply_verdict(
        {
            "idempotency_key": coordinator(entry).data.escalation_id,
            "reason": "safety",
            "agrees_with_student": True,
            "verdict": {
                "summary": summary,
                "observations": ["stove", "pan"],
                "safety_flags": flags,
                "confidence": 0.9,
            },
        }
    )


async def setup(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """Add and load an entry."""
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def pick(library: SceneLibrary, predicate: Callable[[Scene], bool]) -> Scene:
    """The first scene of the library that fits (scenes are chosen by kind and flags, not id)."""
    return next(scene for scene in library.scenes if predicate(scene))


def routine(library: SceneLibrary, index: int = 0) -> Scene:
    """An easy routine scene with no flags."""
    scenes = [s for s in library.scenes if s.kind == "routine" and s.difficulty == "easy"]
    return scenes[index]


def fire(library: SceneLibrary) -> Scene:
    """An easy edge scene whose only flag is fire."""
    return pick(
        library,
        lambda s: s.kind == "edge" and s.safety_flags == ("fire",) and s.difficulty == "easy",
    )


async def simulator_idle(simulator: RunningSimulator) -> None:
    """Until the simulator has booked the answers it sent (it counts scenes after replying)."""
    for _ in range(200):
        if simulator.stats.running == 0:
            return
        await asyncio.sleep(0.01)


def chat_requests(stats: Any) -> int:
    """Chat requests the simulator's student received."""
    return int(stats.models[STUDENT].requests)


@pytest.fixture(autouse=True)
def fast_teacher_retries() -> Iterator[None]:
    """Teacher reconnects and outbox retries in tenths of a second (import it to use it)."""
    with (
        patch("custom_components.vision_tutor.teacher.RECONNECT_DELAYS", (0.05,)),
        patch("custom_components.vision_tutor.outbox.BACKOFF_BASE_S", 0.05),
        patch("custom_components.vision_tutor.outbox.BACKOFF_MAX_S", 0.2),
    ):
        yield
