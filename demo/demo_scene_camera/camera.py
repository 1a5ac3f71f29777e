"""A camera that plays a list of the simulator's scenes, each for a few seconds, in a loop.

The scenes are JPEGs written by `python -m simulator.scenes --export`. The simulator recognises
them by perceptual hash, so its scripted student and teacher "see" what each scene shows: the
demo gets routine frames and, now and then, a hazard, without any real camera or GPU.

    camera:
      - platform: demo_scene_camera
        name: Kitchen
        scenes_dir: /tmp/vision-tutor-demo/scenes
        playlist: [kitchen_empty_day, fire_kitchen_pan, kitchen_person_dishes]
        seconds_per_scene: 20

Action `demo_scene_camera.show` (a camera, `scene`: a scene id) jumps to a scene now; the
playlist goes on from there.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from pathlib import Path
import time
from typing import Any

import probatio

from homeassistant.components.camera import PLATFORM_SCHEMA, Camera
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, entity_platform
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType

CONF_SCENES_DIR = "scenes_dir"
CONF_PLAYLIST = "playlist"
CONF_SECONDS_PER_SCENE = "seconds_per_scene"

PLATFORM_SCHEMA = PLATFORM_SCHEMA.extend(
    {
        probatio.Required(CONF_NAME): cv.string,
        probatio.Required(CONF_SCENES_DIR): cv.isdir,
        probatio.Required(CONF_PLAYLIST): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(CONF_SECONDS_PER_SCENE, default=20): probatio.All(
            probatio.Coerce(float), probatio.Range(min=1)
        ),
    }
)


def _load_scenes(directory: Path, playlist: list[str]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Each listed scene's JPEG and ground truth, from an exported scene folder."""
    index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    truth = {scene["id"]: scene for scene in index["scenes"]}
    unknown = [scene_id for scene_id in playlist if scene_id not in truth]
    if unknown:
        raise ValueError(f"not in {directory}/index.json: {', '.join(unknown)}")
    return {
        scene_id: ((directory / truth[scene_id]["file"]).read_bytes(), truth[scene_id])
        for scene_id in dict.fromkeys(playlist)
    }


async def async_setup_platform(
    hass: HomeAssistant,
    config: ConfigType,
    async_add_entities: AddEntitiesCallback,
    discovery_info: DiscoveryInfoType | None = None,
) -> None:
    """Add one scene camera per configuration block."""
    playlist: list[str] = config[CONF_PLAYLIST]
    scenes = await hass.async_add_executor_job(
        _load_scenes, Path(config[CONF_SCENES_DIR]), playlist
    )
    async_add_entities(
        [SceneCamera(config[CONF_NAME], playlist, scenes, config[CONF_SECONDS_PER_SCENE])]
    )
    platform = entity_platform.async_get_current_platform()
    platform.async_register_entity_service(
        "show", {probatio.Required("scene"): cv.string}, "async_show"
    )


class SceneCamera(Camera):
    """Shows the playlist's scenes in turn; the scene on view is in its attributes."""

    def __init__(
        self,
        name: str,
        playlist: list[str],
        scenes: dict[str, tuple[bytes, dict[str, Any]]],
        seconds_per_scene: float,
    ) -> None:
        super().__init__()
        self._attr_name = name
        self._attr_unique_id = f"demo_scene_camera_{name.lower().replace(' ', '_')}"
        self._playlist = playlist
        self._scenes = scenes
        self._seconds = seconds_per_scene
        self._started = time.monotonic()
        self._written_scene: str | None = None

    def _position(self) -> int:
        return int((time.monotonic() - self._started) / self._seconds) % len(self._playlist)

    @property
    def scene_id(self) -> str:
        """The scene on view now."""
        return self._playlist[self._position()]

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        truth = self._scenes[self.scene_id][1]
        return {
            "scene": truth["id"],
            "scene_title": truth["title"],
            "scene_kind": truth["kind"],
            "scene_flags": truth["safety_flags"],
            "playlist": self._playlist,
            "seconds_per_scene": self._seconds,
        }

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        # Home Assistant asks for a frame whenever it needs one; the state (and the scene in
        # its attributes) is refreshed with it, so a dashboard shows which scene is on.
        scene_id = self.scene_id
        if scene_id != self._written_scene:
            self._written_scene = scene_id
            self.async_write_ha_state()
        return self._scenes[scene_id][0]

    async def async_show(self, scene: str) -> None:
        """Jump to a scene of the playlist now; the playlist continues from it."""
        if scene not in self._playlist:
            raise ServiceValidationError(
                f"{scene} is not in {self.name}'s playlist: {', '.join(self._playlist)}"
            )
        elapsed = self._playlist.index(scene) * self._seconds
        self._started = time.monotonic() - elapsed
        self.async_write_ha_state()
