"""Binary sensors: each camera's safety state, and whether the student host answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import slugify

from . import VisionTutorConfigEntry
from .coordinator import CameraState, HostCoordinator
from .entity import CameraEntity, HostEntity
from .flow_helpers import url_title

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class SafetyBinarySensorEntityDescription(BinarySensorEntityDescription):
    """The safety sensor: on while a hazard persists or the teacher confirmed one; unknown
    while the camera's analysis is paused (no frames looked at is not "no hazard")."""

    value_fn: Callable[[CameraState], bool | None]
    attributes_fn: Callable[[CameraState], Mapping[str, Any]]


def _safety_attributes(state: CameraState) -> Mapping[str, Any]:
    if state.analysis is None or state.paused:
        return {
            "flags": [],
            "confirmed_by_teacher": False,
            "since": None,
            "window": None,
            "paused": state.paused,
        }
    safety = state.analysis.safety
    progress = safety.progress
    return {
        "flags": list(safety.flags),
        "confirmed_by_teacher": safety.confirmed_by_teacher,
        "since": safety.since,
        # Why the state is what it is while the k-of-n evidence is on its way ("watching: 1 of
        # 2 flagged frames", "clearing: 2 of 3 clean frames"); None when it is not.
        "window": (
            {"phase": progress.phase, "frames": progress.frames, "needed": progress.needed}
            if progress
            else None
        ),
        "paused": False,
    }


def _safety_on(state: CameraState) -> bool | None:
    """On or off from the analysed frames; unknown before the first and while paused."""
    if state.analysis is None or state.paused:
        return None
    return state.analysis.safety.on


SAFETY = SafetyBinarySensorEntityDescription(
    key="safety",
    translation_key="safety",
    device_class=BinarySensorDeviceClass.SAFETY,
    value_fn=_safety_on,
    attributes_fn=_safety_attributes,
)

STUDENT_CONNECTIVITY = BinarySensorEntityDescription(
    key="student_connectivity",
    translation_key="student_connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


def pool_host_connectivity(url: str) -> BinarySensorEntityDescription:
    """The connectivity sensor of another host of a student pool (named after its address)."""
    return BinarySensorEntityDescription(
        key=f"student_connectivity_{slugify(url)}",
        translation_key="student_host_connectivity",
        translation_placeholders={"host": url_title(url)},
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
    )


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a connectivity sensor per student host and a safety sensor per camera."""
    data = entry.runtime_data
    async_add_entities(
        [
            StudentConnectivitySensor(data.host, STUDENT_CONNECTIVITY),
            *(
                StudentConnectivitySensor(host, pool_host_connectivity(url))
                for url, host in data.hosts.items()
                if host is not data.host
            ),
        ]
    )
    for subentry_id, camera in data.cameras.items():
        async_add_entities([SafetySensor(camera, SAFETY)], config_subentry_id=subentry_id)


class SafetySensor(CameraEntity, BinarySensorEntity):
    """A camera's safety state."""

    entity_description: SafetyBinarySensorEntityDescription

    @property
    @override
    def is_on(self) -> bool | None:
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any]:
        return self.entity_description.attributes_fn(self.coordinator.data)


class StudentConnectivitySensor(HostEntity, BinarySensorEntity):
    """Whether a student host answered its last poll (the hub device has one per host)."""

    def __init__(
        self, coordinator: HostCoordinator, description: BinarySensorEntityDescription
    ) -> None:
        super().__init__(coordinator, description)

    @property
    @override
    def available(self) -> bool:
        # A connectivity sensor reports "off" when the host is down instead of vanishing.
        return True

    @property
    @override
    def is_on(self) -> bool:
        return self.coordinator.last_update_success
