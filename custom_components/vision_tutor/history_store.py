"""The event history on disk, without Home Assistant: one JPEG and one JSON file per event.

A camera's folder holds `<event id>.jpg` (the analysed frame, as the student saw it) and
`<event id>.json` (when, what the student saw, why the frame went to the teacher, the teacher's
verdict). Every file is written to a temporary name and renamed, so a crash or a full disk
never leaves half a file under an event's name; an event whose JSON is missing or unreadable
is not listed (and its leftovers are removed by retention).

Everything here blocks: the integration runs it in the executor (`history.EventHistory`).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
import json
import os
from pathlib import Path
import re
import shutil
from typing import Any, Final, Literal

type Verdict = Literal["confirmed", "dismissed", "no_hazard"]

EVENT_ID: Final = re.compile(r"[0-9]{13}-[0-9a-f]{8}")
"""`<milliseconds since the epoch>-<random hex>`: sorts by time, safe in paths and URLs."""
FOLDER_ID: Final = re.compile(r"[0-9A-Za-z_-]{1,64}")
"""A config entry or subentry id (ULIDs), as a folder name."""
TEMP_SUFFIX: Final = ".tmp"


def event_id(at: datetime, token: str) -> str:
    """The id of an event analysed at `at`; `token` is 8 random hex digits."""
    return f"{round(at.timestamp() * 1000):013d}-{token[:8]}"


@dataclass(frozen=True, slots=True)
class Answer:
    """One model's answer about the frame, as the history shows it."""

    summary: str
    flags: tuple[str, ...] = ()
    confidence: float | None = None
    error: str | None = None
    """Why the student's answer could not be read (then `summary` is empty)."""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Answer:
        confidence = raw.get("confidence")
        error = raw.get("error")
        return cls(
            summary=str(raw.get("summary") or ""),
            flags=tuple(str(flag) for flag in raw.get("flags") or ()),
            confidence=float(confidence) if confidence is not None else None,
            error=str(error) if error else None,
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a camera's history: a hazard, or a frame sent to the teacher."""

    id: str
    at: datetime
    camera: str
    """The camera entity."""
    student: Answer
    hazard: bool
    """The student (its flags or the safety keywords in its words) saw a hazard."""
    reason: str | None = None
    """Why the frame went to the teacher (None: it did not)."""
    escalation_id: str | None = None
    teacher: Answer | None = None
    verdict: Verdict | None = None
    teacher_status: str | None = None
    """What became of the review when no verdict came ("not reviewed (...)")."""
    size: int = field(default=0, compare=False)
    """Bytes on disk (the frame and this record)."""

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["at"] = self.at.isoformat()
        del raw["size"]
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any], size: int = 0) -> EventRecord:
        teacher = raw.get("teacher")
        verdict = raw.get("verdict")
        return cls(
            id=str(raw["id"]),
            at=datetime.fromisoformat(str(raw["at"])),
            camera=str(raw["camera"]),
            student=Answer.from_json(raw["student"]),
            hazard=bool(raw.get("hazard")),
            reason=raw.get("reason"),
            escalation_id=raw.get("escalation_id"),
            teacher=Answer.from_json(teacher) if isinstance(teacher, dict) else None,
            verdict=verdict if verdict in ("confirmed", "dismissed", "no_hazard") else None,
            teacher_status=raw.get("teacher_status"),
            size=size,
        )


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename; nothing is left on error."""
    temporary = path.with_name(path.name + TEMP_SUFFIX)
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _record_bytes(record: EventRecord) -> bytes:
    return json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")).encode()


class HistoryStore:
    """The history folders of one config entry: `<root>/<camera id>/<event id>.{jpg,json}`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, camera_id: str) -> Path:
        if not FOLDER_ID.fullmatch(camera_id):
            raise ValueError(f"not a camera id: {camera_id!r}")
        return self.root / camera_id

    def image_path(self, camera_id: str, event: str) -> Path:
        if not EVENT_ID.fullmatch(event):
            raise ValueError(f"not an event id: {event!r}")
        return self._folder(camera_id) / f"{event}.jpg"

    def load(self) -> dict[str, list[EventRecord]]:
        """Every camera's readable events, oldest first; leftovers of failed writes removed."""
        cameras: dict[str, list[EventRecord]] = {}
        if not self.root.is_dir():
            return cameras
        for folder in self.root.iterdir():
            if not folder.is_dir() or not FOLDER_ID.fullmatch(folder.name):
                continue
            records: list[EventRecord] = []
            for path in folder.iterdir():
                if path.name.endswith(TEMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                if path.suffix != ".json" or not EVENT_ID.fullmatch(path.stem):
                    continue
                image = path.with_suffix(".jpg")
                try:
                    raw = json.loads(path.read_bytes())
                    size = path.stat().st_size + image.stat().st_size
                    records.append(EventRecord.from_json(raw, size))
                except OSError, ValueError, KeyError, TypeError:
                    # Unreadable, or its frame is gone: not an event anyone can look at.
                    for leftover in (path, image):
                        with contextlib.suppress(OSError):
                            leftover.unlink()
            cameras[folder.name] = sorted(records, key=lambda record: record.id)
        return cameras

    def write(self, camera_id: str, record: EventRecord, jpeg: bytes | None) -> EventRecord:
        """Store an event (its frame first, then the record that makes it visible).

        `jpeg` None rewrites the record only (a verdict arrived). Raises OSError (a full disk);
        then nothing new is left behind under the event's name.
        """
        folder = self._folder(camera_id)
        folder.mkdir(parents=True, exist_ok=True)
        image = self.image_path(camera_id, record.id)
        data = _record_bytes(record)
        if jpeg is not None:
            _write_atomic(image, jpeg)
        try:
            _write_atomic(image.with_suffix(".json"), data)
        except OSError:
            if jpeg is not None:
                with contextlib.suppress(OSError):
                    image.unlink()
            raise
        return replace(
            record, size=len(data) + (len(jpeg) if jpeg is not None else image.stat().st_size)
        )

    def read_image(self, camera_id: str, event: str) -> bytes | None:
        try:
            return self.image_path(camera_id, event).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, camera_id: str, events: list[str]) -> None:
        """Remove events (their record first, so a half-removed event is never listed)."""
        for event in events:
            image = self.image_path(camera_id, event)
            for path in (image.with_suffix(".json"), image):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def remove_cameras(self, keep: set[str]) -> list[str]:
        """Delete the folders of cameras not in `keep` (removed from the entry); their ids."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for folder in self.root.iterdir():
            if folder.is_dir() and FOLDER_ID.fullmatch(folder.name) and folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    def remove_all(self) -> None:
        """Delete the entry's whole history (the entry was deleted)."""
        shutil.rmtree(self.root, ignore_errors=True)


def expired(
    cameras: dict[str, list[EventRecord]],
    *,
    now: datetime,
    max_age: timedelta,
    max_bytes: int,
) -> dict[str, list[str]]:
    """The events retention removes: older than `max_age`, then the oldest until the entry's
    events fit in `max_bytes`. By camera id; `cameras` lists each camera's events oldest first."""
    doomed: dict[str, list[str]] = {}
    kept: list[tuple[str, EventRecord]] = []
    for camera_id, records in cameras.items():
        for record in records:
            if now - record.at > max_age:
                doomed.setdefault(camera_id, []).append(record.id)
            else:
                kept.append((camera_id, record))
    total = sum(record.size for _, record in kept)
    for camera_id, record in sorted(kept, key=lambda item: item[1].id):
        if total <= max_bytes:
            break
        doomed.setdefault(camera_id, []).append(record.id)
        total -= record.size
    return doomed
