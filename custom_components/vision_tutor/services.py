"""Actions: analyse a camera now; drive the prompt lab (synthesize, score, promote, add cases)."""

from __future__ import annotations

import base64
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
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.update_coordinator import UpdateFailed

from .const import DOMAIN
from .contract import SAFETY_FLAGS
from .coordinator import CameraCoordinator
from .lab import PromptLab
from .pipeline import Analysis
from .routing import shown_confidence
from .teacher import TeacherRequestError

SERVICE_ANALYZE = "analyze"
SERVICE_SYNTHESIZE = "synthesize_prompts"
SERVICE_SCORE = "score_prompts"
SERVICE_PROMOTE = "promote_prompt"
SERVICE_ADD_CASE = "add_validation_case"
ATTR_CAMERA = "camera"
ATTR_FORCE_TEACHER = "force_teacher"
ATTR_CONFIG_ENTRY = "config_entry_id"

# Which camera is checked by the action itself, so a call without one gets a translated error
# rather than the validator's text.
ANALYZE_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CAMERA): cv.entity_id,
        probatio.Optional(ATTR_DEVICE_ID): cv.string,
        probatio.Optional(ATTR_FORCE_TEACHER, default=False): cv.boolean,
    }
)


LAB_ENTRY = {probatio.Optional(ATTR_CONFIG_ENTRY): cv.string}
SYNTHESIZE_SCHEMA = probatio.Schema(
    {
        **LAB_ENTRY,
        probatio.Optional("count", default=5): probatio.All(
            probatio.Coerce(int), probatio.Range(min=1, max=10)
        ),
        probatio.Optional("notes", default=""): cv.string,
    }
)
SCORE_SCHEMA = probatio.Schema(
    {**LAB_ENTRY, probatio.Optional("versions"): probatio.All(cv.ensure_list, [cv.string])}
)
PROMOTE_SCHEMA = probatio.Schema({**LAB_ENTRY, probatio.Required("version"): cv.string})
ADD_CASE_SCHEMA = probatio.Schema(
    {
        probatio.Required(ATTR_CAMERA): cv.entity_id,
        probatio.Required("name"): cv.string,
        probatio.Optional("expected_keywords", default=[]): probatio.All(
            cv.ensure_list, [cv.string]
        ),
        probatio.Optional("forbidden_keywords", default=[]): probatio.All(
            cv.ensure_list, [cv.string]
        ),
        probatio.Optional("expected_flags", default=[]): probatio.All(
            cv.ensure_list, [probatio.In(SAFETY_FLAGS)]
        ),
        probatio.Optional("weight"): probatio.All(
            probatio.Coerce(float), probatio.Range(min=0.5, max=1.0)
        ),
    }
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
    for name, handler, schema in (
        (SERVICE_SYNTHESIZE, _async_synthesize, SYNTHESIZE_SCHEMA),
        (SERVICE_SCORE, _async_score, SCORE_SCHEMA),
        (SERVICE_PROMOTE, _async_promote, PROMOTE_SCHEMA),
        (SERVICE_ADD_CASE, _async_add_case, ADD_CASE_SCHEMA),
    ):
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.OPTIONAL
        )


async def _async_synthesize(call: ServiceCall) -> ServiceResponse:
    body = {"count": call.data["count"], "notes": call.data["notes"]}
    return await _lab_call(_find_lab(call), "POST", "/api/v1/prompts/synthesize", body)


async def _async_score(call: ServiceCall) -> ServiceResponse:
    body = {"versions": call.data.get("versions")}
    return await _lab_call(_find_lab(call), "POST", "/api/v1/prompts/score", body)


async def _async_promote(call: ServiceCall) -> ServiceResponse:
    path = f"/api/v1/prompts/{call.data['version']}/promote"
    return await _lab_call(_find_lab(call), "POST", path)


async def _async_add_case(call: ServiceCall) -> ServiceResponse:
    """Capture the camera's current frame as a validation case with what it should show."""
    camera = _find_camera(call.hass, call.data[ATTR_CAMERA], None)
    lab: PromptLab | None = camera.config_entry.runtime_data.lab
    if lab is None or lab.teacher is None:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_teacher")
    try:
        frame = await camera.async_grab_frame()
    except UpdateFailed as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=err.translation_key,
            translation_placeholders=err.translation_placeholders,
        ) from err
    case = {
        "name": call.data["name"],
        "image": base64.b64encode(frame.jpeg).decode("ascii"),
        "text": None,
        "expected_keywords": call.data["expected_keywords"],
        "forbidden_keywords": call.data["forbidden_keywords"],
        "expected_flags": call.data["expected_flags"],
        # Safety cases weigh more, as the lab's own default suite does.
        "weight": call.data.get("weight", 1.0 if call.data["expected_flags"] else 0.5),
        "split": None,
    }
    return await _lab_call(lab, "POST", "/api/v1/validation/cases", case)


def _find_lab(call: ServiceCall) -> PromptLab:
    """The lab of the entry named, or of the only loaded entry with a teacher service."""
    wanted = call.data.get(ATTR_CONFIG_ENTRY)
    labs = [
        entry.runtime_data.lab
        for entry in call.hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
        and entry.runtime_data.teacher is not None
        and wanted in (None, entry.entry_id)
    ]
    if not labs:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_teacher")
    if len(labs) > 1:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="choose_entry")
    lab: PromptLab = labs[0]
    return lab


async def _lab_call(lab: PromptLab, method: str, path: str, body: Any = None) -> dict[str, Any]:
    try:
        answer = await lab.async_request(method, path, body)
    except TeacherRequestError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="lab_request_failed",
            translation_placeholders={"error": str(err)},
        ) from err
    return answer if isinstance(answer, dict) else {"result": answer}


async def _async_analyze(call: ServiceCall) -> ServiceResponse:
    if not call.data.get(ATTR_CAMERA) and not call.data.get(ATTR_DEVICE_ID):
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_camera_given")
    camera = _find_camera(call.hass, call.data.get(ATTR_CAMERA), call.data.get(ATTR_DEVICE_ID))
    analysis = await camera.async_analyse_now(force_teacher=call.data[ATTR_FORCE_TEACHER])
    state = camera.data
    status = state.teacher_status if state.analysis is analysis else None
    return analysis_response(camera.camera_entity, analysis, status)


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


def teacher_status_text(analysis: Analysis, status: str | None) -> str:
    """What became of the frame with the teacher, in the words of the sensor's `teacher`
    attribute; "not sent" (and why) for a frame that was not escalated."""
    decision = analysis.decision
    if decision.escalate:
        return status or "sending"
    if decision.shed:
        return "not sent (shed: the teacher's queue was full)"
    return "not sent (no escalation signal)"


def analysis_response(
    camera: str, analysis: Analysis, teacher_status: str | None = None
) -> dict[str, Any]:
    """An analysis as JSON-friendly response data."""
    observation = analysis.observation
    decision = analysis.decision
    return {
        "camera": camera,
        "summary": observation.summary if observation else None,
        "observations": list(observation.observations) if observation else [],
        "safety_flags": list(observation.safety_flags) if observation else [],
        "confidence": shown_confidence(observation.confidence) if observation else None,
        "effective_confidence": shown_confidence(decision.effective_confidence),
        "teacher": teacher_status_text(analysis, teacher_status),
        "calibrated_confidence": (
            shown_confidence(analysis.confidence.reported)
            if analysis.confidence.calibrated
            else None
        ),
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
