"""Vision Tutor: a small local vision model watches the cameras, a larger one teaches it."""

from __future__ import annotations

from dataclasses import dataclass

import ollama

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady

from .const import CONF_STUDENT_URL, DOMAIN
from .ollama_client import CannotConnect, async_list_models, create_client


@dataclass(slots=True)
class VisionTutorData:
    """What a loaded config entry holds."""

    student: ollama.AsyncClient
    models: list[str]


type VisionTutorConfigEntry = ConfigEntry[VisionTutorData]


async def async_setup_entry(hass: HomeAssistant, entry: VisionTutorConfigEntry) -> bool:
    """Connect to the student host."""
    student = create_client(entry.data[CONF_STUDENT_URL])
    try:
        models = await async_list_models(student)
    except CannotConnect as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="student_unreachable",
            translation_placeholders={"url": entry.data[CONF_STUDENT_URL], "error": str(err)},
        ) from err
    entry.runtime_data = VisionTutorData(student=student, models=models)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: VisionTutorConfigEntry) -> bool:
    """Nothing to tear down yet: no platforms, no background tasks."""
    return True
