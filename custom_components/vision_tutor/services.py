"""Actions: analyse a camera now and get the result back."""

from __future__ import annotations

from typing import Any

import probatio

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr

from .const import DOMAIN
from .coordinator import CameraCoordinator
from .pipeline import Analysis

SERVICE_ANALYZE = "analyze"
ATTR_CAMERA = "camera"
ATTR_FORCE_TEACHER = "force_teacher"

ANALYZE_SCHEMA = probatio.All(
    probatio.Schema(
        {
            probatio.Optional(ATTR_CAMERA): cv.entity_id,
            probatio.Optional(ATTR_DEVICE_ID): cv.string,
            probatio.Optional(ATTR_FORCE_TEACHER, default=False): cv.boolean,
        }
    ),
    cv.has_at_least_one_key(ATTR_CAMERA, ATTR_DEVICE_ID),
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, for all entries)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_ANALYZE,
        _async_analyze,
        schema=ANALYZE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


async def _async_analyze(call: ServiceCall) -> ServiceResponse:
    camera = _find_camera(call.hass, call.data.get(ATTR_CAMERA), call.data.get(ATTR_DEVICE_ID))
    analysis = await camera.async_analyse_now(force_teacher=call.data[ATTR_FORCE_TEACHER])
    return analysis_response(camera.camera_entity, analysis)


def _find_camera(
    hass: HomeAssistant, camera: str | None, device_id: str | None
) -> CameraCoordinator:
    """The coordinator of a monitored camera, by camera entity or by its Vision Tutor device."""
    subentry_id: str | None = None
    if device_id is not None:
        device = dr.async_get(hass).async_get(device_id)
        identifiers = device.identifiers if device else set()
        subentry_id = next((ident for domain, ident in identifiers if domain == DOMAIN), None)
        # The hub device's identifier is its config entry's id: it is not a camera either.
        if subentry_id is None or hass.config_entries.async_get_entry(subentry_id) is not None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="device_not_a_camera",
                translation_placeholders={"device_id": device_id},
            )
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is not ConfigEntryState.LOADED:
            continue
        cameras: dict[str, CameraCoordinator] = entry.runtime_data.cameras
        for found_id, coordinator in cameras.items():
            if found_id == subentry_id or (camera and coordinator.camera_entity == camera):
                return coordinator
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="camera_not_monitored",
        translation_placeholders={"camera": camera or device_id or ""},
    )


def analysis_response(camera: str, analysis: Analysis) -> dict[str, Any]:
    """An analysis as JSON-friendly response data."""
    observation = analysis.observation
    decision = analysis.decision
    return {
        "camera": camera,
        "summary": observation.summary if observation else None,
        "observations": list(observation.observations) if observation else [],
        "safety_flags": list(observation.safety_flags) if observation else [],
        "confidence": observation.confidence if observation else None,
        "effective_confidence": decision.effective_confidence,
        "student_error": None if observation else getattr(analysis.result, "reason", None),
        "escalated": decision.escalate,
        "escalation_reason": str(decision.reason) if decision.reason else None,
        "escalation_detail": decision.detail,
        "safety": {
            "on": analysis.safety.on,
            "flags": list(analysis.safety.flags),
            "confirmed_by_teacher": analysis.safety.confirmed_by_teacher,
        },
        "source": analysis.source,
        "model": analysis.model,
        "prompt_version": analysis.prompt_version,
        "latency_ms": round(analysis.latency_ms),
        "analysed_at": analysis.analysed_at.isoformat(),
    }
