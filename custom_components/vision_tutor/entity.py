"""Base entities: a device per camera, and a hub device for the student host."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_STUDENT_MODEL, CONF_STUDENT_URL, DOMAIN
from .coordinator import CameraCoordinator, HostCoordinator


class CameraEntity(CoordinatorEntity[CameraCoordinator]):
    """An entity of a monitored camera's device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: CameraCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        subentry = coordinator.subentry
        self._attr_unique_id = f"{subentry.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, subentry.subentry_id)},
            name=subentry.title,
            manufacturer="Vision Tutor",
            model="Camera analysis",
            via_device_id=coordinator.config_entry.runtime_data.hub_device_id,
        )


class HostEntity(CoordinatorEntity[HostCoordinator]):
    """An entity of the hub device: the student host and what spans all cameras."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: HostCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Vision Tutor",
            model=f"Student {entry.data[CONF_STUDENT_MODEL]}",
            configuration_url=entry.data[CONF_STUDENT_URL],
        )
