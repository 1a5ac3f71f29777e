"""Entities, their states and attributes, and the devices they belong to (snapshot tests)."""

from __future__ import annotations

import re
from typing import Any
from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props
from syrupy.types import PropertyPath

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er

from custom_components.vision_tutor.const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    CONF_TEACHER_URL,
    DOMAIN,
    TEACHER_MODE_ADDON,
    TEACHER_MODE_MANUAL,
    TEACHER_MODE_NONE,
)
from custom_components.vision_tutor.entity import hub_configuration_url
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SUBENTRY_ID, SceneCamera, make_entry
from .helpers import (
    ANALYSE_NOW,
    ANALYSED_FRAME,
    ANALYSIS_SWITCH,
    CONFIDENCE,
    CONNECTIVITY,
    ESCALATIONS_PER_HOUR,
    OBSERVATION,
    PROMPT_VERSION,
    SAFETY,
    SAFETY_EVENT,
    fire,
    next_frame,
    setup,
    volatile_matcher,
)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots of states and registry entries as Home Assistant's own tests write them."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def _matcher(*, data: Any, path: PropertyPath) -> Any:
    """Volatile attributes, and an event entity's state (when it last fired)."""
    if path and path[-1][0] == "state" and isinstance(data, str) and _TIMESTAMP.match(data):
        return "<volatile timestamp>"
    return volatile_matcher(data=data, path=path)


def _assert_platform(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion
) -> None:
    """snapshot_platform, with the analysis timestamps and latency masked."""
    entries = er.async_entries_for_config_entry(entity_registry, ENTRY_ID)
    assert entries
    for entity_entry in entries:
        assert entity_entry == snapshot(name=f"{entity_entry.entity_id}-entry")
        assert entity_entry.disabled_by is None
        state = hass.states.get(entity_entry.entity_id)
        assert state is not None
        assert state == snapshot(name=f"{entity_entry.entity_id}-state", matcher=_matcher)


@pytest.mark.parametrize(
    "platform",
    [Platform.SENSOR, Platform.BINARY_SENSOR, Platform.EVENT, Platform.SWITCH, Platform.BUTTON],
)
async def test_entities_of_a_calm_camera(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    platform: Platform,
) -> None:
    """A routine scene: a summary, its confidence, a safe sensor, no event, a connected host."""
    with patch("custom_components.vision_tutor.PLATFORMS", [platform]):
        await setup(hass, make_entry(simulator.url))
    _assert_platform(hass, entity_registry, snapshot)


async def test_states_while_a_hazard_persists(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
    snapshot: SnapshotAssertion,
) -> None:
    camera.show(fire(library).id)
    await next_frame(hass, entry)
    await next_frame(hass, entry)

    assert hass.states.get(SAFETY).state == STATE_ON
    for entity_id in (OBSERVATION, CONFIDENCE, SAFETY, SAFETY_EVENT, ESCALATIONS_PER_HOUR):
        assert hass.states.get(entity_id) == snapshot(name=entity_id, matcher=_matcher)


async def test_a_hub_device_and_a_camera_device_under_it(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    hub = device_registry.async_get_device_by_identifier((DOMAIN, ENTRY_ID), ENTRY_ID)
    front_door = device_registry.async_get_device_by_identifier((DOMAIN, SUBENTRY_ID), ENTRY_ID)
    assert hub is not None
    assert front_door is not None
    assert hub.configuration_url == simulator.url
    assert hub == snapshot(name="hub", exclude=props("configuration_url"))
    assert front_door == snapshot(name="camera")

    assert front_door.via_device_id == hub.id
    assert hub.via_device_id is None
    assert front_door.config_subentry_id == SUBENTRY_ID
    assert hub.config_subentry_id is None

    by_device: dict[str, set[str]] = {}
    for entity_entry in er.async_entries_for_config_entry(entity_registry, ENTRY_ID):
        by_device.setdefault(entity_entry.device_id or "", set()).add(entity_entry.entity_id)
        expected_subentry = SUBENTRY_ID if entity_entry.device_id == front_door.id else None
        assert entity_entry.config_subentry_id == expected_subentry, entity_entry.entity_id
    assert by_device == {
        hub.id: {CONNECTIVITY, ESCALATIONS_PER_HOUR, PROMPT_VERSION},
        front_door.id: {
            OBSERVATION,
            CONFIDENCE,
            SAFETY,
            SAFETY_EVENT,
            ANALYSED_FRAME,
            ANALYSIS_SWITCH,
            ANALYSE_NOW,
        },
    }


async def test_hub_entity_ids_come_from_the_hubs_name(
    hass: HomeAssistant, simulator: RunningSimulator, device_registry: dr.DeviceRegistry
) -> None:
    """Set up as a user does (the config flow): ids from the hub's name, not host and port."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    for step in (
        {CONF_STUDENT_URL: simulator.url},
        {CONF_STUDENT_MODEL: "gemma4:e2b"},
        {CONF_TEACHER_MODE: TEACHER_MODE_NONE},
    ):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], step)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    entry = result["result"]
    hub = device_registry.async_get_device_by_identifier((DOMAIN, entry.entry_id), entry.entry_id)
    assert hub is not None
    assert hub.name == "Vision Tutor"
    assert hass.states.get("binary_sensor.vision_tutor_student_connectivity").state == STATE_ON
    assert hass.states.get("sensor.vision_tutor_escalations_per_hour") is not None
    assert not [
        state.entity_id for state in hass.states.async_all() if "127_0_0_1" in state.entity_id
    ]


@pytest.mark.parametrize(
    ("teacher", "expected"),
    [
        # The add-on: its ingress page in Home Assistant (the Supervisor's host is the slug).
        (
            {
                CONF_TEACHER_MODE: TEACHER_MODE_ADDON,
                CONF_TEACHER_URL: "http://0a1b2c3d-vision-tutor:8765",
            },
            "homeassistant://hassio/ingress/0a1b2c3d_vision_tutor",
        ),
        (
            {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL, CONF_TEACHER_URL: "http://192.168.1.5:8765"},
            "http://192.168.1.5:8765",
        ),
        ({CONF_TEACHER_MODE: TEACHER_MODE_NONE}, "http://192.168.1.20:11434"),
    ],
)
def test_the_hub_links_to_the_teachers_pages(teacher: dict[str, str], expected: str) -> None:
    data = {CONF_STUDENT_URL: "http://192.168.1.20:11434", **teacher}
    assert hub_configuration_url(data) == expected


async def test_a_hub_with_a_teacher_service_links_to_it(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    device_registry: dr.DeviceRegistry,
) -> None:
    teacher_url = "http://127.0.0.1:9"  # nothing answers: the cameras go on student-only
    await setup(hass, make_entry(simulator.url, teacher=(teacher_url, "token")))
    hub = device_registry.async_get_device_by_identifier((DOMAIN, ENTRY_ID), ENTRY_ID)
    assert hub is not None
    assert hub.configuration_url == teacher_url
