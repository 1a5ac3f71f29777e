"""Unload, reload, options, cameras added and removed, restored states and diagnostics."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
    setup_test_component_platform,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.types import PropertyPath

from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util

from custom_components.vision_tutor.const import (
    CONF_CAMERA_ENTITY,
    CONF_MIN_CONFIDENCE,
    CONF_MOTION_ENTITY,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    DOMAIN,
    SUBENTRY_CAMERA,
)
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SUBENTRY_ID, SceneCamera, make_entry
from .helpers import (
    ANALYSED_FRAME,
    CAMERA_ENTITIES,
    CONNECTIVITY,
    ESCALATIONS_PER_HOUR,
    OBSERVATION,
    PROMPT_VERSION,
    chat_requests,
    coordinator,
    fire,
    next_frame,
    routine,
    setup,
    volatile_matcher,
)

GARDEN = "camera.garden"
ALL_ENTITIES = (*CAMERA_ENTITIES, CONNECTIVITY, ESCALATIONS_PER_HOUR, PROMPT_VERSION)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots as Home Assistant's own tests write them."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


class GardenCamera(SceneCamera):
    """A second camera."""

    _attr_name = "Garden"
    _attr_unique_id = "garden"


@pytest.fixture
async def garden(hass: HomeAssistant, library: SceneLibrary) -> tuple[SceneCamera, SceneCamera]:
    """`camera.front_door` and `camera.garden`, both showing routine scenes."""
    front_door, garden = SceneCamera(library), GardenCamera(library)
    garden.show(routine(library, 2).id)
    setup_test_component_platform(hass, "camera", [front_door, garden])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()
    return front_door, garden


async def test_unload_makes_the_entities_unavailable_and_stops_analysing(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    # Loaded, the 30 s interval analyses a changed scene.
    camera.show(routine(library, 1).id)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
    await hass.async_block_till_done(wait_background_tasks=True)
    requests = chat_requests(simulator.stats)
    assert simulator.stats.scenes.get(routine(library, 1).id) == 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.NOT_LOADED
    for entity_id in (*ALL_ENTITIES, ANALYSED_FRAME):
        assert hass.states.get(entity_id).state == STATE_UNAVAILABLE, entity_id
    camera.show(routine(library, 2).id)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert chat_requests(simulator.stats) == requests


async def test_reload_brings_the_entities_back(
    hass: HomeAssistant, entry: MockConfigEntry, simulator: RunningSimulator
) -> None:
    requests = chat_requests(simulator.stats)

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert chat_requests(simulator.stats) == requests + 1
    for entity_id in (*ALL_ENTITIES, ANALYSED_FRAME):
        assert hass.states.get(entity_id).state != STATE_UNAVAILABLE, entity_id


async def test_changing_the_options_reloads_the_entry_with_them(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    before = entry.runtime_data
    assert hass.states.get(OBSERVATION).attributes["escalation_reason"] is None

    hass.config_entries.async_update_entry(entry, options={CONF_MIN_CONFIDENCE: 0.99})
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not before
    assert coordinator(entry).pipeline.settings.policy.min_confidence == 0.99
    # The first frame after the reload is judged by the new threshold.
    assert hass.states.get(OBSERVATION).attributes["escalation_reason"] == "low_confidence"


def _garden_subentry() -> ConfigSubentry:
    return ConfigSubentry(
        data=MappingProxyType(
            {
                CONF_CAMERA_ENTITY: GARDEN,
                CONF_SCAN_INTERVAL: 30,
                CONF_MOTION_ENTITY: None,
                CONF_SCENE_DESCRIPTION: "garden, lawn and shed",
            }
        ),
        subentry_type=SUBENTRY_CAMERA,
        title="Garden",
        unique_id=GARDEN,
    )


async def test_adding_and_removing_a_camera(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    garden: tuple[SceneCamera, SceneCamera],
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    entry = await setup(hass, make_entry(simulator.url))
    hub = device_registry.async_get_device_by_identifier((DOMAIN, ENTRY_ID), ENTRY_ID)
    subentry = _garden_subentry()

    assert hass.config_entries.async_add_subentry(entry, subentry)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    garden_device = device_registry.async_get_device_by_identifier(
        (DOMAIN, subentry.subentry_id), ENTRY_ID
    )
    assert garden_device is not None
    assert garden_device.name == "Garden"
    assert garden_device.via_device_id == hub.id
    assert garden_device.config_subentry_id == subentry.subentry_id
    garden_observation = hass.states.get("sensor.garden_observation")
    assert garden_observation is not None
    assert garden_observation.state not in (STATE_UNAVAILABLE, "")
    assert simulator.stats.scenes.get(routine(garden[0].library, 2).id) == 1

    assert hass.config_entries.async_remove_subentry(entry, SUBENTRY_ID)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert list(entry.runtime_data.cameras) == [subentry.subentry_id]
    assert device_registry.async_get_device_by_identifier((DOMAIN, SUBENTRY_ID), ENTRY_ID) is None
    remaining = {e.entity_id for e in er.async_entries_for_config_entry(entity_registry, ENTRY_ID)}
    assert not remaining & {*CAMERA_ENTITIES, ANALYSED_FRAME}
    for entity_id in (*CAMERA_ENTITIES, ANALYSED_FRAME):
        assert hass.states.get(entity_id) is None, entity_id
    assert hass.states.get("sensor.garden_observation").state != STATE_UNAVAILABLE
    assert hass.states.get(CONNECTIVITY).state == "on"


RESTORED_ATTRIBUTES: dict[str, Any] = {
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


def _restore_cache(hass: HomeAssistant) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(OBSERVATION, "A parcel on the porch.", RESTORED_ATTRIBUTES),
                {"native_value": "A parcel on the porch.", "native_unit_of_measurement": None},
            ),
        ],
    )


async def test_a_camera_down_at_start_stays_unavailable_despite_a_restored_state(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    """A remembered summary is not passed off as what the camera sees now.

    (A camera on an interval is analysed at setup, so its being down is known at once; one
    analysed only on motion shows its restored state until then, see test_restore.py.)
    """
    _restore_cache(hass)
    camera.broken = True

    entry = await setup(hass, make_entry(simulator.url))

    assert hass.states.get(OBSERVATION).state == STATE_UNAVAILABLE
    camera.broken = False
    await next_frame(hass, entry)
    observation = hass.states.get(OBSERVATION)
    assert observation.state not in (STATE_UNAVAILABLE, "A parcel on the porch.")
    assert "restored" not in observation.attributes
    assert observation.attributes["analysed_at"] is not None


def _diagnostics_matcher(*urls: str) -> Any:
    def matcher(*, data: Any, path: PropertyPath) -> Any:
        if isinstance(data, str) and data in urls:
            return f"<url {urls.index(data)}>"
        return volatile_matcher(data=data, path=path)

    return matcher


async def test_diagnostics_without_the_teacher_token_or_the_hosts(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    unused_tcp_port: int,
    snapshot: SnapshotAssertion,
) -> None:
    teacher_url = f"http://127.0.0.1:{unused_tcp_port}"
    entry = await setup(
        hass, make_entry(simulator.url, teacher=(teacher_url, "secret-teacher-token"))
    )
    camera.show(fire(library).id)
    await next_frame(hass, entry)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert "secret-teacher-token" not in str(diagnostics)
    for host in (simulator.url, teacher_url):
        assert host.removeprefix("http://") not in str(diagnostics)
    for key in ("teacher_token", "student_url", "teacher_url"):
        assert diagnostics["entry"]["data"][key] == "**REDACTED**"
    assert diagnostics == snapshot(matcher=_diagnostics_matcher(simulator.url, teacher_url))
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_count_the_escalations_of_the_last_hour(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entry: MockConfigEntry,
) -> None:
    now = dt_util.utcnow()
    entry.runtime_data.escalations.record(now - timedelta(hours=2))
    entry.runtime_data.escalations.record(now - timedelta(minutes=5))

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diagnostics["escalations_last_hour"] == 1
