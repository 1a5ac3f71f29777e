"""Sensors: what each camera sees and how sure the student is; escalations and prompt version."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from . import VisionTutorConfigEntry, VisionTutorData
from .coordinator import CameraCoordinator, CameraState
from .entity import CameraEntity, HostEntity
from .pipeline import Analysis
from .reliability import CameraReliability
from .routing import shown_confidence

# Coordinators do the fetching; entities only read their data.
PARALLEL_UPDATES = 0

STATE_MAX_CHARS = 255


@dataclass(frozen=True, kw_only=True)
class CameraSensorEntityDescription(SensorEntityDescription):
    """A camera sensor: its value and attributes from the camera's state."""

    value_fn: Callable[[CameraState], str | float | None]
    attributes_fn: Callable[[CameraState], Mapping[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class ReliabilitySensorEntityDescription(SensorEntityDescription):
    """A camera sensor about its calibration from the teacher's verdicts."""

    value_fn: Callable[[CameraReliability], float | None]
    attributes_fn: Callable[[CameraReliability], Mapping[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class HostSensorEntityDescription(SensorEntityDescription):
    """A hub sensor: its value from the entry's runtime data."""

    value_fn: Callable[[VisionTutorData], str | int | float | None]
    needs_teacher: bool = False
    """Only added when a teacher is configured; unavailable while the service does not work
    (its stream is down, or escalations do not get through)."""
    always_available: bool = False
    """Available even while the teacher service does not work (the outbox: that is its point)."""
    attributes_fn: Callable[[VisionTutorData], Mapping[str, Any]] | None = None


def _summary(state: CameraState) -> str | None:
    analysis = state.analysis
    if analysis is None:
        return None
    if (observation := analysis.observation) is None:
        # Never a blank or "clear" state for an answer nobody could read.
        return "Student error: the answer could not be read"
    return observation.summary[:STATE_MAX_CHARS]


def _observation_attributes(state: CameraState) -> Mapping[str, Any]:
    analysis = state.analysis
    if analysis is None:
        return {}
    observation = analysis.observation
    decision = analysis.decision
    student = analysis.student_observation
    student_result = analysis.student_result if analysis.source == "teacher" else analysis.result
    return {
        "observations": list(observation.observations) if observation else [],
        "safety_flags": list(observation.safety_flags) if observation else [],
        # Whose answer is on display, whose confidences: the teacher's, or the student's.
        "confidence": shown_confidence(observation.confidence) if observation else None,
        "effective_confidence": shown_confidence(_effective(state)),
        "student_confidence": shown_confidence(student.confidence) if student else None,
        "student_effective_confidence": shown_confidence(_student_confidence(analysis)),
        "student_token_confidence": shown_confidence(analysis.confidence.token),
        "confidence_calibrated": analysis.confidence.calibrated,
        "source": analysis.source,
        "escalated": decision.escalate,
        "escalation_reason": str(decision.reason) if decision.reason else None,
        "escalation_detail": decision.detail,
        "teacher": state.teacher_status,
        "teacher_unavailable": state.teacher_unavailable,
        "student_error": getattr(student_result, "reason", None),
        "prompt_version": analysis.prompt_version,
        "model": analysis.model,
        "latency_ms": round(analysis.latency_ms),
        "analysed_at": analysis.analysed_at,
        # The latest frame's answer stays on display; this says no newer frame is coming.
        "paused": state.paused,
        # The frame's event in the history (Media → Vision Tutor), when it was kept.
        "snapshot": state.snapshot,
    }


def _effective(state: CameraState) -> float | None:
    """The confidence of the answer on display.

    The student's is the calibrated probability that it is right once the camera's calibration
    is in use, and until then its stated confidence lowered by token evidence; the teacher's is
    its stated one (its review returns no token evidence), so never the student's next to the
    teacher's answer.
    """
    if state.analysis is None:
        return None
    if state.analysis.source == "teacher":
        observation = state.analysis.observation
        return observation.confidence if observation else None
    return _student_confidence(state.analysis)


def _student_confidence(analysis: Analysis) -> float | None:
    if analysis.confidence.calibrated:
        return shown_confidence(analysis.confidence.reported)
    return analysis.decision.effective_confidence


def _confidence_attributes(state: CameraState) -> Mapping[str, Any]:
    """The student's confidence every way it is measured, beside the one the state shows."""
    analysis = state.analysis
    if analysis is None:
        return {}
    confidence = analysis.confidence
    return {
        "stated": confidence.stated,
        "token_based": shown_confidence(confidence.token),
        "calibrated": confidence.calibrated,
        "min_confidence": shown_confidence(confidence.min_confidence),
    }


def _confidence_percent(state: CameraState) -> float | None:
    effective = shown_confidence(_effective(state))
    return None if effective is None else round(effective * 100, 1)


CAMERA_SENSORS: tuple[CameraSensorEntityDescription, ...] = (
    CameraSensorEntityDescription(
        key="observation",
        translation_key="observation",
        value_fn=_summary,
        attributes_fn=_observation_attributes,
    ),
    CameraSensorEntityDescription(
        key="confidence",
        translation_key="confidence",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=_confidence_percent,
        attributes_fn=_confidence_attributes,
    ),
)


def _reliability_attributes(reliability: CameraReliability) -> Mapping[str, Any]:
    measured = reliability.calibration.reliability(dt_util.utcnow().timestamp())
    return {
        "interval_low": round(measured.low * 100, 1),
        "interval_high": round(measured.high * 100, 1),
        "audits": measured.audits,
        "calibrated": reliability.calibration.fit_for("all", dt_util.utcnow().timestamp())
        is not None,
    }


def _agreement_percent(reliability: CameraReliability) -> float | None:
    measured = reliability.calibration.reliability(dt_util.utcnow().timestamp())
    return None if measured.agreement is None else round(measured.agreement * 100, 1)


def _missed_per_day(reliability: CameraReliability) -> float | None:
    now = dt_util.utcnow()
    estimate = reliability.calibration.missed_hazards_per_day(
        reliability.bucket(now), now.timestamp()
    )
    return None if estimate is None else round(estimate, 2)


RELIABILITY_SENSORS: tuple[ReliabilitySensorEntityDescription, ...] = (
    ReliabilitySensorEntityDescription(
        key="student_reliability",
        translation_key="student_reliability",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=_agreement_percent,
        attributes_fn=_reliability_attributes,
    ),
    ReliabilitySensorEntityDescription(
        key="missed_hazards_per_day",
        translation_key="missed_hazards_per_day",
        native_unit_of_measurement="hazards/d",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=_missed_per_day,
    ),
)

HOST_SENSORS: tuple[HostSensorEntityDescription, ...] = (
    HostSensorEntityDescription(
        key="escalations_per_hour",
        translation_key="escalations_per_hour",
        native_unit_of_measurement="escalations/h",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: data.escalations.last_hour(dt_util.utcnow()),
    ),
    HostSensorEntityDescription(
        key="teacher_queue_depth",
        translation_key="teacher_queue_depth",
        native_unit_of_measurement="reviews",
        state_class=SensorStateClass.MEASUREMENT,
        needs_teacher=True,
        value_fn=lambda data: data.teacher.queue_depth if data.teacher else None,
    ),
    HostSensorEntityDescription(
        key="teacher_outbox",
        translation_key="teacher_outbox",
        native_unit_of_measurement="escalations",
        state_class=SensorStateClass.MEASUREMENT,
        needs_teacher=True,
        always_available=True,
        value_fn=lambda data: data.outbox.depth if data.outbox else None,
        attributes_fn=lambda data: data.outbox.summary() if data.outbox else {},
    ),
    HostSensorEntityDescription(
        key="teacher_agreement",
        translation_key="teacher_agreement",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        needs_teacher=True,
        value_fn=lambda data: (
            round(data.teacher.agreement_rate * 100, 1)
            if data.teacher and data.teacher.agreement_rate is not None
            else None
        ),
    ),
    HostSensorEntityDescription(
        key="prompt_lab_progress",
        translation_key="prompt_lab_progress",
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        needs_teacher=True,
        value_fn=lambda data: (
            round(data.lab.job.progress * 100, 1) if data.lab and data.lab.job else None
        ),
        attributes_fn=lambda data: (
            {
                "job_id": data.lab.job.job_id,
                "kind": data.lab.job.kind,
                "state": data.lab.job.state,
                "message": data.lab.job.message,
            }
            if data.lab and data.lab.job
            else {}
        ),
    ),
    HostSensorEntityDescription(
        key="active_prompt_version",
        translation_key="active_prompt_version",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda data: data.prompt.version,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VisionTutorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's sensors, and each camera's under its subentry."""
    data = entry.runtime_data
    async_add_entities(
        HostSensor(data, description)
        for description in HOST_SENSORS
        if data.teacher is not None or not description.needs_teacher
    )
    for subentry_id, camera in data.cameras.items():
        async_add_entities(
            (CameraSensor(camera, description) for description in CAMERA_SENSORS),
            config_subentry_id=subentry_id,
        )
        if camera.reliability is not None:
            async_add_entities(
                (ReliabilitySensor(camera, description) for description in RELIABILITY_SENSORS),
                config_subentry_id=subentry_id,
            )


class CameraSensor(CameraEntity, RestoreSensor):
    """A camera's observation or confidence; restored after a restart until the next frame."""

    entity_description: CameraSensorEntityDescription

    def __init__(
        self, coordinator: CameraCoordinator, description: CameraSensorEntityDescription
    ) -> None:
        super().__init__(coordinator, description)
        self._restored_value: str | float | None = None
        self._restored_attributes: Mapping[str, Any] = {}

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if self.coordinator.data.analysis is not None:
            return
        if (last := await self.async_get_last_sensor_data()) is not None:
            value = last.native_value
            self._restored_value = value if isinstance(value, str | int | float) else None
        if (state := await self.async_get_last_state()) is not None and self.attributes_restorable:
            self._restored_attributes = dict(state.attributes)

    @property
    def attributes_restorable(self) -> bool:
        """Only the observation's attributes are worth restoring."""
        return self.entity_description.key == "observation"

    @property
    @override
    def native_value(self) -> str | float | None:
        if self.coordinator.data.analysis is None:
            return self._restored_value
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        if self.coordinator.data.analysis is None and self._restored_attributes:
            return {**self._restored_attributes, "restored": True}
        return attributes_fn(self.coordinator.data)


class ReliabilitySensor(CameraEntity, SensorEntity):
    """How far a camera's student can be trusted, from the teacher's audits (saved samples:
    nothing to restore)."""

    entity_description: ReliabilitySensorEntityDescription

    def __init__(
        self, coordinator: CameraCoordinator, description: ReliabilitySensorEntityDescription
    ) -> None:
        super().__init__(coordinator, description)
        assert coordinator.reliability is not None
        self._reliability = coordinator.reliability

    @property
    @override
    def available(self) -> bool:
        # Computed from saved samples: no need for the camera's last frame to have worked.
        return True

    @property
    @override
    def native_value(self) -> float | None:
        return self.entity_description.value_fn(self._reliability)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self._reliability)


class HostSensor(HostEntity, SensorEntity):
    """A hub sensor over all of the host's cameras."""

    entity_description: HostSensorEntityDescription

    def __init__(self, data: VisionTutorData, description: HostSensorEntityDescription) -> None:
        super().__init__(data.host, description)
        self._data = data

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        # Escalations happen when a camera analyses a frame, not when the host is polled:
        # update with every camera, not only once a minute.
        for camera in self._data.cameras.values():
            self.async_on_remove(camera.async_add_listener(self._handle_coordinator_update))

    @property
    @override
    def available(self) -> bool:
        # Counting escalations and naming the prompt does not need the host to answer.
        if self.entity_description.needs_teacher:
            if self._data.teacher is None:
                return False
            return self.entity_description.always_available or self._data.teacher.available
        return True

    @property
    @override
    def native_value(self) -> str | int | float | None:
        return self.entity_description.value_fn(self._data)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self._data)
