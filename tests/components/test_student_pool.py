"""A student pool in Home Assistant: two simulators as two student hosts of one entry.

Adding and removing hosts in the reconfigure flow, a connectivity sensor per host on the hub
device, cameras spread over the hosts and moved at their next frame when a host goes away, and
the pool in the diagnostics (without the hosts' addresses).
"""

from __future__ import annotations

import contextlib
from typing import Any

from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    setup_test_component_platform,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

from custom_components.vision_tutor.const import (
    CONF_CAMERA_ENTITY,
    CONF_EXTRA_STUDENT_URLS,
    CONF_MOTION_ENTITY,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    DOMAIN,
    SUBENTRY_CAMERA,
    TEACHER_MODE_NONE,
)
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SceneCamera
from .helpers import CONNECTIVITY, setup
from .test_config_flow_helpers import (
    SetupCalls,
    flow_translations_fixture,  # noqa: F401  (fixture)
    no_entry_setup_fixture,  # noqa: F401  (fixture)
    simulator_with,
)

CAMERAS = ("front_door", "garage")


def entry_with(url: str, *extra: str) -> MockConfigEntry:
    """An entry for a student at `url` and more hosts, watching two cameras."""
    data: dict[str, Any] = {
        CONF_STUDENT_URL: url,
        CONF_STUDENT_MODEL: "gemma4:e2b",
        CONF_TEACHER_MODE: TEACHER_MODE_NONE,
    }
    if extra:
        data[CONF_EXTRA_STUDENT_URLS] = list(extra)
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title="127.0.0.1",
        unique_id=url,
        data=data,
        subentries_data=[
            ConfigSubentryData(
                data={
                    CONF_CAMERA_ENTITY: f"camera.{name}",
                    CONF_SCAN_INTERVAL: 30,
                    CONF_MOTION_ENTITY: None,
                    CONF_SCENE_DESCRIPTION: "",
                },
                subentry_id=f"SUBENTRY{name.upper()}",
                subentry_type=SUBENTRY_CAMERA,
                title=name,
                unique_id=f"camera.{name}",
            )
            for name in CAMERAS
        ],
    )


async def two_cameras(hass: HomeAssistant, library: SceneLibrary) -> None:
    entities = []
    for name in CAMERAS:
        entity = SceneCamera(library)
        entity._attr_name = name.replace("_", " ").title()
        entity._attr_unique_id = name
        entities.append(entity)
    setup_test_component_platform(hass, "camera", entities)
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()


def other_connectivity(hass: HomeAssistant, url: str) -> str:
    """The entity id of a pool host's connectivity sensor."""
    registry = er.async_get(hass)
    slug = url.replace("://", "_").replace(".", "_").replace(":", "_")
    entity_id = registry.async_get_entity_id(
        "binary_sensor", DOMAIN, f"{ENTRY_ID}_student_connectivity_{slug}"
    )
    assert entity_id is not None
    return entity_id


# --- Reconfigure ----------------------------------------------------------------------------------


async def submit(hass: HomeAssistant, result: Any, data: dict[str, Any]) -> Any:
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def reconfigure_to_hosts(
    hass: HomeAssistant, entry: MockConfigEntry, hosts: list[str]
) -> Any:
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_STUDENT_URL: entry.data[CONF_STUDENT_URL]})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    assert result["step_id"] == "student_hosts"
    return await submit(hass, result, {CONF_EXTRA_STUDENT_URLS: hosts})


async def test_another_student_host_is_added_and_removed_when_reconfiguring(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    flow_translations: None,
    no_entry_setup: SetupCalls,
    unused_tcp_port: int,
) -> None:
    entry = entry_with(simulator.url)
    entry.add_to_hass(hass)
    # The first setup asks for one host only.
    first = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    assert first["step_id"] == "user"
    assert CONF_EXTRA_STUDENT_URLS not in str(first["data_schema"].schema)
    hass.config_entries.flow.async_abort(first["flow_id"])

    async with simulator_with({"gemma4:e2b"}) as second, simulator_with({"gemma4:26b"}) as blind:
        unreachable = f"http://127.0.0.1:{unused_tcp_port}"
        for hosts, error, named in (
            (["not a url"], "student_host_invalid", "not a url"),
            ([simulator.url], "student_host_duplicate", simulator.url),
            ([second.url, second.url + "/"], "student_host_duplicate", second.url),
            ([unreachable], "student_host_unusable", unreachable),
            ([blind.url], "student_host_no_model", blind.url),
        ):
            result = await reconfigure_to_hosts(hass, entry, hosts)
            assert result["step_id"] == "student_hosts", hosts
            assert result["errors"] == {CONF_EXTRA_STUDENT_URLS: error}
            assert result["description_placeholders"]["url"] == named
            hass.config_entries.flow.async_abort(result["flow_id"])

        result = await reconfigure_to_hosts(hass, entry, [second.url.upper()])
        assert result["step_id"] == "teacher"
        result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.data[CONF_EXTRA_STUDENT_URLS] == [second.url]
        await hass.async_block_till_done()

        # The form shows the hosts the entry has; an empty list makes it one host again.
        result = await entry.start_reconfigure_flow(hass)
        result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
        result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
        marker = next(
            m for m in result["data_schema"].schema if m.schema == CONF_EXTRA_STUDENT_URLS
        )
        assert marker.description["suggested_value"] == [second.url]
        result = await submit(hass, result, {CONF_EXTRA_STUDENT_URLS: []})
        result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
        assert result["reason"] == "reconfigure_successful"
        assert entry.data[CONF_EXTRA_STUDENT_URLS] == []
        await hass.async_block_till_done()


async def test_a_host_of_another_entry_is_refused(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    flow_translations: None,
    no_entry_setup: SetupCalls,
) -> None:
    async with simulator_with({"gemma4:e2b"}) as second:
        other = MockConfigEntry(
            domain=DOMAIN,
            title="Garage GPU",
            unique_id="http://10.0.0.7:11434",
            data={
                CONF_STUDENT_URL: "http://10.0.0.7:11434",
                CONF_STUDENT_MODEL: "gemma4:e2b",
                CONF_EXTRA_STUDENT_URLS: [second.url],
            },
        )
        other.add_to_hass(hass)
        entry = entry_with(simulator.url)
        entry.add_to_hass(hass)
        result = await reconfigure_to_hosts(hass, entry, [second.url])
        assert result["errors"] == {CONF_EXTRA_STUDENT_URLS: "student_host_in_use"}
        assert result["description_placeholders"]["entry"] == "Garage GPU"
        hass.config_entries.flow.async_abort(result["flow_id"])

        # Nor can a new entry take a host another entry has in its pool.
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
        result = await submit(hass, result, {CONF_STUDENT_URL: second.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "already_configured"


# --- A loaded pool --------------------------------------------------------------------------------


async def test_cameras_spread_over_the_hosts_and_move_when_one_goes_away(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    simulator: RunningSimulator,
    library: SceneLibrary,
) -> None:
    await two_cameras(hass, library)
    async with contextlib.AsyncExitStack() as stack:
        second = await stack.enter_async_context(simulator_with({"gemma4:e2b"}))
        entry = await setup(hass, entry_with(simulator.url, second.url))
        data = entry.runtime_data
        pool = data.pool
        assert pool is not None
        front, garage = (f"SUBENTRY{name.upper()}" for name in CAMERAS)
        assert pool.assignment == {front: simulator.url, garage: second.url}
        second_sensor = other_connectivity(hass, second.url)
        assert hass.states.get(CONNECTIVITY).state == STATE_ON
        assert hass.states.get(second_sensor).state == STATE_ON
        assert hass.states.get(second_sensor).name == (
            f"127.0.0.1 Student connectivity ({second.url.removeprefix('http://')})"
        )

        await stack.aclose()  # the second host goes away

    # The garage's next frame finds its host gone: it is analysed on the first host instead,
    # and the second host's sensor says it is down without waiting for its poll.
    garage_camera = data.cameras[garage]
    analysis = await garage_camera.async_analyse_now()  # past the change gate
    await hass.async_block_till_done()
    assert garage_camera.last_update_success
    assert garage_camera.data.analysis is analysis
    assert pool.assignment == {front: simulator.url, garage: simulator.url}
    assert hass.states.get(second_sensor).state == STATE_OFF
    assert hass.states.get(CONNECTIVITY).state == STATE_ON
    assert hass.states.get("sensor.garage_observation").state not in ("unavailable", "unknown")

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert simulator.url.removeprefix("http://") not in str(diagnostics)
    assert second.url.removeprefix("http://") not in str(diagnostics)
    assert diagnostics["entry"]["data"][CONF_EXTRA_STUDENT_URLS] == "**REDACTED**"
    hosts = diagnostics["student_pool"]["hosts"]
    assert [(h["host"], h["reachable"], h["healthy"], h["cameras"]) for h in hosts] == [
        ("host 1", True, True, [front, garage]),
        ("host 2", False, False, []),
    ]
    assert diagnostics["student_pool"]["moves"][-1] == {
        "camera": garage,
        "from": "host 2",
        "to": "host 1",
    }
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_pool_starts_while_its_first_host_is_down(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    library: SceneLibrary,
    unused_tcp_port: int,
) -> None:
    await two_cameras(hass, library)
    down = f"http://127.0.0.1:{unused_tcp_port}"
    entry = await setup(hass, entry_with(down, simulator.url))

    pool = entry.runtime_data.pool
    assert pool is not None
    assert pool.healthy == {down: False, simulator.url: True}
    assert set(pool.assignment.values()) == {simulator.url}
    assert hass.states.get(CONNECTIVITY).state == STATE_OFF
    for camera in entry.runtime_data.cameras.values():
        assert camera.last_update_success
        assert camera.data.analysis is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
