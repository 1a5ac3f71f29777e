"""Vision Tutor: a small local vision model watches the cameras, a larger one teaches it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
import shutil
from typing import Any

import ollama

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import ConfigType
from homeassistant.helpers.update_coordinator import UpdateFailed

from .calibration import BUCKET_MODES
from .const import (
    CONF_AUDIT_RATE,
    CONF_CAMERA_ENTITY,
    CONF_CHANGE_SENSITIVITY,
    CONF_CLEAN_TO_CLEAR,
    CONF_DAY_END,
    CONF_DAY_START,
    CONF_EXTRA_STUDENT_URLS,
    CONF_FRAME_WIDTH,
    CONF_HISTORY_DAYS,
    CONF_HISTORY_MAX_MB,
    CONF_MAX_CONCURRENT,
    CONF_MAX_MISS_RATE,
    CONF_MIN_CONFIDENCE,
    CONF_OUTBOX_MAX_AGE,
    CONF_QUEUE_LIMIT,
    CONF_RELOOK_MINUTES,
    CONF_REVIEWS_PER_HOUR,
    CONF_SAFETY_KEYWORDS,
    CONF_SCAN_INTERVAL,
    CONF_STUDENT_MODEL,
    CONF_STUDENT_TIMEOUT,
    CONF_STUDENT_URL,
    CONF_TARGET,
    CONF_TEACHER_BUDGET,
    CONF_TEACHER_MODE,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
    CONF_TIME_BUCKETS,
    CONF_WINDOW_SIZE,
    CONF_WINDOW_TRIGGER,
    DEFAULT_AUDIT_RATE,
    DEFAULT_CHANGE_SENSITIVITY,
    DEFAULT_CLEAN_TO_CLEAR,
    DEFAULT_DAY_END,
    DEFAULT_DAY_START,
    DEFAULT_FRAME_WIDTH,
    DEFAULT_HISTORY_DAYS,
    DEFAULT_HISTORY_MAX_MB,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_MISS_RATE,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_OUTBOX_MAX_AGE,
    DEFAULT_QUEUE_LIMIT,
    DEFAULT_RELOOK_MINUTES,
    DEFAULT_REVIEWS_PER_HOUR,
    DEFAULT_SAFETY_KEYWORDS,
    DEFAULT_STUDENT_TIMEOUT,
    DEFAULT_TARGET,
    DEFAULT_TEACHER_BUDGET,
    DEFAULT_TIME_BUCKETS,
    DEFAULT_WINDOW_SIZE,
    DEFAULT_WINDOW_TRIGGER,
    DOMAIN,
    STUDENT_KEEP_ALIVE,
    STUDENT_KEEP_ALIVE_S,
    STUDENT_LOAD_ALLOWANCE,
    STUDENT_TEMPERATURE,
    SUBENTRY_CAMERA,
    TEACHER_MODE_NONE,
)
from .coordinator import ActivePrompt, CameraCoordinator, EscalationLog, HostCoordinator
from .entity import hub_configuration_url
from .frontend import async_register_card
from .history import RETENTION_INTERVAL, EventHistory, history_root
from .lab import PromptLab
from .media_source import async_register_view
from .ollama_client import create_client
from .outbox import EscalationOutbox, OutboxEntry, Outcome
from .overrides import camera_options
from .pipeline import PipelineSettings, Student, StudentClient, StudentUnavailable
from .reliability import CameraReliability, ReliabilitySettings, target_from
from .routing import RoutingPolicy
from .services import async_setup_services
from .student_pool import PooledStudent, StudentPool, camera_load
from .teacher import NOT_REVIEWED, StreamEvent, TeacherLink
from .temporal import WindowConfig

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(slots=True)
class VisionTutorData:
    """What a loaded config entry holds."""

    host: HostCoordinator
    """The (first) student host."""
    student: StudentClient
    """The first host's client."""
    hub_device_id: str
    """The hub device (the student host); each camera's device hangs off it."""
    cameras: dict[str, CameraCoordinator] = field(default_factory=dict)
    """Camera coordinators by config subentry id."""
    teacher: TeacherLink | None = None
    """The teacher service, when one is configured."""
    outbox: EscalationOutbox | None = None
    """Escalations on their way to the teacher service, when one is configured."""
    escalations: EscalationLog = field(default_factory=EscalationLog)
    prompt: ActivePrompt = field(default_factory=ActivePrompt)
    lab: PromptLab | None = None
    """The prompt lab's state; set during setup."""
    hosts: dict[str, HostCoordinator] = field(default_factory=dict)
    """Every student host by URL, the first one included."""
    pool: StudentPool | None = None
    """Which host each camera's frames go to, with more than one student host."""
    history: EventHistory | None = None
    """The cameras' event history (Media → Vision Tutor); set during setup."""


type VisionTutorConfigEntry = ConfigEntry[VisionTutorData]


def pipeline_settings(options: Mapping[str, Any]) -> PipelineSettings:
    """The routing policy and temporal window from a camera's effective options."""
    return PipelineSettings(
        policy=RoutingPolicy(
            min_confidence=options.get(CONF_MIN_CONFIDENCE, DEFAULT_MIN_CONFIDENCE),
            safety_keywords=tuple(options.get(CONF_SAFETY_KEYWORDS, DEFAULT_SAFETY_KEYWORDS)),
            audit_rate=int(options.get(CONF_AUDIT_RATE, DEFAULT_AUDIT_RATE)),
            queue_limit=int(options.get(CONF_QUEUE_LIMIT, DEFAULT_QUEUE_LIMIT)),
        ),
        window=WindowConfig(
            size=int(options.get(CONF_WINDOW_SIZE, DEFAULT_WINDOW_SIZE)),
            flagged_to_trigger=int(options.get(CONF_WINDOW_TRIGGER, DEFAULT_WINDOW_TRIGGER)),
            clean_to_clear=int(options.get(CONF_CLEAN_TO_CLEAR, DEFAULT_CLEAN_TO_CLEAR)),
        ),
        change_sensitivity=float(options.get(CONF_CHANGE_SENSITIVITY, DEFAULT_CHANGE_SENSITIVITY)),
        relook=timedelta(minutes=float(options.get(CONF_RELOOK_MINUTES, DEFAULT_RELOOK_MINUTES))),
    )


def reliability_settings(options: Mapping[str, Any]) -> ReliabilitySettings:
    """The calibrated policy's target and time-of-day buckets from a camera's options."""
    miss_rate = float(options.get(CONF_MAX_MISS_RATE, DEFAULT_MAX_MISS_RATE))
    chosen = options.get(CONF_TIME_BUCKETS, DEFAULT_TIME_BUCKETS)
    return ReliabilitySettings(
        target=target_from(
            str(options.get(CONF_TARGET, DEFAULT_TARGET)),
            float(options.get(CONF_TEACHER_BUDGET, DEFAULT_TEACHER_BUDGET)),
            float(options.get(CONF_REVIEWS_PER_HOUR, DEFAULT_REVIEWS_PER_HOUR)),
            miss_rate,
        ),
        max_miss_rate=miss_rate,
        buckets=next((mode for mode in BUCKET_MODES if mode == chosen), "sun"),
        day=(
            time(int(options.get(CONF_DAY_START, DEFAULT_DAY_START))),
            time(int(options.get(CONF_DAY_END, DEFAULT_DAY_END))),
        ),
    )


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, whether or not an entry is loaded (they say which is missing).

    The dashboard card is served from here too, so it works as soon as the integration loads.
    """
    async_setup_services(hass)
    await async_register_card(hass)
    async_register_view(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: VisionTutorConfigEntry) -> bool:
    """Connect to the student host and start one coordinator per camera."""
    # First, so a camera added while the entry is (re)loading still triggers a reload.
    entry.async_on_unload(entry.add_update_listener(_async_reload_on_change))
    client = create_client(entry.data[CONF_STUDENT_URL])
    host = HostCoordinator(hass, entry, client)
    hosts = {host.url: host}
    for number, url in enumerate(entry.data.get(CONF_EXTRA_STUDENT_URLS) or (), start=2):
        if url not in hosts:
            hosts[url] = HostCoordinator(hass, entry, create_client(url), url=url, key=f"_{number}")
    if len(hosts) == 1:
        # The entry is the host: if it does not answer, retry the whole entry later.
        await host.async_config_entry_first_refresh()
    else:
        # A student pool works while any of its hosts does.
        for member in hosts.values():
            member.pooled = True
        await asyncio.gather(*(member.async_refresh() for member in hosts.values()))
        if not any(member.last_update_success for member in hosts.values()):
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="student_pool_unreachable",
                translation_placeholders={"urls": ", ".join(hosts)},
            )

    options = entry.options
    student = _student_client(entry, client)
    hub = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Vision Tutor",
        model=f"Student {entry.data[CONF_STUDENT_MODEL]}",
        configuration_url=hub_configuration_url(entry.data),
    )
    teacher = None
    if entry.data.get(CONF_TEACHER_MODE, TEACHER_MODE_NONE) != TEACHER_MODE_NONE:
        teacher = TeacherLink(
            hass,
            entry.entry_id,
            entry.data[CONF_TEACHER_URL],
            entry.data[CONF_TEACHER_TOKEN],
            on_event=lambda event: _dispatch_teacher_event(entry, event),
            on_status=host.async_update_listeners,
        )
        await teacher.async_load_cursor()
    data = VisionTutorData(
        host=host, student=student, hub_device_id=hub.id, teacher=teacher, hosts=hosts
    )
    students: dict[str, Student] = {host.url: student}
    if len(hosts) > 1:
        data.pool = StudentPool(list(hosts))
        students.update(
            (url, _student_client(entry, other.client))
            for url, other in hosts.items()
            if url != host.url
        )
        for url, other in hosts.items():
            entry.async_on_unload(other.async_add_listener(_pool_listener(data.pool, other)))
            data.pool.set_healthy(url, _host_works(other))
    if teacher is not None:
        data.outbox = EscalationOutbox(
            hass,
            entry.entry_id,
            teacher,
            max_age_s=60 * float(options.get(CONF_OUTBOX_MAX_AGE, DEFAULT_OUTBOX_MAX_AGE)),
            on_outcome=lambda item, outcome, details: _dispatch_delivery(
                entry, item, outcome, details
            ),
        )
        await data.outbox.async_load()
    data.lab = PromptLab(hass, entry.entry_id, data.prompt, teacher, host.async_update_listeners)
    await data.lab.async_load()
    data.history = EventHistory(
        hass,
        entry.entry_id,
        max_age=timedelta(days=float(options.get(CONF_HISTORY_DAYS, DEFAULT_HISTORY_DAYS))),
        max_bytes=int(options.get(CONF_HISTORY_MAX_MB, DEFAULT_HISTORY_MAX_MB)) * 1_000_000,
    )
    frame_width = int(options.get(CONF_FRAME_WIDTH, DEFAULT_FRAME_WIDTH))
    subentries = [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_CAMERA]
    # The folders of cameras removed since the last setup go here (removing one reloads).
    await data.history.async_load({subentry.subentry_id for subentry in subentries})
    history = data.history

    async def _retain(_now: object) -> None:
        await history.async_retain()

    entry.async_on_unload(async_track_time_interval(hass, _retain, RETENTION_INTERVAL))
    for index, subentry in enumerate(subentries):
        interval = int(subentry.data.get(CONF_SCAN_INTERVAL) or 0)
        camera_student: Student = student
        if data.pool is not None:
            data.pool.add_camera(subentry.subentry_id, camera_load(interval))
            camera_student = PooledStudent(
                data.pool,
                students,
                subentry.subentry_id,
                on_host_failed=lambda url, err: _host_failed(hosts[url], err),
            )
        camera_settings = camera_options(entry.options, subentry.data)
        settings = pipeline_settings(camera_settings)
        reliability = None
        if teacher is not None:
            # Calibration needs verdicts: without a teacher the current rule stays.
            reliability = CameraReliability(
                hass,
                entry.entry_id,
                subentry.subentry_id,
                subentry.data[CONF_CAMERA_ENTITY],
                reliability_settings(camera_settings),
                fallback_threshold=settings.policy.min_confidence,
                audit_rate=settings.policy.audit_rate,
            )
            await reliability.async_load()
        data.cameras[subentry.subentry_id] = CameraCoordinator(
            hass,
            entry,
            subentry,
            student=camera_student,
            settings=settings,
            frame_width=frame_width,
            prompt=data.prompt,
            escalations=data.escalations,
            host=host,
            teacher=teacher,
            outbox=data.outbox,
            history=history.camera(
                subentry.subentry_id,
                subentry.data[CONF_CAMERA_ENTITY],
                teacher=data.outbox is not None,
            ),
            # Spread over the interval: camera i of n runs i/n of the way into it.
            phase=interval * index / len(subentries),
            reliability=reliability,
        )
    entry.runtime_data = data

    # The entities first: a camera's analysis switch restores a pause before its first frame.
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # A camera that is down at start must not hold up the others: no first-refresh raise.
    # Cameras without an interval wait for motion or an action (and show their restored state).
    await asyncio.gather(
        *(camera.async_refresh() for camera in data.cameras.values() if camera.update_interval)
    )
    for camera in data.cameras.values():
        camera.async_start_motion_trigger()

    if teacher is not None:
        # Cancelled with the entry; reconnects by itself while the entry is loaded.
        entry.async_create_background_task(
            hass, teacher.async_follow_events(), f"{DOMAIN} teacher events"
        )
    if data.outbox is not None:
        entry.async_create_background_task(hass, data.outbox.async_run(), f"{DOMAIN} outbox")
        entry.async_create_background_task(hass, data.lab.async_sync(), f"{DOMAIN} lab sync")
    return True


def _student_client(entry: VisionTutorConfigEntry, client: ollama.AsyncClient) -> StudentClient:
    """The student on one host, with the entry's timeout and its own share of concurrency."""
    options = entry.options
    return StudentClient(
        client,
        entry.data[CONF_STUDENT_MODEL],
        timeout=float(options.get(CONF_STUDENT_TIMEOUT, DEFAULT_STUDENT_TIMEOUT)),
        semaphore=asyncio.Semaphore(int(options.get(CONF_MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT))),
        temperature=STUDENT_TEMPERATURE,
        keep_alive=STUDENT_KEEP_ALIVE,
        keep_alive_s=STUDENT_KEEP_ALIVE_S,
        load_allowance=STUDENT_LOAD_ALLOWANCE,
    )


def _host_works(host: HostCoordinator) -> bool:
    """A pool host takes frames while its poll succeeds and it has the student model."""
    return host.last_update_success and (host.data is None or host.data.model_present)


def _pool_listener(pool: StudentPool, host: HostCoordinator) -> Callable[[], None]:
    @callback
    def update() -> None:
        pool.set_healthy(host.url, _host_works(host))

    return update


@callback
def _host_failed(host: HostCoordinator, err: StudentUnavailable) -> None:
    """A frame found a pool host down or without its model: its sensor says so now."""
    if err.reason == "model_missing":
        host.report_model_missing()
        return
    host.async_set_update_error(
        UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="student_unreachable",
            translation_placeholders={"url": host.url, "error": str(err)},
        )
    )


@callback
def _dispatch_teacher_event(entry: VisionTutorConfigEntry, event: StreamEvent) -> None:
    """Route a teacher event to the camera it is about, and refresh the hub's sensors."""
    data = entry.runtime_data
    handled_by_lab = data.lab is not None and data.lab.handle_event(event)
    camera = next(
        (c for c in data.cameras.values() if c.camera_entity == event.data.get("camera")), None
    )
    if not handled_by_lab and camera is not None:
        if event.type == "verdict":
            camera.async_apply_verdict(dict(event.data))
        elif event.type == "review" and event.data.get("status") in NOT_REVIEWED:
            camera.async_review_ended(dict(event.data))
    data.host.async_update_listeners()


@callback
def _dispatch_delivery(
    entry: VisionTutorConfigEntry, item: OutboxEntry, outcome: Outcome, details: Mapping[str, Any]
) -> None:
    """The outbox's news about an escalation: to its camera, and to the hub's outbox sensor."""
    data = entry.runtime_data
    for camera in data.cameras.values():
        if camera.camera_entity == item.camera:
            camera.async_delivery(item.key, outcome, details)
    data.host.async_update_listeners()


async def async_unload_entry(hass: HomeAssistant, entry: VisionTutorConfigEntry) -> bool:
    """Stop the coordinators (their listeners are bound to the entry) and the platforms."""
    if entry.runtime_data.outbox is not None:
        # What has not reached the teacher yet is sent after the next start.
        await entry.runtime_data.outbox.async_save()
    for camera in entry.runtime_data.cameras.values():
        if camera.reliability is not None:
            await camera.reliability.async_save()
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: VisionTutorConfigEntry) -> None:
    """The entry is deleted: so is its cameras' event history."""
    await hass.async_add_executor_job(shutil.rmtree, history_root(hass, entry.entry_id), True)


async def _async_reload_on_change(hass: HomeAssistant, entry: VisionTutorConfigEntry) -> None:
    """Options, hosts or the camera list changed: rebuild everything from the entry."""
    hass.config_entries.async_schedule_reload(entry.entry_id)
