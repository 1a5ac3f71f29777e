"""Each camera's event history: its hazards and teacher reviews, kept on disk with retention.

The coordinators hand over what to keep (`EventHistory.record`, `update`); the frames and
records are written in the executor, one write at a time, at most `MAX_PENDING` waiting (more
are dropped and counted: a history is not worth holding frames in memory for). A write that
fails (a full disk) is logged once, counted and shown as a repair until a write succeeds again;
it never touches the analysis. The media source (`media_source.py`) browses the history and
the `HistoryImageView` serves its frames to signed-in users.

Where: `<config>/vision_tutor/<entry id>/<camera subentry id>/`. A camera's folder is deleted
when its subentry is removed (at the entry's next setup, which the removal triggers), and the
entry's folder when the entry is deleted: the history is of the cameras Vision Tutor watches,
and nobody else would ever clean it up.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
import logging
from pathlib import Path
from typing import Final
from urllib.parse import quote
import uuid

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import DOMAIN, HISTORY_FOLDER
from .contract import Observation, StudentError
from .history_store import Answer, EventRecord, HistoryStore, Verdict, event_id, expired
from .pipeline import Analysis

_LOGGER = logging.getLogger(__name__)

MAX_PENDING: Final = 16
"""Writes that may wait for the disk; a camera that flags every frame of a stuck disk must not
fill the memory with frames."""
RETENTION_INTERVAL: Final = timedelta(hours=1)
IMAGE_URL: Final = "/api/vision_tutor/history/{entry_id}/{camera_id}/{event_id}.jpg"
MEDIA_SOURCE_PREFIX: Final = f"media-source://{DOMAIN}"
LINK_KEYS: Final = ("media_content_id", "snapshot_url", "media_browser_url")
"""What event data says about a kept frame (`EventHistory.links`)."""


def media_content_id(entry_id: str, camera_id: str, event: str | None = None) -> str:
    """The media source id of a camera's history folder, or of one of its events."""
    identifier = f"{MEDIA_SOURCE_PREFIX}/{entry_id}/{camera_id}"
    return f"{identifier}/{event}" if event else identifier


def image_url(entry_id: str, camera_id: str, event: str) -> str:
    """The event's frame, for signed-in users (a notification's attachment)."""
    return IMAGE_URL.format(entry_id=entry_id, camera_id=camera_id, event_id=event)


def media_browser_url(entry_id: str, camera_id: str, event: str) -> str:
    """The frontend's media browser opened at the event (Media → Vision Tutor → camera → event).

    The panel's path is one `type,content id` segment per level below the root.
    """
    levels = (
        ("app", MEDIA_SOURCE_PREFIX),
        ("directory", media_content_id(entry_id, camera_id)),
        ("image", media_content_id(entry_id, camera_id, event)),
    )
    return "/media-browser/browser/" + "/".join(
        quote(f"{kind},{content}", safe="") for kind, content in levels
    )


def history_root(hass: HomeAssistant, entry_id: str) -> Path:
    return Path(hass.config.path(HISTORY_FOLDER, entry_id))


class EventHistory:
    """The history of one config entry's cameras."""

    def __init__(
        self, hass: HomeAssistant, entry_id: str, *, max_age: timedelta, max_bytes: int
    ) -> None:
        self.hass = hass
        self.entry_id = entry_id
        self.store = HistoryStore(history_root(hass, entry_id))
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.records: dict[str, dict[str, EventRecord]] = {}
        """Each camera's events by id, in time order (the disk's, kept on the event loop)."""
        self._pending: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self.dropped = 0
        """Events not kept because too many writes were waiting."""
        self.failures = 0
        """Writes that failed (a full disk); the analysis went on without them."""
        self.last_error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.max_age > timedelta(0)

    async def async_load(self, cameras: set[str]) -> None:
        """Read the history, delete removed cameras' folders and what retention no longer keeps."""

        def load() -> dict[str, list[EventRecord]]:
            for removed in self.store.remove_cameras(cameras):
                _LOGGER.info("Deleted the event history of removed camera %s", removed)
            return self.store.load()

        loaded = await self.hass.async_add_executor_job(load)
        self.records = {
            camera: {record.id: record for record in loaded.get(camera, [])} for camera in cameras
        }
        await self.async_retain()

    def events(self, camera_id: str) -> list[EventRecord]:
        """A camera's events, newest first."""
        return list(reversed(self.records.get(camera_id, {}).values()))

    def get(self, camera_id: str, event: str) -> EventRecord | None:
        return self.records.get(camera_id, {}).get(event)

    @callback
    def record(self, camera_id: str, record: EventRecord, jpeg: bytes) -> str | None:
        """Keep an event (written in the background); its id, or None when it is not kept."""
        if not self.enabled or camera_id not in self.records:
            return None
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            _LOGGER.debug("History of %s: too many writes waiting, one event dropped", camera_id)
            return None
        self.records[camera_id][record.id] = record
        self._write(camera_id, record, jpeg)
        return record.id

    @staticmethod
    def new_id(at: datetime) -> str:
        """A new event's id, for a frame analysed at `at`."""
        return event_id(at, uuid.uuid4().hex)

    def links(self, camera_id: str, event: str) -> dict[str, str]:
        """Where an event can be seen: for automations' and notifications' event data."""
        return {
            "media_content_id": media_content_id(self.entry_id, camera_id, event),
            "snapshot_url": image_url(self.entry_id, camera_id, event),
            "media_browser_url": media_browser_url(self.entry_id, camera_id, event),
        }

    @callback
    def find(self, camera_id: str, escalation_id: object) -> EventRecord | None:
        """The event of an escalation (its verdict arrived)."""
        if escalation_id is None:
            return None
        return next(
            (
                record
                for record in reversed(self.records.get(camera_id, {}).values())
                if record.escalation_id == escalation_id
            ),
            None,
        )

    @callback
    def update(self, camera_id: str, record: EventRecord) -> None:
        """Rewrite an event's record (a verdict, or why none came), keeping its frame."""
        if self.get(camera_id, record.id) is None:
            return
        self.records[camera_id][record.id] = record
        self._write(camera_id, record, None)

    def _write(self, camera_id: str, record: EventRecord, jpeg: bytes | None) -> None:
        key = (camera_id, record.id)
        previous = self._pending.get(key)
        done: asyncio.Future[None] = self.hass.loop.create_future()
        self._pending[key] = done

        async def write() -> None:
            try:
                if previous is not None:
                    await previous  # the frame first, then the verdict's record
                async with self._lock:
                    stored = await self.hass.async_add_executor_job(
                        self.store.write, camera_id, record, jpeg
                    )
            except OSError as err:
                self._failed(camera_id, record, jpeg is not None, err)
            else:
                self._written(camera_id, stored)
            finally:
                done.set_result(None)
                if self._pending.get(key) is done:
                    del self._pending[key]

        self.hass.async_create_task(write(), f"{DOMAIN} history {camera_id}", eager_start=False)

    def _written(self, camera_id: str, stored: EventRecord) -> None:
        if (current := self.get(camera_id, stored.id)) is not None:
            self.records[camera_id][stored.id] = replace(current, size=stored.size)
        if self.last_error is not None:
            _LOGGER.info("The event history is written again")
            self.last_error = None
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)
        if sum(r.size for c in self.records.values() for r in c.values()) > self.max_bytes:
            self.hass.async_create_task(self.async_retain(), eager_start=False)

    def _failed(self, camera_id: str, record: EventRecord, new: bool, err: OSError) -> None:
        self.failures += 1
        if new:
            # Its frame is not on disk: nothing to show for it.
            self.records.get(camera_id, {}).pop(record.id, None)
        error = err.strerror or str(err)
        if self.last_error is None:
            _LOGGER.warning(
                "Could not write to the event history in %s (%s); analysis goes on without it",
                self.store.root,
                error,
            )
        self.last_error = error
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="history_write_failed",
            translation_placeholders={
                "path": str(self.store.root),
                "error": error,
                "failures": str(self.failures),
            },
        )

    @property
    def _issue_id(self) -> str:
        return f"history_write_failed_{self.entry_id}"

    async def async_image(self, camera_id: str, event: str) -> bytes | None:
        """An event's frame (after its write, when that is still under way)."""
        if self.get(camera_id, event) is None:
            return None
        if (pending := self._pending.get((camera_id, event))) is not None:
            await asyncio.shield(pending)
        return await self.hass.async_add_executor_job(self.store.read_image, camera_id, event)

    async def async_retain(self) -> None:
        """Delete what is older than the retention or beyond the size cap, oldest first."""
        cameras = {camera: list(records.values()) for camera, records in self.records.items()}
        doomed = expired(
            cameras,
            now=dt_util.utcnow(),
            max_age=max(self.max_age, timedelta(0)),
            max_bytes=self.max_bytes,
        )
        # Events still being written are left for the next round.
        doomed = {
            camera: [event for event in events if (camera, event) not in self._pending]
            for camera, events in doomed.items()
        }
        if not any(doomed.values()):
            return
        for camera, events in doomed.items():
            for event in events:
                self.records[camera].pop(event, None)

        def delete() -> None:
            for camera, events in doomed.items():
                self.store.delete(camera, events)

        async with self._lock:
            await self.hass.async_add_executor_job(delete)

    def camera(self, camera_id: str, camera_entity: str, *, teacher: bool) -> CameraHistory:
        """One camera's side of the history."""
        return CameraHistory(self, camera_id, camera_entity, teacher=teacher)


class CameraHistory:
    """One camera's side of the history: what of its analyses and verdicts is kept."""

    def __init__(
        self, history: EventHistory, camera_id: str, camera_entity: str, *, teacher: bool
    ) -> None:
        self.history = history
        self.camera_id = camera_id
        self.camera_entity = camera_entity
        self.teacher = teacher
        """A teacher is configured: frames sent to it are kept, waiting for its verdict."""

    def _media_id(self, event: str | None) -> str | None:
        if event is None:
            return None
        return media_content_id(self.history.entry_id, self.camera_id, event)

    @callback
    def remember(
        self, analysis: Analysis, escalation_id: str | None, *, hazard_detected: bool
    ) -> str | None:
        """Keep a hazard's frame, or one sent to the teacher; its media content id."""
        decision = analysis.decision
        observation = analysis.observation
        flags = tuple(
            dict.fromkeys(
                (*observation.safety_flags, *decision.safety_hits)
                if observation
                else decision.safety_hits
            )
        )
        hazard = bool(flags) or hazard_detected
        if not hazard and not (escalation_id is not None and self.teacher):
            return None
        error = analysis.result.reason if isinstance(analysis.result, StudentError) else None
        record = EventRecord(
            id=self.history.new_id(analysis.analysed_at),
            at=analysis.analysed_at,
            camera=self.camera_entity,
            student=Answer(
                summary=observation.summary if observation else "",
                flags=flags,
                confidence=decision.effective_confidence,
                error=error,
            ),
            hazard=hazard,
            reason=str(decision.reason) if decision.escalate and decision.reason else None,
            escalation_id=escalation_id,
            teacher_status=(
                "not reviewed (no teacher is configured)"
                if escalation_id is not None and not self.teacher
                else None
            ),
        )
        return self._media_id(self.history.record(self.camera_id, record, analysis.frame.jpeg))

    @callback
    def verdict(self, key: object, teacher: Observation, verdict: Verdict) -> str | None:
        """Add the teacher's verdict to the event of its frame; its media content id."""
        record = self.history.find(self.camera_id, key)
        if record is None:
            return None
        answer = Answer(teacher.summary, tuple(teacher.safety_flags), teacher.confidence)
        self.history.update(
            self.camera_id, replace(record, teacher=answer, verdict=verdict, teacher_status=None)
        )
        return self._media_id(record.id)

    @callback
    def review_ended(self, key: object, status: str) -> None:
        """The teacher service gave up on the review: the event says so."""
        record = self.history.find(self.camera_id, key)
        if record is not None and record.verdict is None:
            self.history.update(self.camera_id, replace(record, teacher_status=status))

    def links(self, snapshot: str | None) -> dict[str, str | None]:
        """The event data that points at a kept frame (its media content id); all None when
        there is none."""
        if snapshot is None:
            return dict.fromkeys(LINK_KEYS)
        return dict(self.history.links(self.camera_id, snapshot.rsplit("/", 1)[-1]))
