"""Base entities: a device per camera, and a hub device for the student host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from yarl import URL

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    CONF_TEACHER_URL,
    DOMAIN,
    TEACHER_MODE_ADDON,
    TEACHER_MODE_MANUAL,
)
from .coordinator import CameraCoordinator, HostCoordinator


def hub_configuration_url(data: Mapping[str, Any]) -> str:
    """Where the hub device's "Visit" link goes: the teacher's pages (queue and prompt lab).

    With the add-on, its ingress page in Home Assistant (signed in, no token); the Supervisor
    names an add-on's host after its slug with "-" for "_" (`hostname_from_addon_slug`). With a
    teacher service of your own, its page (its sign-in says where the token is). Without a
    teacher, the student's Ollama server.
    """
    mode = data.get(CONF_TEACHER_MODE)
    teacher_url = data.get(CONF_TEACHER_URL)
    if mode == TEACHER_MODE_ADDON and teacher_url and (host := URL(str(teacher_url)).host):
        return f"homeassistant://hassio/ingress/{host.replace('-', '_')}"
    if mode == TEACHER_MODE_MANUAL and teacher_url:
        return str(teacher_url)
    return str(data[CONF_STUDENT_URL])


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
            configuration_url=hub_configuration_url(entry.data),
        )
