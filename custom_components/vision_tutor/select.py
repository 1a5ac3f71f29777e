"""The active prompt version, as a select: choosing one promotes it in the prompt lab."""

from __future__ import annotations

from typing import override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import VisionTutorConfigEntry, VisionTutorData
from .const import DOMAIN
from .entity import HostEntity
from .lab import PromptLab
from .teacher import TeacherRequestError

PARALLEL_UPDATES = 1

ACTIVE_PROMPT = SelectEntityDescription(
    key="active_prompt",
    translation_key="active_prompt",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the prompt select when a teacher service (and so the lab) is configured."""
    data = entry.runtime_data
    if data.teacher is not None and data.lab is not None:
        async_add_entities([ActivePromptSelect(data, data.lab)])


class ActivePromptSelect(HostEntity, SelectEntity):
    """Lists the lab's prompt versions; the built-in prompt until one is promoted."""

    def __init__(self, data: VisionTutorData, lab: PromptLab) -> None:
        super().__init__(data.host, ACTIVE_PROMPT)
        self._lab = lab

    @property
    @override
    def available(self) -> bool:
        return self._lab.teacher is not None and self._lab.teacher.connected

    @property
    @override
    def options(self) -> list[str]:
        current = self._lab.prompt.version
        return [*([] if current in self._lab.versions else [current]), *self._lab.versions]

    @property
    @override
    def current_option(self) -> str:
        return self._lab.prompt.version

    @override
    async def async_select_option(self, option: str) -> None:
        try:
            await self._lab.async_request("POST", f"/api/v1/prompts/{option}/promote")
        except TeacherRequestError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="lab_request_failed",
                translation_placeholders={"error": str(err)},
            ) from err
