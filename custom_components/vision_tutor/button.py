"""Buttons: analyse a camera's current frame now."""

from __future__ import annotations

from typing import override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import VisionTutorConfigEntry
from .entity import CameraEntity

# The camera's coordinator serialises its analyses; the student's semaphore bounds the host.
PARALLEL_UPDATES = 0

ANALYSE_NOW = ButtonEntityDescription(key="analyse_now", translation_key="analyse_now")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each camera's analyse-now button under its subentry."""
    for subentry_id, camera in entry.runtime_data.cameras.items():
        async_add_entities([AnalyseNowButton(camera, ANALYSE_NOW)], config_subentry_id=subentry_id)


class AnalyseNowButton(CameraEntity, ButtonEntity):
    """Analyse the current frame past the change gate, as the `analyze` action does.

    Refused (with a translated error) while the camera's analysis switch is off.
    """

    @property
    @override
    def available(self) -> bool:
        # Pressing is also how a camera that failed is tried again (it says why if it fails).
        return True

    @override
    async def async_press(self) -> None:
        await self.coordinator.async_analyse_now()
