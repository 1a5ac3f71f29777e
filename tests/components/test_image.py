"""The analysed-frame image: the frame the other entities describe, served by Home Assistant."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
import io

from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from homeassistant.components.image import async_get_image
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er

from custom_components.vision_tutor.const import DOMAIN
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SUBENTRY_ID, SceneCamera, make_entry
from .helpers import OBSERVATION, coordinator, fire, next_frame, setup

FRAME = "image.front_door_analysed_frame"


def _size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        return image.size


async def test_the_image_is_the_analysed_frame_at_the_configured_width(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    state = hass.states.get(FRAME)
    assert state is not None
    analysis = coordinator(entry).data.analysis
    assert analysis is not None
    # The state is when the frame was analysed, as for any image entity.
    assert datetime.fromisoformat(state.state) == analysis.analysed_at
    assert state.attributes["entity_picture"].startswith(f"/api/image_proxy/{FRAME}?token=")

    image = await async_get_image(hass, FRAME)
    assert image.content_type == "image/jpeg"
    assert image.content == analysis.frame.jpeg
    # 768 px wide: the width the student saw, not the camera's 1920.
    assert _size(image.content)[0] == 768


async def test_it_belongs_to_the_camera_device(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    registry_entry = entity_registry.async_get(FRAME)
    assert registry_entry is not None
    assert registry_entry.translation_key == "analysed_frame"
    assert registry_entry.unique_id == f"{SUBENTRY_ID}_analysed_frame"
    assert registry_entry.config_subentry_id == SUBENTRY_ID
    device = device_registry.async_get_device_by_identifier((DOMAIN, SUBENTRY_ID), ENTRY_ID)
    assert device is not None
    assert registry_entry.device_id == device.id


async def test_a_new_analysis_changes_the_image_and_its_state(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    before = hass.states.get(FRAME)
    assert before is not None
    first = (await async_get_image(hass, FRAME)).content

    camera.show(fire(library).id)
    await next_frame(hass, entry)

    after = hass.states.get(FRAME)
    assert after is not None
    assert after.state != before.state
    second = (await async_get_image(hass, FRAME)).content
    assert second != first
    assert library.identify(second) == fire(library)
    # The observation describes this same frame.
    observation = hass.states.get(OBSERVATION)
    assert observation is not None
    assert observation.attributes["analysed_at"].isoformat() == after.state


async def test_an_unchanged_frame_keeps_the_image(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    before = hass.states.get(FRAME)
    await next_frame(hass, entry)  # same scene: the change gate skips it
    after = hass.states.get(FRAME)
    assert before is not None
    assert after is not None
    assert after.state == before.state
    assert after.last_changed == before.last_changed


async def test_served_over_http_with_its_access_token(
    hass: HomeAssistant, entry: MockConfigEntry, hass_client_no_auth: ClientSessionGenerator
) -> None:
    state = hass.states.get(FRAME)
    assert state is not None
    client = await hass_client_no_auth()
    response = await client.get(state.attributes["entity_picture"])
    assert response.status == HTTPStatus.OK
    assert response.content_type == "image/jpeg"
    assert _size(await response.read())[0] == 768
    # Without the token the frame is not public.
    response = await client.get(f"/api/image_proxy/{FRAME}")
    assert response.status == HTTPStatus.FORBIDDEN


async def test_no_analysis_yet_is_unknown_and_has_no_image(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    camera.broken = True  # the first frame cannot be grabbed
    await setup(hass, make_entry(simulator.url))
    state = hass.states.get(FRAME)
    assert state is not None
    assert state.state in (STATE_UNKNOWN, STATE_UNAVAILABLE)


async def test_the_last_frame_stays_while_the_camera_is_down(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera
) -> None:
    before = hass.states.get(FRAME)
    camera.broken = True
    await next_frame(hass, entry)
    assert not coordinator(entry).last_update_success
    after = hass.states.get(FRAME)
    assert before is not None
    assert after is not None
    # Still the frame the observation describes, not "unavailable".
    assert after.state == before.state
    observation = hass.states.get(OBSERVATION)
    assert observation is not None
    assert observation.state == STATE_UNAVAILABLE
