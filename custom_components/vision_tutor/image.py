"""Image entities: each camera's last analysed frame, exactly as the student saw it.

The camera entity shows what the camera sees now; this shows the frame the observation, the
confidence and the safety state are about, which is what a dashboard or a notification needs
beside them (a hazard may be gone from the live picture by the time anyone looks).
"""

from __future__ import annotations

from datetime import datetime
from typing import override

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import VisionTutorConfigEntry
from .coordinator import CameraCoordinator
from .entity import CameraEntity

PARALLEL_UPDATES = 0

ANALYSED_FRAME = ImageEntityDescription(key="analysed_frame", translation_key="analysed_frame")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add an analysed-frame image per camera."""
    for subentry_id, camera in entry.runtime_data.cameras.items():
        async_add_entities(
            [AnalysedFrameImage(hass, camera, ANALYSED_FRAME)], config_subentry_id=subentry_id
        )


class AnalysedFrameImage(CameraEntity, ImageEntity):
    """The last frame the student analysed (resized to the configured width, JPEG)."""

    _attr_content_type = "image/jpeg"

    def __init__(
        self,
        hass: HomeAssistant,
        coordinator: CameraCoordinator,
        description: ImageEntityDescription,
    ) -> None:
        CameraEntity.__init__(self, coordinator, description)
        # ImageEntity keeps the access tokens its proxy URL needs; it is not cooperative, so
        # it is initialised on its own.
        ImageEntity.__init__(self, hass)

    @property
    @override
    def available(self) -> bool:
        # A frame already analysed stays worth showing while the camera or the host is down:
        # it is what the other entities still describe.
        return self.coordinator.data.analysis is not None or super().available

    @property
    @override
    def image_last_updated(self) -> datetime | None:
        analysis = self.coordinator.data.analysis
        return analysis.analysed_at if analysis is not None else None

    @override
    async def async_image(self) -> bytes | None:
        analysis = self.coordinator.data.analysis
        return analysis.frame.jpeg if analysis is not None else None
