"""The recorder: a grabbed frame that is skipped writes nothing; a new observation does."""

from __future__ import annotations

from datetime import datetime

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from homeassistant.components.recorder import Recorder, get_instance, history
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

from custom_components.vision_tutor.const import CONF_STUDENT_TIMEOUT
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import chat_requests, coordinator, next_frame, routine, setup


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder must start before Home Assistant does, so it comes first here."""


async def _recorded_rows(hass: HomeAssistant, entry: MockConfigEntry, since: datetime) -> int:
    """State rows the recorder wrote for the entry's entities since `since`."""
    await async_wait_recording_done(hass)
    entity_ids = [
        e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    ]
    changes = await get_instance(hass).async_add_executor_job(
        lambda: history.get_significant_states(
            hass,
            since,
            None,
            entity_ids,
            significant_changes_only=False,
            include_start_time_state=False,
        )
    )
    return sum(len(states) for states in changes.values())


async def test_skipped_frames_write_no_recorder_rows(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    # A generous timeout: the simulator's first answer waits for it to hash its scene library.
    entry = await setup(hass, make_entry(simulator.url, options={CONF_STUDENT_TIMEOUT: 60.0}))
    await async_wait_recording_done(hass)
    since = dt_util.utcnow()
    requests = chat_requests(simulator.stats)

    for _ in range(5):
        await next_frame(hass, entry)

    assert chat_requests(simulator.stats) == requests
    assert coordinator(entry).skipped["unchanged"] == 5
    assert await _recorded_rows(hass, entry, since) == 0

    # A new observation is recorded.
    camera.show(routine(library, 3).id)
    await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == requests + 1
    assert await _recorded_rows(hass, entry, since) >= 1
