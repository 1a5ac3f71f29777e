"""Event entities: each camera's safety changes, for automations."""

from __future__ import annotations

from typing import override

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import VisionTutorConfigEntry
from .coordinator import CameraCoordinator
from .entity import CameraEntity

PARALLEL_UPDATES = 0

SAFETY_EVENT = EventEntityDescription(
    key="safety_event",
    translation_key="safety_event",
    event_types=["hazard_detected", "hazard_cleared", "teacher_confirmed", "teacher_dismissed"],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a safety event entity per camera."""
    for subentry_id, camera in entry.runtime_data.cameras.items():
        async_add_entities(
            [SafetyEventEntity(camera, SAFETY_EVENT)], config_subentry_id=subentry_id
        )


class SafetyEventEntity(CameraEntity, EventEntity):
    """Fires once for each change of a camera's safety state."""

    def __init__(self, coordinator: CameraCoordinator, description: EventEntityDescription) -> None:
        super().__init__(coordinator, description)
        self._fired_sequence = coordinator.data.sequence

    @callback
    @override
    def _handle_coordinator_update(self) -> None:
        state = self.coordinator.data
        if state.sequence != self._fired_sequence:
            self._fired_sequence = state.sequence
            for event in state.events:
                self._trigger_event(
                    event.type,
                    {
                        "flags": list(event.flags),
                        "confidence": event.confidence,
                        # The frame in the event history (Media → Vision Tutor), for a
                        # notification to attach and open.
                        **self.coordinator.links(event.snapshot),
                    },
                )
                # One state per event: an automation on this entity sees each of them, e.g.
                # hazard_detected and teacher_confirmed arriving together.
                self.async_write_ha_state()
        super()._handle_coordinator_update()
