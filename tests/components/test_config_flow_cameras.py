"""Camera subentries: one per monitored camera, added, edited and removed without a new entry."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.config_entries import SOURCE_USER, ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import config_validation as cv, entity_registry as er

from custom_components.vision_tutor.const import (
    CONF_AUDIT_RATE,
    CONF_CAMERA_ENTITY,
    CONF_MIN_CONFIDENCE,
    CONF_MOTION_ENTITY,
    CONF_SAFETY_KEYWORDS,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    DOMAIN,
    SUBENTRY_CAMERA,
    TEACHER_MODE_NONE,
)
from custom_components.vision_tutor.overrides import CAMERA_OVERRIDES

from .test_config_flow_helpers import (
    SetupCalls,
    flow_translations_fixture,  # noqa: F401  (fixture)
    no_entry_setup_fixture,  # noqa: F401  (fixture)
)

FRONT_DOOR = "camera.front_door"
GARDEN = "camera.garden"
PORCH_MOTION = "binary_sensor.porch_motion"
NO_OVERRIDES = dict.fromkeys(CAMERA_OVERRIDES)
"""A camera that overrides none of the hub's options."""


@pytest.fixture(autouse=True)
def _checked(flow_translations: None, no_entry_setup: SetupCalls) -> None:
    """Every test checks its flow's translations; entries load without coordinators."""


@pytest.fixture
def entities(hass: HomeAssistant) -> None:
    """Two cameras and a motion sensor, as their integrations would show them."""
    hass.states.async_set(FRONT_DOOR, "idle", {"friendly_name": "Front door"})
    hass.states.async_set(GARDEN, "streaming", {"friendly_name": "Garden"})
    hass.states.async_set(
        PORCH_MOTION, "off", {"friendly_name": "Porch motion", "device_class": "motion"}
    )


def camera(entity_id: str, title: str, **data: Any) -> ConfigSubentryData:
    return ConfigSubentryData(
        data={
            CONF_CAMERA_ENTITY: entity_id,
            CONF_SCAN_INTERVAL: 30,
            CONF_MOTION_ENTITY: None,
            CONF_SCENE_DESCRIPTION: "",
            **data,
        },
        subentry_type=SUBENTRY_CAMERA,
        title=title,
        unique_id=entity_id,
    )


@pytest.fixture
async def entry(hass: HomeAssistant, entities: None) -> MockConfigEntry:
    """A loaded entry that already monitors the front door."""
    config_entry = MockConfigEntry(
        domain=DOMAIN,
        title="127.0.0.1:11434",
        unique_id="http://127.0.0.1:11434",
        data={
            CONF_STUDENT_URL: "http://127.0.0.1:11434",
            CONF_STUDENT_MODEL: "gemma4:e2b",
            CONF_TEACHER_MODE: TEACHER_MODE_NONE,
        },
        subentries_data=[camera(FRONT_DOOR, "Front door")],
    )
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry


def subentry_id(entry: MockConfigEntry, entity_id: str) -> str:
    return next(
        str(sid)
        for sid, sub in entry.subentries.items()
        if sub.data[CONF_CAMERA_ENTITY] == entity_id
    )


async def add(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": SOURCE_USER}
    )


async def submit(hass: HomeAssistant, result: Any, data: dict[str, Any]) -> Any:
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


def suggested(result: Any) -> dict[str, Any]:
    return {
        marker.schema: marker.description["suggested_value"]
        for marker in result["data_schema"].schema
        if (marker.description or {}).get("suggested_value") is not None
    }


async def test_add_camera_with_interval_motion_and_scene(
    hass: HomeAssistant, entry: MockConfigEntry, no_entry_setup: SetupCalls
) -> None:
    result = await add(hass, entry)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    result = await submit(
        hass,
        result,
        {
            CONF_CAMERA_ENTITY: GARDEN,
            CONF_SCAN_INTERVAL: 60,
            CONF_MOTION_ENTITY: PORCH_MOTION,
            CONF_SCENE_DESCRIPTION: "back garden,  pond on the left\n",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Garden"
    garden = entry.subentries[subentry_id(entry, GARDEN)]
    assert garden.subentry_type == SUBENTRY_CAMERA
    assert garden.title == "Garden"
    assert garden.unique_id == GARDEN
    assert dict(garden.data) == {
        CONF_CAMERA_ENTITY: GARDEN,
        CONF_SCAN_INTERVAL: 60,
        CONF_MOTION_ENTITY: PORCH_MOTION,
        CONF_SCENE_DESCRIPTION: "back garden, pond on the left",
        **NO_OVERRIDES,
    }
    assert len(entry.subentries) == 2


async def test_add_camera_on_motion_only(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await add(hass, entry)
    result = await submit(
        hass,
        result,
        {CONF_CAMERA_ENTITY: GARDEN, CONF_SCAN_INTERVAL: 0, CONF_MOTION_ENTITY: PORCH_MOTION},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(result["data"]) == {
        CONF_CAMERA_ENTITY: GARDEN,
        CONF_SCAN_INTERVAL: 0,
        CONF_MOTION_ENTITY: PORCH_MOTION,
        CONF_SCENE_DESCRIPTION: "",
        **NO_OVERRIDES,
    }


async def test_add_camera_defaults_to_the_interval(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await add(hass, entry)
    result = await submit(hass, result, {CONF_CAMERA_ENTITY: GARDEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_SCAN_INTERVAL] == 30
    assert result["data"][CONF_MOTION_ENTITY] is None


@pytest.mark.parametrize(
    ("form", "errors", "placeholders"),
    [
        ({CONF_SCAN_INTERVAL: 0}, {"base": "no_trigger"}, {}),
        ({CONF_SCAN_INTERVAL: 2}, {CONF_SCAN_INTERVAL: "scan_interval_too_short"}, {"min": "5"}),
        (
            {CONF_CAMERA_ENTITY: "camera.attic"},
            {CONF_CAMERA_ENTITY: "camera_not_found"},
            {},
        ),
        (
            {CONF_MOTION_ENTITY: "binary_sensor.attic_motion"},
            {CONF_MOTION_ENTITY: "motion_not_found"},
            {},
        ),
        (
            {CONF_SCENE_DESCRIPTION: "a porch " * 40},
            {CONF_SCENE_DESCRIPTION: "scene_description_too_long"},
            {"max": "300"},
        ),
    ],
)
async def test_add_camera_errors_keep_what_was_entered(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    form: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    entered = {CONF_CAMERA_ENTITY: GARDEN, CONF_SCAN_INTERVAL: 30, **form}
    result = await submit(hass, await add(hass, entry), entered)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == errors
    assert placeholders.items() <= result["description_placeholders"].items()
    assert suggested(result) == entered
    assert len(entry.subentries) == 1


async def test_add_camera_that_is_registered_but_offline(
    hass: HomeAssistant, entry: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """A camera whose integration has not started yet is known to the registry."""
    shed = entity_registry.async_get_or_create(
        "camera", "onvif", "shed-1", suggested_object_id="shed", original_name="Shed"
    )
    nameless = entity_registry.async_get_or_create(
        "camera", "onvif", "cam-2", suggested_object_id="cam_2"
    )
    result = await submit(hass, await add(hass, entry), {CONF_CAMERA_ENTITY: shed.entity_id})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Shed"
    result = await submit(hass, await add(hass, entry), {CONF_CAMERA_ENTITY: nameless.entity_id})
    assert result["title"] == nameless.entity_id


def picker(result: Any) -> dict[str, Any]:
    """The camera field's entity selector config, as the frontend receives it."""
    fields = probatio.to_field_list(result["data_schema"], custom_serializer=cv.custom_serializer)
    field = next(f for f in fields if f["name"] == CONF_CAMERA_ENTITY)
    config: dict[str, Any] = field["selector"]["entity"]
    return config


async def test_the_picker_leaves_out_monitored_cameras(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await add(hass, entry)
    assert picker(result)["exclude_entities"] == [FRONT_DOOR]
    result = await submit(hass, result, {CONF_CAMERA_ENTITY: GARDEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY

    assert picker(await add(hass, entry))["exclude_entities"] == [FRONT_DOOR, GARDEN]
    # Editing a camera offers its own camera, not the others.
    result = await entry.start_subentry_reconfigure_flow(hass, subentry_id(entry, FRONT_DOOR))
    assert picker(result)["exclude_entities"] == [GARDEN]


async def test_same_camera_twice_is_a_field_error(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Picked anyway (through the API): the form says so on the field and stays open."""
    result = await submit(
        hass, await add(hass, entry), {CONF_CAMERA_ENTITY: FRONT_DOOR, CONF_SCAN_INTERVAL: 45}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CAMERA_ENTITY: "camera_already_monitored"}
    assert suggested(result) == {CONF_CAMERA_ENTITY: FRONT_DOOR, CONF_SCAN_INTERVAL: 45}
    assert len(entry.subentries) == 1

    result = await submit(hass, result, {CONF_CAMERA_ENTITY: GARDEN, CONF_SCAN_INTERVAL: 45})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_edit_camera(
    hass: HomeAssistant, entry: MockConfigEntry, no_entry_setup: SetupCalls
) -> None:
    front_door = subentry_id(entry, FRONT_DOOR)
    result = await entry.start_subentry_reconfigure_flow(hass, front_door)
    assert result["step_id"] == "reconfigure"
    # The form shows the camera as it is (no motion sensor: nothing suggested for it).
    assert suggested(result) == {
        CONF_CAMERA_ENTITY: FRONT_DOOR,
        CONF_SCAN_INTERVAL: 30,
        CONF_SCENE_DESCRIPTION: "",
    }

    result = await submit(
        hass,
        result,
        {
            CONF_CAMERA_ENTITY: FRONT_DOOR,
            CONF_SCAN_INTERVAL: 0,
            CONF_MOTION_ENTITY: PORCH_MOTION,
            CONF_SCENE_DESCRIPTION: "front door, porch light at night",
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    edited = entry.subentries[front_door]
    assert dict(edited.data) == {
        CONF_CAMERA_ENTITY: FRONT_DOOR,
        CONF_SCAN_INTERVAL: 0,
        CONF_MOTION_ENTITY: PORCH_MOTION,
        CONF_SCENE_DESCRIPTION: "front door, porch light at night",
        **NO_OVERRIDES,
    }
    assert edited.title == "Front door"
    # No update listener here, so the flow reloads the entry itself.
    await hass.async_block_till_done()
    assert no_entry_setup.setup.await_count == 2


async def test_edit_camera_to_another_camera(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    front_door = subentry_id(entry, FRONT_DOOR)
    result = await entry.start_subentry_reconfigure_flow(hass, front_door)
    result = await submit(hass, result, {CONF_CAMERA_ENTITY: GARDEN, CONF_SCAN_INTERVAL: 30})
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[front_door].title == "Garden"
    assert entry.subentries[front_door].unique_id == GARDEN


async def test_edit_camera_to_one_already_monitored(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await submit(hass, await add(hass, entry), {CONF_CAMERA_ENTITY: GARDEN})
    front_door = subentry_id(entry, FRONT_DOOR)
    result = await entry.start_subentry_reconfigure_flow(hass, front_door)
    result = await submit(hass, result, {CONF_CAMERA_ENTITY: GARDEN, CONF_SCAN_INTERVAL: 45})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CAMERA_ENTITY: "camera_already_monitored"}
    assert suggested(result) == {CONF_CAMERA_ENTITY: GARDEN, CONF_SCAN_INTERVAL: 45}
    assert entry.subentries[front_door].data[CONF_CAMERA_ENTITY] == FRONT_DOOR


async def test_edit_camera_of_an_entry_that_reloads_itself(
    hass: HomeAssistant, entry: MockConfigEntry, no_entry_setup: SetupCalls
) -> None:
    listener = AsyncMock()
    entry.add_update_listener(listener)
    front_door = subentry_id(entry, FRONT_DOOR)
    result = await entry.start_subentry_reconfigure_flow(hass, front_door)
    result = await submit(hass, result, {CONF_CAMERA_ENTITY: FRONT_DOOR, CONF_SCAN_INTERVAL: 90})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[front_door].data[CONF_SCAN_INTERVAL] == 90
    assert listener.await_count == 1
    assert no_entry_setup.setup.await_count == 1


async def test_remove_camera_keeps_the_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await submit(hass, await add(hass, entry), {CONF_CAMERA_ENTITY: GARDEN})
    assert hass.config_entries.async_remove_subentry(entry, subentry_id(entry, FRONT_DOOR))
    assert [sub.data[CONF_CAMERA_ENTITY] for sub in entry.subentries.values()] == [GARDEN]
    # The removed camera can be added again.
    result = await submit(hass, await add(hass, entry), {CONF_CAMERA_ENTITY: FRONT_DOOR})
    assert result["type"] is FlowResultType.CREATE_ENTRY


def section_suggested(result: Any, name: str) -> dict[str, Any]:
    """The suggested values of a form section's fields."""
    marker = next(m for m in result["data_schema"].schema if m.schema == name)
    return suggested({"data_schema": result["data_schema"].schema[marker].schema})


async def test_add_camera_with_its_own_routing_options(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await submit(
        hass,
        await add(hass, entry),
        {
            CONF_CAMERA_ENTITY: GARDEN,
            "overrides": {CONF_MIN_CONFIDENCE: 0.5, CONF_SAFETY_KEYWORDS: ["Smoke", "gas leak"]},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    garden = entry.subentries[subentry_id(entry, GARDEN)]
    assert garden.data[CONF_MIN_CONFIDENCE] == 0.5
    assert garden.data[CONF_SAFETY_KEYWORDS] == ["smoke", "gas leak"]
    assert garden.data[CONF_AUDIT_RATE] is None

    # Editing it shows them in their section; emptying one gives it back to the hub.
    result = await entry.start_subentry_reconfigure_flow(hass, garden.subentry_id)
    assert section_suggested(result, "overrides") == {
        CONF_MIN_CONFIDENCE: 0.5,
        CONF_SAFETY_KEYWORDS: ["smoke", "gas leak"],
    }
    result = await submit(
        hass,
        result,
        {CONF_CAMERA_ENTITY: GARDEN, "overrides": {CONF_SAFETY_KEYWORDS: ["smoke"]}},
    )
    assert result["reason"] == "reconfigure_successful"
    garden = entry.subentries[garden.subentry_id]
    assert garden.data[CONF_MIN_CONFIDENCE] is None
    assert garden.data[CONF_SAFETY_KEYWORDS] == ["smoke"]


@pytest.mark.parametrize(
    ("form", "errors", "placeholders"),
    [
        # Was the number field's untranslated "Value -1.0 is too small".
        (
            {CONF_SCAN_INTERVAL: -1},
            {CONF_SCAN_INTERVAL: "scan_interval_out_of_range"},
            {"min": "0", "max": "86400", "value": "-1"},
        ),
        (
            {"overrides": {CONF_MIN_CONFIDENCE: 1.5}},
            {"overrides": "min_confidence_out_of_range"},
            {"min": "0", "max": "1", "value": "1.5"},
        ),
        (
            {"overrides": {CONF_AUDIT_RATE: -1}},
            {"overrides": "audit_rate_out_of_range"},
            {"min": "0", "max": "100000", "value": "-1"},
        ),
        (
            {"overrides": {CONF_SAFETY_KEYWORDS: ["<script>"]}},
            {"overrides": "invalid_safety_keyword"},
            {"keyword": "<script>"},
        ),
    ],
)
@pytest.mark.parametrize("editing", [False, True])
async def test_camera_form_errors_are_translated(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    form: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
    editing: bool,
) -> None:
    if editing:
        result = await entry.start_subentry_reconfigure_flow(hass, subentry_id(entry, FRONT_DOOR))
        camera_entity = FRONT_DOOR
    else:
        result = await add(hass, entry)
        camera_entity = GARDEN
    result = await submit(hass, result, {CONF_CAMERA_ENTITY: camera_entity, **form})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert placeholders.items() <= result["description_placeholders"].items()
    assert entry.subentries[subentry_id(entry, FRONT_DOOR)].data[CONF_SCAN_INTERVAL] == 30
