"""The event history's files and its retention rule, without Home Assistant, on a real disk."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custom_components.vision_tutor.history_store import (
    Answer,
    EventRecord,
    HistoryStore,
    event_id,
    expired,
)

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CAMERA = "01JCAMERA"


def _record(minutes: int, **changes: object) -> EventRecord:
    at = T0 + timedelta(minutes=minutes)
    record = EventRecord(
        id=event_id(at, f"{minutes:08x}"),
        at=at,
        camera="camera.kitchen",
        student=Answer("Flames in a pan", ("fire",), 0.81),
        hazard=True,
        reason="safety",
        escalation_id=f"key{minutes}",
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def test_an_event_is_written_and_read_back_whole(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    record = _record(0)
    stored = store.write(CAMERA, record, b"\xff\xd8 jpeg")
    assert stored.size == (tmp_path / CAMERA / f"{record.id}.json").stat().st_size + 7
    verdict = replace(
        record,
        teacher=Answer("A pan fire on the stove", ("fire",), 0.9),
        verdict="confirmed",
    )
    store.write(CAMERA, verdict, None)  # the verdict rewrites the record, keeps the frame

    loaded = store.load()
    assert loaded == {CAMERA: [verdict]}
    record_size = (tmp_path / CAMERA / f"{record.id}.json").stat().st_size
    assert loaded[CAMERA][0].size == record_size + 7
    assert store.read_image(CAMERA, record.id) == b"\xff\xd8 jpeg"
    assert sorted(p.name for p in (tmp_path / CAMERA).iterdir()) == [
        f"{record.id}.jpg",
        f"{record.id}.json",
    ]


def test_leftovers_of_failed_writes_and_unreadable_events_are_cleaned_up(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    good = _record(0)
    store.write(CAMERA, good, b"frame")
    folder = tmp_path / CAMERA
    (folder / f"{_record(1).id}.jpg.tmp").write_bytes(b"half a fr")
    (folder / f"{_record(2).id}.json").write_text("{not json")
    (folder / f"{_record(2).id}.jpg").write_bytes(b"frame")
    orphan = _record(3)
    store.write(CAMERA, orphan, b"frame")
    (folder / f"{orphan.id}.jpg").unlink()  # its frame is gone

    assert [r.id for r in store.load()[CAMERA]] == [good.id]
    assert sorted(p.name for p in folder.iterdir()) == [f"{good.id}.jpg", f"{good.id}.json"]


def test_ids_that_are_not_the_historys_own_are_refused(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    for camera, event in (("..", _record(0).id), (CAMERA, "../../secrets"), ("a/b", "x")):
        with pytest.raises(ValueError, match=r"not a camera id|not an event id"):
            store.image_path(camera, event)


def test_removed_cameras_and_the_whole_entry_are_deleted(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "entry")
    store.write("kept", _record(0), b"a")
    store.write("gone", _record(1), b"b")
    assert store.remove_cameras({"kept"}) == ["gone"]
    assert sorted(store.load()) == ["kept"]
    store.remove_all()
    assert not (tmp_path / "entry").exists()
    assert store.load() == {}


def test_retention_removes_by_age_then_the_oldest_beyond_the_size_cap() -> None:
    kitchen = [replace(_record(m), size=100) for m in (0, 10, 20)]
    porch = [replace(_record(m, camera="camera.porch"), size=100) for m in (5, 15)]
    cameras = {"kitchen": kitchen, "porch": porch}
    now = T0 + timedelta(days=1, minutes=8)

    # A day's retention: the events of minutes 0 and 5 are older than that.
    by_age = expired(cameras, now=now, max_age=timedelta(days=1), max_bytes=10_000)
    assert by_age == {"kitchen": [kitchen[0].id], "porch": [porch[0].id]}

    # And 250 bytes for the entry: of the three left the oldest goes too, whichever camera.
    capped = expired(cameras, now=now, max_age=timedelta(days=1), max_bytes=250)
    assert capped == {"kitchen": [kitchen[0].id, kitchen[1].id], "porch": [porch[0].id]}

    assert expired(cameras, now=T0, max_age=timedelta(days=1), max_bytes=500) == {}
