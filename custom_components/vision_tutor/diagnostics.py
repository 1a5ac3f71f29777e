"""Diagnostics: the entry's settings and each camera's latest analysis, without secrets."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from . import VisionTutorConfigEntry
from .const import CONF_STUDENT_URL, CONF_TEACHER_TOKEN, CONF_TEACHER_URL
from .services import analysis_response

TO_REDACT = {CONF_TEACHER_TOKEN, CONF_STUDENT_URL, CONF_TEACHER_URL}
"""The token, and the hosts: addresses on the user's network are theirs, not support's."""


def _status_word(text: str | None) -> str | None:
    """A teacher status without its details: they may quote a connection error, which names a
    host on the user's network ("sending: retrying (… 192.168.1.20 …)" is "sending: retrying")."""
    return None if text is None else text.split(" (", 1)[0]


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: VisionTutorConfigEntry
) -> dict[str, Any]:
    """What support needs to see: settings, host state, and what each camera last decided."""
    data = entry.runtime_data
    host = data.host
    cameras: dict[str, Any] = {}
    for subentry_id, camera in data.cameras.items():
        state = camera.data
        cameras[subentry_id] = {
            "settings": dict(camera.subentry.data),
            "paused": state.paused,
            "last_update_success": camera.last_update_success,
            "last_checked": state.last_checked.isoformat() if state.last_checked else None,
            "frames_skipped": dict(camera.skipped),
            "analysis": (
                analysis_response(
                    camera.camera_entity,
                    state.analysis,
                    _status_word(state.teacher_status),
                )
                if state.analysis
                else None
            ),
            "safety_window": sorted(camera.pipeline.window.recent_flags),
        }
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "host": {
            "reachable": host.last_update_success,
            "models": list(host.data.models) if host.data else [],
            "model_present": host.data.model_present if host.data else None,
        },
        "prompt_version": data.prompt.version,
        "escalations_last_hour": data.escalations.last_hour(dt_util.utcnow()),
        "cameras": cameras,
    }
