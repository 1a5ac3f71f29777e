"""Coordinators: one per camera (frame -> student -> policy -> state) and one for the host."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import logging
import math
import random
from typing import TYPE_CHECKING, Any, Literal, override
import uuid

import httpx
import ollama

from homeassistant.components.camera import async_get_image
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import (
    CONF_CAMERA_ENTITY,
    CONF_DISMISSAL_CLEARS,
    CONF_MOTION_ENTITY,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONNECT_TIMEOUT,
    DEFAULT_DISMISSAL_CLEARS,
    DOMAIN,
    EVENT_ESCALATION,
    EVENT_SAFETY,
    EVENT_TEACHER_REVIEW,
)
from .contract import OBSERVATION_SCHEMA, Observation, StudentError, normalise_flag
from .frames import (
    BadFrame,
    ImageLimiter,
    PreparedFrame,
    decode_thumbnail,
    default_image_workers,
    prepare_frame,
)
from .history import LINK_KEYS, CameraHistory
from .history_store import Verdict
from .ollama_client import (
    FORMAT_FIXED_GEMMA4,
    FORMAT_FIXED_THINKING,
    LOGPROBS_SINCE,
    async_model_info,
    async_server_version,
    drops_format_without_thinking,
    serves_logprobs,
    version_text,
)
from .outbox import DELIVERED, EscalationOutbox, OutboxEntry, Outcome
from .pipeline import (
    Analysis,
    CameraPipeline,
    PipelineSettings,
    QueuedTooLong,
    Student,
    StudentTimeout,
    StudentUnavailable,
)
from .prompts import (
    BUILTIN_PROMPT_VERSION,
    STUDENT_SYSTEM_PROMPT,
    TEACHER_REVIEW_PROMPT,
    student_system_prompt,
)
from .reliability import CameraReliability
from .routing import EscalationReason
from .teacher import TeacherLink

if TYPE_CHECKING:
    from . import VisionTutorConfigEntry

_LOGGER = logging.getLogger(__name__)

HUB_POLL_INTERVAL = timedelta(seconds=60)
UNREACHABLE_REPAIR_AFTER = timedelta(minutes=10)
"""How long the student host may be down before a repair issue says so."""
HOST_DOWN_SINCE: HassKey[dict[str, datetime]] = HassKey(f"{DOMAIN}_host_down_since")
SLOW_WINDOW = 10
"""The slow-student repair looks at a camera's last this many analysed frames."""
SLOW_RAISE = 6
"""Timeouts among them that raise the repair ("most frames time out")."""
SLOW_CLEAR = 3
"""Timeouts among them at or below which it goes away again."""
IMAGE_LIMITER: HassKey[ImageLimiter] = HassKey(f"{DOMAIN}_image_limiter")
POOL_ISSUES = frozenset({"student_unreachable", "model_missing"})
"""Repairs worded otherwise for a host of a student pool (the other hosts take its cameras)."""

type SkipReason = Literal["unchanged", "queued_too_long"]


def image_limiter(hass: HomeAssistant) -> ImageLimiter:
    """The limiter every camera of every entry shares for decoding and scaling frames."""
    if (limiter := hass.data.get(IMAGE_LIMITER)) is None:
        limiter = hass.data[IMAGE_LIMITER] = ImageLimiter(default_image_workers())
    return limiter


type SafetyEventType = Literal[
    "hazard_detected", "hazard_cleared", "teacher_confirmed", "teacher_dismissed"
]


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """A change of a camera's safety state, for the event entity and automations."""

    type: SafetyEventType
    flags: tuple[str, ...]
    confidence: float | None
    snapshot: str | None = None
    """The media content id of the frame this is about in the event history, when it was
    kept."""


@dataclass(frozen=True, slots=True)
class CameraState:
    """What a camera's entities show."""

    analysis: Analysis | None = None
    """The latest analysed frame (kept while unchanged frames are skipped)."""
    last_checked: datetime | None = field(default=None, compare=False)
    """When a frame was last grabbed, analysed or not. Not an attribute (it would make every
    grabbed frame a state change in the recorder) and not compared: a skipped frame leaves the
    state equal, so the coordinator does not even wake the entities."""
    escalated: bool = False
    escalation_id: str | None = None
    """The idempotency key the latest escalation was sent with; its verdict carries it back."""
    teacher_unavailable: bool = False
    """The latest escalation has not reached the teacher: none is configured, or it is down."""
    teacher_status: str | None = None
    """What became of the latest escalation: "sending", "queued", "reviewed", or
    "not reviewed (why)"; None when the frame was not escalated."""
    events: tuple[SafetyEvent, ...] = ()
    """Safety changes produced by the latest analysis, fired once each."""
    sequence: int = 0
    """Counts analyses, so entities fire each event once."""
    paused: bool = False
    """The camera's analysis switch is off: no frame is grabbed or analysed, and the safety
    sensor does not know (it never says "no hazard" about frames nobody looked at)."""
    snapshot: str | None = None
    """The media content id of the frame on display in the event history, when it was kept
    (hazards and frames sent to the teacher are)."""


@dataclass(slots=True)
class ActivePrompt:
    """The student's system prompt in use and its version."""

    text: str = STUDENT_SYSTEM_PROMPT
    version: str = BUILTIN_PROMPT_VERSION


@dataclass(slots=True)
class EscalationLog:
    """Escalations across the host's cameras, for the per-hour sensor."""

    times: deque[datetime] = field(default_factory=deque)

    def record(self, at: datetime) -> None:
        """Count one escalation."""
        self.times.append(at)

    def last_hour(self, now: datetime) -> int:
        """Escalations in the hour up to `now`."""
        while self.times and self.times[0] <= now - timedelta(hours=1):
            self.times.popleft()
        return len(self.times)


@dataclass(frozen=True, slots=True)
class HostState:
    """The student host as the hub device shows it."""

    models: tuple[str, ...]
    model_present: bool


class HostCoordinator(DataUpdateCoordinator[HostState]):
    """Polls the student host: connectivity, and whether the student model is still there."""

    config_entry: VisionTutorConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: VisionTutorConfigEntry,
        client: ollama.AsyncClient,
        *,
        url: str | None = None,
        key: str = "",
    ) -> None:
        """`url` and `key` for another host of a student pool (see `student_pool`): its
        address, and what tells its repairs from the first host's."""
        self.url: str = url or entry.data[CONF_STUDENT_URL]
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} host {self.url}",
            update_interval=HUB_POLL_INTERVAL,
        )
        self.client = client
        self.key = key
        self.pooled = False
        """One of several student hosts (set by the entry's setup)."""

    @property
    def _down_key(self) -> str:
        return f"{self.config_entry.entry_id}{self.key}"

    @property
    def _down_since(self) -> datetime | None:
        """When the host stopped answering; kept across setup retries of the entry."""
        return self.hass.data.get(HOST_DOWN_SINCE, {}).get(self._down_key)

    @_down_since.setter
    def _down_since(self, since: datetime | None) -> None:
        down = self.hass.data.setdefault(HOST_DOWN_SINCE, {})
        if since is None:
            down.pop(self._down_key, None)
        else:
            down[self._down_key] = since

    async def _async_update_data(self) -> HostState:
        url = self.url
        model = self.config_entry.data[CONF_STUDENT_MODEL]
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                tags = await self.client.list()
        except (
            TimeoutError,
            ConnectionError,
            httpx.TransportError,
            ollama.ResponseError,
            OSError,
        ) as err:
            now = dt_util.utcnow()
            self._down_since = self._down_since or now
            if now - self._down_since >= UNREACHABLE_REPAIR_AFTER:
                self._issue("student_unreachable", {"url": url})
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="student_unreachable",
                translation_placeholders={"url": url, "error": str(err) or type(err).__name__},
            ) from err
        self._down_since = None
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id("student_unreachable"))
        models = tuple(m.model for m in tags.models if m.model)
        present = any(_same_model(listed, model) for listed in models)
        if present:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id("model_missing"))
            await self._async_check_server(url, model)
        else:
            self._issue("model_missing", {"url": url, "model": model})
        return HostState(models=models, model_present=present)

    async def _async_check_server(self, url: str, model: str) -> None:
        """Repairs for what the Ollama release and the model's capabilities will not do.

        Checked at every poll, so an upgraded Ollama or another model clears them. A server
        that does not say is given the benefit of the doubt.
        """
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                version = await async_server_version(self.client)
                info = await async_model_info(self.client, model)
        except (
            TimeoutError,
            ConnectionError,
            httpx.HTTPError,
            ollama.ResponseError,
            ValueError,
        ) as err:
            _LOGGER.debug("Could not read the release or %s from %s: %s", model, url, err)
            return
        found = {"url": url, "model": model, "version": version_text(version)}
        self._issue_if(not info.vision, "student_not_vision", found)
        self._issue_if(
            not serves_logprobs(version),
            "ollama_no_logprobs",
            {**found, "needed": version_text(LOGPROBS_SINCE)},
            severity=ir.IssueSeverity.WARNING,
        )
        fixed_in = FORMAT_FIXED_GEMMA4 if info.gemma4 else FORMAT_FIXED_THINKING
        self._issue_if(
            drops_format_without_thinking(version, info),
            "ollama_format_dropped",
            {**found, "needed": version_text(fixed_in)},
            severity=ir.IssueSeverity.WARNING,
        )

    def _issue_if(
        self,
        condition: bool,
        key: str,
        placeholders: dict[str, str],
        *,
        severity: ir.IssueSeverity = ir.IssueSeverity.ERROR,
    ) -> None:
        if condition:
            self._issue(key, placeholders, severity=severity)
        else:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(key))

    def report_model_missing(self) -> None:
        """A chat answered 404: say so now rather than at the next poll."""
        self._issue(
            "model_missing", {"url": self.url, "model": self.config_entry.data[CONF_STUDENT_MODEL]}
        )

    def _issue_id(self, key: str) -> str:
        return f"{key}_{self.config_entry.entry_id}{self.key}"

    def _issue(
        self,
        key: str,
        placeholders: dict[str, str],
        *,
        severity: ir.IssueSeverity = ir.IssueSeverity.ERROR,
    ) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(key),
            is_fixable=False,
            severity=severity,
            # In a student pool the other hosts go on analysing: the pool's wording says so.
            translation_key=f"pool_{key}" if self.pooled and key in POOL_ISSUES else key,
            translation_placeholders=placeholders,
        )


def _same_model(listed: str, wanted: str) -> bool:
    """Ollama lists "name:latest" for a model pulled as "name"."""
    return listed == wanted or listed.removesuffix(":latest") == wanted.removesuffix(":latest")


class CameraCoordinator(DataUpdateCoordinator[CameraState]):
    """Analyses one camera's frames on an interval, on motion, or on request."""

    config_entry: VisionTutorConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: VisionTutorConfigEntry,
        subentry: ConfigSubentry,
        *,
        student: Student,
        settings: PipelineSettings,
        frame_width: int,
        prompt: ActivePrompt,
        escalations: EscalationLog,
        host: HostCoordinator,
        teacher: TeacherLink | None,
        outbox: EscalationOutbox | None = None,
        history: CameraHistory | None = None,
        phase: float = 0.0,
        reliability: CameraReliability | None = None,
    ) -> None:
        interval = int(subentry.data.get(CONF_SCAN_INTERVAL) or 0)
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {subentry.data[CONF_CAMERA_ENTITY]}",
            update_interval=timedelta(seconds=interval) if interval > 0 else None,
            # Listeners only hear of a refresh that changed something (a skipped frame does not).
            always_update=False,
        )
        self.phase = phase
        """Seconds into each interval at which this camera's periodic analysis runs, so the
        cameras of an entry take turns instead of all grabbing in the same instant."""
        self.skipped: Counter[SkipReason] = Counter()
        """Grabbed frames that were not analysed, by reason."""
        self.limiter = image_limiter(hass)
        self.subentry = subentry
        self.camera_entity: str = subentry.data[CONF_CAMERA_ENTITY]
        self.motion_entity: str | None = subentry.data.get(CONF_MOTION_ENTITY) or None
        self.scene_description: str | None = subentry.data.get(CONF_SCENE_DESCRIPTION) or None
        self.reliability = reliability
        """The camera's calibration from teacher verdicts; None without a teacher."""
        self.pipeline = CameraPipeline(
            student,
            settings,
            rng=random.Random(f"{entry.entry_id}/{subentry.subentry_id}"),
            calibration=reliability.calibration if reliability else None,
        )
        self.frame_width = frame_width
        self.prompt = prompt
        self.escalations = escalations
        self.host = host
        self.teacher = teacher
        self.outbox = outbox
        self.history = history
        self._lock = asyncio.Lock()
        self.data = CameraState()
        self._timeouts: deque[bool] = deque(maxlen=SLOW_WINDOW)
        """Whether each of the last analysed frames timed out, for the slow-student repair."""

    @callback
    def async_start_motion_trigger(self) -> None:
        """Analyse as soon as the motion sensor turns on (if one is configured)."""
        if self.motion_entity is None:
            return
        self.config_entry.async_on_unload(
            async_track_state_change_event(self.hass, self.motion_entity, self._motion_changed)
        )

    @property
    def paused(self) -> bool:
        """Whether the camera's analysis is switched off."""
        return self.data.paused

    @callback
    def async_set_paused(self, paused: bool) -> None:
        """Switch the camera's analysis off or back on (the analysis switch, or its restore).

        Back on, a camera with an interval analyses at once rather than an interval later.
        """
        if paused == self.data.paused:
            return
        self.async_set_updated_data(replace(self.data, paused=paused, events=()))
        if not paused and self.update_interval is not None:
            self.config_entry.async_create_background_task(
                self.hass, self.async_request_refresh(), f"{DOMAIN} resume {self.camera_entity}"
            )

    @callback
    def _motion_changed(self, event: Event[EventStateChangedData]) -> None:
        new, old = event.data["new_state"], event.data["old_state"]
        if self.paused:
            return
        if new is None or new.state != "on" or (old is not None and old.state == "on"):
            return
        self.config_entry.async_create_background_task(
            self.hass, self._analyse_on_motion(), f"{DOMAIN} motion {self.camera_entity}"
        )

    async def _analyse_on_motion(self) -> None:
        try:
            await self.async_analyse_now()
        except HomeAssistantError as err:
            _LOGGER.debug("Motion-triggered analysis of %s failed: %s", self.camera_entity, err)

    async def _async_update_data(self) -> CameraState:
        if self.paused:
            # Nothing grabbed, nothing sent: the state stays as it is (listeners do not wake).
            return replace(self.data, events=())
        return await self._run(force=False)

    async def async_analyse_now(self, *, force_teacher: bool = False) -> Analysis:
        """Analyse the current frame now, past the change gate; for actions, motion, the button.

        Refused while the camera's analysis is switched off: a paused camera sends no frame.
        """
        if self.paused:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="camera_paused",
                translation_placeholders={"camera": self.camera_entity},
            )
        try:
            state = await self._run(force=True, force_teacher=force_teacher)
        except UpdateFailed as err:
            self.async_set_update_error(err)
            raise HomeAssistantError(
                translation_domain=err.translation_domain,
                translation_key=err.translation_key,
                translation_placeholders=err.translation_placeholders,
            ) from err
        self.async_set_updated_data(state)
        if state.analysis is None:  # a forced run always analyses; this is for the type checker
            raise HomeAssistantError("no analysis was made")
        return state.analysis

    @override
    def _schedule_refresh(self) -> None:
        """Schedule the next periodic refresh at this camera's phase of the interval.

        Home Assistant runs every coordinator at the same fraction of a second; with many
        cameras their frames would then all be decoded in the same instant.
        """
        interval = self.update_interval
        if interval is not None and self._retry_after is None:
            seconds = interval.total_seconds()
            now = self.hass.loop.time()
            # The next slot of this camera's grid, no later than one interval (and a little) from
            # now, and not right away: a refresh that ran late does not run again at once.
            gap = min(seconds / 10, 1.0)
            slot = (math.floor((now + gap - self.phase) / seconds) + 1) * seconds + self.phase
            self._microsecond = slot - int(now) - seconds
        super()._schedule_refresh()

    async def _run(self, *, force: bool, force_teacher: bool = False) -> CameraState:
        async with self._lock:
            now = dt_util.utcnow()
            raw = await self._async_grab_raw()
            thumbnail = await self._async_image_job(decode_thumbnail, raw)
            previous = self.data
            gate = self.pipeline.should_analyse(thumbnail, now, forced=force)
            if not gate.analyse:
                return self._skip("unchanged", now)
            frame = await self._async_image_job(prepare_frame, raw, self.frame_width)
            prompt = student_system_prompt(self.prompt.text, self.scene_description)
            try:
                analysis = await self.pipeline.analyse(
                    frame,
                    system_prompt=prompt,
                    prompt_version=self.prompt.version,
                    now=now,
                    thumbnail=thumbnail,
                    bucket=self.reliability.bucket(now) if self.reliability else "all",
                )
            except QueuedTooLong as err:
                if force:  # an action or motion asked for this frame: say why there is none
                    raise HomeAssistantError(
                        translation_domain=DOMAIN,
                        translation_key="student_queue_timeout",
                        translation_placeholders={"error": str(err)},
                    ) from err
                _LOGGER.debug("Skipped a frame of %s: %s", self.camera_entity, err)
                return self._skip("queued_too_long", now)
            except StudentUnavailable as err:
                raise self._student_unavailable(err) from err
            self._count_timeout(analysis)
            if force_teacher:
                analysis = _sent_to_teacher(analysis)
            events = _safety_events(previous.analysis, analysis)
            escalated = analysis.decision.escalate
            escalation_id = self._escalate(analysis, now) if escalated else None
            snapshot = (
                self.history.remember(
                    analysis,
                    escalation_id,
                    hazard_detected=any(e.type == "hazard_detected" for e in events),
                )
                if self.history is not None
                else None
            )
            events = _with_snapshot(events, snapshot)
            self._fire_safety_events(events)
            return CameraState(
                analysis=analysis,
                last_checked=now,
                escalated=escalated,
                escalation_id=escalation_id,
                teacher_unavailable=escalated
                and (self.teacher is None or not self.teacher.available),
                teacher_status=(
                    None
                    if not escalated
                    else "sending"
                    if self.outbox is not None
                    else "not reviewed (no teacher is configured)"
                ),
                events=events,
                sequence=previous.sequence + 1,
                # Switched off while this frame was being analysed: it stays off.
                paused=self.data.paused,
                snapshot=snapshot,
            )

    def links(self, snapshot: str | None) -> dict[str, str | None]:
        """Event data pointing at a kept frame in the event history (None values without)."""
        if self.history is None:
            return dict.fromkeys(LINK_KEYS)
        return self.history.links(snapshot)

    def _student_unavailable(self, err: StudentUnavailable) -> UpdateFailed:
        """The entities' failure for a host that is down or a model that is gone."""
        failure = UpdateFailed(
            translation_domain=DOMAIN,
            translation_key=f"student_{err.reason}",
            translation_placeholders={
                "url": err.url or self.config_entry.data[CONF_STUDENT_URL],
                "model": self.config_entry.data[CONF_STUDENT_MODEL],
                "error": str(err),
            },
        )
        if err.url is not None:
            pass  # a student pool's host: the pool told that host's coordinator already
        elif err.reason == "model_missing":
            self.host.report_model_missing()
        else:
            # The hub's connectivity sensor should not wait for its next poll.
            self.host.async_set_update_error(failure)
        return failure

    def _count_timeout(self, analysis: Analysis) -> None:
        """Raise a repair when most recent frames time out; clear it once few do."""
        self._timeouts.append(isinstance(analysis.result, StudentTimeout))
        timeouts = sum(self._timeouts)
        issue_id = f"student_too_slow_{self.config_entry.entry_id}_{self.subentry.subentry_id}"
        if len(self._timeouts) == SLOW_WINDOW and timeouts >= SLOW_RAISE:
            student = self.pipeline.student
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="student_too_slow",
                translation_placeholders={
                    "camera": self.camera_entity,
                    "timeouts": str(timeouts),
                    "frames": str(SLOW_WINDOW),
                    "timeout": f"{student.timeout:g}",
                    "model": student.model,
                    "width": str(self.frame_width),
                },
            )
        elif timeouts <= SLOW_CLEAR:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)

    def _fire_safety_events(self, events: tuple[SafetyEvent, ...]) -> None:
        for event in events:
            self.hass.bus.async_fire(
                EVENT_SAFETY,
                {
                    "camera": self.camera_entity,
                    "type": event.type,
                    "flags": list(event.flags),
                    "confidence": event.confidence,
                    **self.links(event.snapshot),
                },
            )

    @callback
    def async_apply_verdict(self, verdict: dict[str, Any]) -> None:
        """The teacher reviewed one of this camera's frames: show it, confirm or dismiss."""
        state = self.data
        try:
            teacher = _teacher_observation(verdict["verdict"])
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning(
                "Ignoring a malformed teacher verdict for %s: %s", self.camera_entity, err
            )
            return
        if self.reliability is not None:
            self.reliability.apply_verdict(verdict, teacher.safety_flags)
        key = verdict.get("idempotency_key")
        if state.analysis is None:
            # Nothing analysed since the start (a verdict on a frame from before a restart, on
            # a camera that waits for motion): no state to change, but automations hear it,
            # and the event history keeps it with its frame.
            outcome: Verdict = "confirmed" if teacher.safety_flags else "no_hazard"
            self._fire_review(verdict, teacher, self._remember_verdict(key, teacher, outcome))
            return
        now = dt_util.utcnow()
        window = self.pipeline.window
        student = state.analysis.observation
        student_flags = (
            (*student.safety_flags, *state.analysis.decision.safety_hits) if student else ()
        )
        events: tuple[SafetyEvent, ...] = ()
        if teacher.safety_flags:
            was_on = state.analysis.safety.on
            safety = window.teacher_confirmed(teacher.safety_flags, now)
            events = (SafetyEvent("teacher_confirmed", safety.flags, teacher.confidence),)
            if not was_on:
                events = (SafetyEvent("hazard_detected", safety.flags, teacher.confidence), *events)
        elif student_flags or state.analysis.safety.on:
            was_on = state.analysis.safety.on
            events = (SafetyEvent("teacher_dismissed", tuple(student_flags), teacher.confidence),)
            if self.config_entry.options.get(CONF_DISMISSAL_CLEARS, DEFAULT_DISMISSAL_CLEARS):
                window.teacher_dismissed()
                if was_on:
                    events = (*events, SafetyEvent("hazard_cleared", (), teacher.confidence))
            safety = window.state
        else:
            safety = window.state
        analysis = replace(state.analysis, safety=safety)
        outcome = (
            "confirmed"
            if teacher.safety_flags
            else "dismissed"
            if any(event.type == "teacher_dismissed" for event in events)
            else "no_hazard"
        )
        snapshot = self._remember_verdict(key, teacher, outcome)
        events = _with_snapshot(events, snapshot)
        teacher_status = state.teacher_status
        shown = state.snapshot
        if key == state.escalation_id:
            # The verdict is about the frame on display: the teacher's answer replaces it.
            analysis = replace(
                analysis,
                result=teacher,
                source="teacher",
                student_result=state.analysis.student_result or state.analysis.result,
            )
            teacher_status = "reviewed"
            shown = snapshot or shown
        self._fire_safety_events(events)
        self._fire_review(verdict, teacher, snapshot)
        self.async_set_updated_data(
            replace(
                state,
                analysis=analysis,
                events=events,
                sequence=state.sequence + 1,
                teacher_status=teacher_status,
                teacher_unavailable=False,
                snapshot=shown,
            )
        )

    def _remember_verdict(self, key: object, teacher: Observation, verdict: Verdict) -> str | None:
        return self.history.verdict(key, teacher, verdict) if self.history is not None else None

    def _fire_review(
        self, verdict: dict[str, Any], teacher: Observation, snapshot: str | None = None
    ) -> None:
        self.hass.bus.async_fire(
            EVENT_TEACHER_REVIEW,
            {
                "camera": self.camera_entity,
                "outcome": "reviewed",
                "review_id": verdict.get("review_id"),
                "reason": verdict.get("reason"),
                "summary": teacher.summary,
                "flags": list(teacher.safety_flags),
                "confidence": teacher.confidence,
                "agrees_with_student": verdict.get("agrees_with_student"),
                **self.links(snapshot),
            },
        )

    @callback
    def async_review_ended(self, review: dict[str, Any]) -> None:
        """The teacher service gave up on one of this camera's reviews: say it was not reviewed.

        The safety sensor keeps the student's evidence: no verdict is no dismissal.
        """
        status = str(review.get("status"))
        error = review.get("error")
        if self.reliability is not None:
            self.reliability.forget(review.get("idempotency_key"))
        why = {"shed": "shed: the teacher's queue was full", "superseded": "superseded"}.get(
            status, status
        )
        if error:
            why = f"{why}: {error}"
        elif status == "superseded" and review.get("superseded_by"):
            why = f"superseded by a newer review of this camera ({review['superseded_by']})"
        self.hass.bus.async_fire(
            EVENT_TEACHER_REVIEW,
            {
                "camera": self.camera_entity,
                "outcome": status,
                "review_id": review.get("review_id"),
                "reason": review.get("reason"),
                "error": error,
                "summary": None,
                "flags": [],
                "confidence": None,
                "agrees_with_student": None,
            },
        )
        status_text = f"not reviewed ({why})"
        if self.history is not None:
            self.history.review_ended(review.get("idempotency_key"), status_text)
        self._show_teacher_status(review.get("idempotency_key"), status_text)

    @callback
    def async_delivery(self, key: str, outcome: Outcome, details: Mapping[str, Any]) -> None:
        """The outbox's news about one of this camera's escalations."""
        error = details.get("error")
        if outcome in DELIVERED:
            self._show_teacher_status(key, "queued", unavailable=False)
        elif outcome == "retrying":
            self._show_teacher_status(key, f"sending: retrying ({error})", unavailable=True)
        else:
            self._show_teacher_status(key, f"not reviewed ({outcome}: {error})", unavailable=True)

    def _show_teacher_status(
        self, key: object, status: str, *, unavailable: bool | None = None
    ) -> None:
        state = self.data
        if key is None or key != state.escalation_id or state.teacher_status == "reviewed":
            return
        if status == "queued" and (state.teacher_status or "").startswith("not reviewed"):
            return  # the add-on's word on the review came before the outbox's on its delivery
        # Not async_set_updated_data: this is no new analysis, the scan interval stays put.
        self.data = replace(
            state,
            teacher_status=status,
            teacher_unavailable=(state.teacher_unavailable if unavailable is None else unavailable),
            events=(),
        )
        self.async_update_listeners()

    def _skip(self, reason: SkipReason, now: datetime) -> CameraState:
        """The state after a grabbed frame that is not analysed: only `last_checked` moves."""
        self.skipped[reason] += 1
        return replace(self.data, last_checked=now, events=())

    async def async_grab_frame(self) -> PreparedFrame:
        """The current frame, scaled for the student; UpdateFailed when the camera fails."""
        raw = await self._async_grab_raw()
        return await self._async_image_job(prepare_frame, raw, self.frame_width)

    async def _async_grab_raw(self) -> bytes:
        """The camera's current image as it sent it; UpdateFailed when the camera fails."""
        try:
            image = await async_get_image(self.hass, self.camera_entity, width=self.frame_width)
        except HomeAssistantError as err:
            raise self._camera_failed(err) from err
        return image.content

    async def _async_image_job[*Ts, T](self, job: Callable[[*Ts], T], *args: *Ts) -> T:
        """Decode or scale in the executor, within the integration's image limiter."""
        try:
            async with self.limiter:
                return await self.hass.async_add_executor_job(job, *args)
        except BadFrame as err:
            raise self._camera_failed(err) from err

    def _camera_failed(self, err: Exception) -> UpdateFailed:
        return UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="camera_unavailable",
            translation_placeholders={"camera": self.camera_entity, "error": str(err)},
        )

    def _escalate(self, analysis: Analysis, now: datetime) -> str:
        """Hand the frame to the teacher without waiting; with no teacher, record it."""
        self.escalations.record(now)
        escalation_id = uuid.uuid4().hex
        if self.reliability is not None and analysis.label is not None and self.outbox:
            self.reliability.remember(escalation_id, analysis.label)
        decision = analysis.decision
        observation = analysis.observation
        event: dict[str, Any] = {
            "camera": self.camera_entity,
            "reason": str(decision.reason),
            "detail": decision.detail,
            "priority": decision.priority,
            "flags": list(
                decision.safety_hits or (observation.safety_flags if observation else ())
            ),
            "confidence": decision.effective_confidence,
        }
        if self.outbox is None:
            self.hass.bus.async_fire(
                EVENT_ESCALATION, {**event, "outcome": "unavailable", "teacher": "unavailable"}
            )
            return escalation_id
        review = {
            "idempotency_key": escalation_id,
            "camera": self.camera_entity,
            # The add-on's pages show the camera by the name its user gave it.
            "camera_name": self.subentry.title,
            "reason": str(decision.reason),
            "detail": decision.detail,
            "captured_at": analysis.analysed_at.isoformat(),
            "student": {
                "model": analysis.model,
                "answer": _observation_json(observation) if observation else None,
                "raw": analysis.result.raw if isinstance(analysis.result, StudentError) else "",
                "effective_confidence": decision.effective_confidence,
                "prompt_version": analysis.prompt_version,
            },
            "contract": {"system_prompt": TEACHER_REVIEW_PROMPT, "schema": OBSERVATION_SCHEMA},
        }
        review["image"] = base64.b64encode(analysis.frame.jpeg).decode("ascii")
        self.outbox.add(
            OutboxEntry(
                key=escalation_id,
                camera=self.camera_entity,
                priority=decision.priority,
                created_at=now.timestamp(),
                body=review,
                event=event,
            )
        )
        return escalation_id


def _with_snapshot(
    events: tuple[SafetyEvent, ...], snapshot: str | None
) -> tuple[SafetyEvent, ...]:
    """The events about a kept frame, pointing at it."""
    if snapshot is None:
        return events
    return tuple(replace(event, snapshot=snapshot) for event in events)


def _sent_to_teacher(analysis: Analysis) -> Analysis:
    """An analysis an action asked the teacher to review, whatever the policy decided."""
    decision = analysis.decision
    if decision.escalate:
        return analysis
    return replace(
        analysis,
        decision=replace(
            decision,
            escalate=True,
            shed=False,
            reason=decision.reason or EscalationReason.AUDIT,
            detail=f"requested by an action; {decision.detail}",
        ),
    )


def _observation_json(observation: Observation) -> dict[str, Any]:
    return {
        "summary": observation.summary,
        "observations": list(observation.observations),
        "safety_flags": list(observation.safety_flags),
        "confidence": observation.confidence,
    }


def _teacher_observation(raw: dict[str, Any]) -> Observation:
    """The teacher's answer in the contract; it was validated by the service, so trust its shape."""
    confidence = raw.get("confidence")
    return Observation(
        summary=str(raw["summary"]),
        observations=tuple(str(item) for item in raw.get("observations", ())),
        safety_flags=tuple(dict.fromkeys(normalise_flag(str(f)) for f in raw["safety_flags"])),
        confidence=float(confidence) if confidence is not None else None,
    )


def _safety_events(previous: Analysis | None, current: Analysis) -> tuple[SafetyEvent, ...]:
    """hazard_detected when the sensor turns on, or a hazard joins while it is on; cleared."""
    was_on = previous is not None and previous.safety.on
    confidence = current.decision.effective_confidence
    if current.safety.on and not was_on:
        return (SafetyEvent("hazard_detected", current.safety.flags, confidence),)
    if (
        previous is not None
        and was_on
        and current.safety.on
        and set(current.safety.flags) - set(previous.safety.flags)
    ):
        return (SafetyEvent("hazard_detected", current.safety.flags, confidence),)
    if was_on and not current.safety.on:
        return (SafetyEvent("hazard_cleared", (), confidence),)
    return ()
