"""Switches: each camera's analysis, on or paused; the choice survives restarts."""

from __future__ import annotations

from typing import Any, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import STATE_OFF
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from . import VisionTutorConfigEntry
from .entity import CameraEntity

# Switching only sets the coordinator's state; nothing to fetch.
PARALLEL_UPDATES = 0

ANALYSIS = SwitchEntityDescription(key="analysis", translation_key="analysis")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each camera's analysis switch under its subentry."""
    for subentry_id, camera in entry.runtime_data.cameras.items():
        async_add_entities([AnalysisSwitch(camera, ANALYSIS)], config_subentry_id=subentry_id)


class AnalysisSwitch(CameraEntity, SwitchEntity, RestoreEntity):
    """Off: the camera's frames are not grabbed, analysed or sent to the teacher (a pause).

    The entry sets the switches up before the cameras' first analysis, so a camera paused
    before a restart sends no frame after it.
    """

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if (last := await self.async_get_last_state()) is not None and last.state == STATE_OFF:
            self.coordinator.async_set_paused(True)

    @property
    @override
    def available(self) -> bool:
        # Pausing a camera that cannot be reached is still a choice the user can make.
        return True

    @property
    @override
    def is_on(self) -> bool:
        return not self.coordinator.paused

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        self.coordinator.async_set_paused(False)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        self.coordinator.async_set_paused(True)
