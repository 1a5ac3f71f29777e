"""Diagnostics: the entry's settings and each camera's latest analysis, without secrets."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from . import VisionTutorConfigEntry, VisionTutorData
from .const import (
    CONF_EXTRA_STUDENT_URLS,
    CONF_STUDENT_URL,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
)
from .services import analysis_response

TO_REDACT = {CONF_TEACHER_TOKEN, CONF_STUDENT_URL, CONF_TEACHER_URL, CONF_EXTRA_STUDENT_URLS}
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
            "calibration": (
                camera.reliability.diagnostics(dt_util.utcnow()) if camera.reliability else None
            ),
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
        "student_pool": _pool(entry),
        "prompt_version": data.prompt.version,
        "escalations_last_hour": data.escalations.last_hour(dt_util.utcnow()),
        "cameras": cameras,
        "history": _history(data),
    }


def _history(data: VisionTutorData) -> dict[str, Any] | None:
    """The event history's size and what it could not keep (no frames, no paths)."""
    history = data.history
    if history is None:
        return None
    return {
        "events": {camera: len(records) for camera, records in history.records.items()},
        "bytes": sum(r.size for records in history.records.values() for r in records.values()),
        "max_bytes": history.max_bytes,
        "max_days": history.max_age.total_seconds() / 86400,
        "write_failures": history.failures,
        "dropped": history.dropped,
        "last_error": history.last_error,
    }


def _pool(entry: VisionTutorConfigEntry) -> dict[str, Any] | None:
    """Each student host (as "host N", in the order of the entry) with its cameras, and the
    last moves of cameras between them; None with a single host."""
    data = entry.runtime_data
    pool = data.pool
    if pool is None:
        return None
    label = {url: f"host {number}" for number, url in enumerate(pool.hosts, start=1)}
    return {
        "hosts": [
            {
                "host": label[url],
                "reachable": data.hosts[url].last_update_success,
                "model_present": (
                    data.hosts[url].data.model_present if data.hosts[url].data else None
                ),
                "healthy": pool.healthy[url],
                "cameras": pool.cameras_on(url),
                "load_frames_per_minute": round(pool.load(url), 2),
            }
            for url in pool.hosts
        ],
        "moves": [
            {
                "camera": move.camera,
                "from": label[move.source] if move.source else None,
                "to": label[move.target],
            }
            for move in pool.moves[-10:]
        ],
    }
