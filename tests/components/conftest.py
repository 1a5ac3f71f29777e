"""Fixtures for the Home Assistant integration tests: a real camera entity and a config entry."""

from __future__ import annotations

import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    setup_test_component_platform,
)

from homeassistant.components.camera import Camera
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from custom_components.vision_tutor.const import (
    CONF_CAMERA_ENTITY,
    CONF_MOTION_ENTITY,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
    DOMAIN,
    SUBENTRY_CAMERA,
    TEACHER_MODE_MANUAL,
    TEACHER_MODE_NONE,
)
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

CAMERA_ENTITY = "camera.front_door"
ENTRY_ID = "01JVISIONTUTORENTRY000000"
SUBENTRY_ID = "01JVISIONTUTORCAMERA00000"
SCAN_INTERVAL = 30


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/vision_tutor in every test."""


class SceneCamera(Camera):
    """A camera that shows a scene from the simulator's library, or misbehaves on purpose."""

    _attr_name = "Front door"
    _attr_unique_id = "front_door"

    def __init__(self, library: SceneLibrary) -> None:
        super().__init__()
        self.library = library
        self.scene_id = next(s.id for s in library.scenes if s.kind == "routine")
        self.payload: bytes | None = None
        """When set, returned instead of the scene (None-like payloads test broken cameras)."""
        self.broken = False

    def show(self, scene_id: str) -> None:
        """Point the camera at another scene."""
        self.scene_id = scene_id
        self.payload = None

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        if self.broken:
            return None
        if self.payload is not None:
            return self.payload
        return self.library.jpeg(self.scene_id)


@pytest.fixture(scope="session")
def library() -> SceneLibrary:
    return SceneLibrary.default()


@pytest.fixture
async def camera(hass: HomeAssistant, library: SceneLibrary) -> SceneCamera:
    """`camera.front_door`, showing a routine scene."""
    entity = SceneCamera(library)
    setup_test_component_platform(hass, "camera", [entity])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()
    return entity


def camera_subentry(
    *,
    motion: str | None = None,
    interval: int = SCAN_INTERVAL,
    description: str = "",
    overrides: dict[str, object] | None = None,
) -> ConfigSubentryData:
    """The front door's subentry; `overrides` are its own values of hub options."""
    return ConfigSubentryData(
        data={
            CONF_CAMERA_ENTITY: CAMERA_ENTITY,
            CONF_SCAN_INTERVAL: interval,
            CONF_MOTION_ENTITY: motion,
            CONF_SCENE_DESCRIPTION: description,
            **(overrides or {}),
        },
        subentry_id=SUBENTRY_ID,
        subentry_type=SUBENTRY_CAMERA,
        title="Front door",
        unique_id=CAMERA_ENTITY,
    )


def make_entry(
    url: str,
    *,
    options: dict[str, object] | None = None,
    cameras: int = 1,
    teacher: tuple[str, str] | None = None,
    **camera: object,
) -> MockConfigEntry:
    """An entry for a student at `url`; `teacher` is a teacher service's (url, token)."""
    teacher_data = (
        {
            CONF_TEACHER_MODE: TEACHER_MODE_MANUAL,
            CONF_TEACHER_URL: teacher[0],
            CONF_TEACHER_TOKEN: teacher[1],
        }
        if teacher
        else {CONF_TEACHER_MODE: TEACHER_MODE_NONE}
    )
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title="127.0.0.1",
        unique_id=url,
        data={CONF_STUDENT_URL: url, CONF_STUDENT_MODEL: "gemma4:e2b", **teacher_data},
        options=options or {},
        subentries_data=[camera_subentry(**camera)] if cameras else [],  # type: ignore[arg-type]
    )


@pytest.fixture
async def entry(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> MockConfigEntry:
    """A loaded entry for the simulator's student, watching `camera.front_door`."""
    config_entry = make_entry(simulator.url)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry
