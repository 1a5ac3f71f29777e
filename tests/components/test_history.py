"""The event history: hazards and teacher verdicts kept on disk, browsed in Media → Vision Tutor.

A real Home Assistant with its media source and HTTP server, the simulator's student, files in
the test's own configuration folder; the full disk is a real tmpfs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
import json
from pathlib import Path
import subprocess
from typing import Any
from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from homeassistant.components import media_source
from homeassistant.components.media_player import BrowseError
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util

from custom_components.vision_tutor.const import (
    CONF_HISTORY_DAYS,
    DOMAIN,
    EVENT_SAFETY,
    EVENT_TEACHER_REVIEW,
)
from custom_components.vision_tutor.history import RETENTION_INTERVAL
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SUBENTRY_ID, SceneCamera, make_entry
from .helpers import (
    OBSERVATION,
    SAFETY,
    SAFETY_EVENT,
    coordinator,
    fire,
    hazard_on,
    next_frame,
    setup,
    verdict_on_display,
)

ROOT = "media-source://vision_tutor"
CAMERA_FOLDER = f"{ROOT}/{ENTRY_ID}/{SUBENTRY_ID}"


@pytest.fixture(autouse=True)
async def media(hass: HomeAssistant) -> None:
    """Home Assistant's media source (default_config loads it in a real installation)."""
    assert await async_setup_component(hass, "media_source", {})


def stems(path: Path, pattern: str) -> set[str]:
    return {found.stem for found in path.rglob(pattern)}


def delete_all(path: Path) -> None:
    for found in path.rglob("*.*"):
        found.unlink()


def folder(hass: HomeAssistant) -> Path:
    return Path(hass.config.path("vision_tutor", ENTRY_ID, SUBENTRY_ID))


def _confirm(entry: MockConfigEntry, flags: list[str] | None = None) -> None:
    verdict_on_display(
        entry, "Flames rise from a pan on the stove.", ["fire"] if flags is None else flags
    )


async def _browse(hass: HomeAssistant, media_id: str) -> Any:
    return await media_source.async_browse_media(hass, media_id)


async def test_a_hazard_is_kept_and_browsed_per_camera_with_its_frame(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
    hass_client: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
) -> None:
    ws = await hass_ws_client(hass)  # what the frontend's media browser uses, below
    safety_events = async_capture_events(hass, EVENT_SAFETY)
    await next_frame(hass, entry)  # a routine frame: nothing to keep
    assert hass.states.get(OBSERVATION).attributes["snapshot"] is None
    camera.show(fire(library).id)
    await hazard_on(hass, entry)

    root = await _browse(hass, ROOT)
    assert root.title == "Vision Tutor"
    assert [child.title for child in root.children] == ["Front door"]
    assert root.children[0].media_content_id == CAMERA_FOLDER

    cameras = await _browse(hass, CAMERA_FOLDER)
    # Every flagged frame of the fire is an event, newest first; the routine frame is not.
    flagged = [c for c in cameras.children if "Hazard: fire" in c.title]
    assert flagged
    assert len(flagged) == len(cameras.children)
    newest = cameras.children[0]
    shown = hass.states.get(OBSERVATION)
    assert shown.attributes["snapshot"] == newest.media_content_id
    local = dt_util.as_local(coordinator(entry).data.analysis.analysed_at)
    assert newest.title.startswith(local.strftime("%Y-%m-%d %H:%M:%S") + " · Hazard: fire")
    assert newest.title.endswith("Teacher: not reviewed (no teacher is configured)")
    assert newest.can_play
    assert newest.can_expand
    assert cameras.thumbnail == newest.thumbnail

    event = await _browse(hass, newest.media_content_id)
    assert [child.title for child in event.children] == [
        f"Student: {shown.state} ({round(shown.attributes['effective_confidence'] * 100)} %)"
    ]

    # The hazard's safety event points at the same event, for automations and notifications.
    detected = [e for e in safety_events if e.data["type"] == "hazard_detected"]
    assert detected[-1].data["media_content_id"] == newest.media_content_id
    assert hass.states.get(SAFETY_EVENT).attributes["media_content_id"] == newest.media_content_id

    # Resolved, the frame is what the student analysed, for signed-in users only.
    played = await media_source.async_resolve_media(hass, newest.media_content_id, None)
    assert played.mime_type == "image/jpeg"
    assert played.url == newest.thumbnail
    client = await hass_client()
    response = await client.get(played.url)
    assert response.status == 200
    assert await response.read() == coordinator(entry).data.analysis.frame.jpeg

    # What the frontend's media browser asks, over the websocket.
    await ws.send_json({"id": 1, "type": "media_source/browse_media", "media_content_id": ROOT})
    answer = await ws.receive_json()
    assert answer["success"], answer
    assert answer["result"]["children"][0]["title"] == "Front door"
    await ws.send_json(
        {"id": 2, "type": "media_source/resolve_media", "media_content_id": event.media_content_id}
    )
    answer = await ws.receive_json()
    assert answer["success"], answer
    signed = answer["result"]["url"]
    assert signed.startswith(played.url + "?authSig=")

    # On disk: a frame and a record per event, nothing half-written.
    names = sorted(path.name for path in folder(hass).iterdir())
    assert len(names) == 2 * len(cameras.children)
    assert not [name for name in names if name.endswith(".tmp")]


async def test_the_teachers_verdict_joins_its_event_and_survives_a_restart(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    kept = hass.states.get(OBSERVATION).attributes["snapshot"]
    _confirm(entry)
    await hass.async_block_till_done()

    assert hass.states.get(OBSERVATION).attributes["source"] == "teacher"
    assert hass.states.get(OBSERVATION).attributes["snapshot"] == kept
    assert reviews[-1].data["media_content_id"] == kept
    assert hass.states.get(SAFETY_EVENT).attributes["event_type"] == "teacher_confirmed"
    assert hass.states.get(SAFETY_EVENT).attributes["media_content_id"] == kept

    async def titles() -> tuple[str, list[str]]:
        event = await _browse(hass, kept)
        return event.title, [child.title for child in event.children]

    title, answers = await titles()
    assert title.endswith("Hazard: fire · Teacher confirmed: fire")
    assert answers[1] == "Teacher: Flames rise from a pan on the stove. (90 %)"

    record = json.loads((folder(hass) / f"{kept.rsplit('/', 1)[-1]}.json").read_text())
    assert record["verdict"] == "confirmed"
    assert record["teacher"]["summary"] == "Flames rise from a pan on the stove."

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert await titles() == (title, answers)


async def test_a_dismissal_is_said_in_the_event(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    kept = hass.states.get(OBSERVATION).attributes["snapshot"]
    _confirm(entry, flags=[])
    await hass.async_block_till_done()
    assert (await _browse(hass, kept)).title.endswith("Hazard: fire · Teacher dismissed it")


async def test_retention_deletes_events_older_than_the_option_says(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    # Analysed on request only: the hourly timer below must not analyse frames as well.
    entry = await setup(hass, make_entry(simulator.url, interval=0, options={CONF_HISTORY_DAYS: 2}))
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    events = (await _browse(hass, CAMERA_FOLDER)).children
    assert events
    files = set(folder(hass).iterdir())
    newest = entry.runtime_data.history.events(SUBENTRY_ID)[0].at

    async def hourly_check_at(now: datetime) -> None:
        # Home Assistant's clock moves; the loop's (the simulator's latencies) does not.
        with patch("custom_components.vision_tutor.history.dt_util.utcnow", return_value=now):
            async_fire_time_changed(hass, dt_util.utcnow() + RETENTION_INTERVAL)
            # Interval listeners run as background tasks.
            await hass.async_block_till_done(wait_background_tasks=True)

    await hourly_check_at(newest + timedelta(days=1, hours=23))
    assert len((await _browse(hass, CAMERA_FOLDER)).children) == len(events)

    await hourly_check_at(newest + timedelta(days=2, minutes=1))
    assert (await _browse(hass, CAMERA_FOLDER)).children == []
    assert [path.name for path in files if path.exists()] == []


async def test_the_size_cap_deletes_the_oldest_events_first(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    history = entry.runtime_data.history
    first = history.events(SUBENTRY_ID)
    one_event = max(record.size for record in first)
    history.max_bytes = int(one_event * 2.5)  # two events fit
    for _ in range(3):
        await coordinator(entry).async_analyse_now()
        await hass.async_block_till_done()
    await hass.async_block_till_done()

    kept = history.events(SUBENTRY_ID)
    assert len(kept) == 2
    assert sum(record.size for record in kept) <= history.max_bytes
    assert kept[0].id > kept[1].id > first[0].id  # the newest stay
    assert sorted(p.stem for p in folder(hass).glob("*.jpg")) == sorted(r.id for r in kept)


async def test_no_history_when_the_option_is_zero(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera, library: SceneLibrary
) -> None:
    entry = await setup(hass, make_entry(simulator.url, options={CONF_HISTORY_DAYS: 0}))
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    assert hass.states.get(OBSERVATION).attributes["snapshot"] is None
    assert hass.states.get(SAFETY_EVENT).attributes["media_content_id"] is None
    assert (await _browse(hass, CAMERA_FOLDER)).children == []
    assert not folder(hass).exists()


async def test_a_removed_camera_and_a_deleted_entry_take_their_history_with_them(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    assert any(folder(hass).iterdir())

    assert hass.config_entries.async_remove_subentry(entry, SUBENTRY_ID)
    await hass.async_block_till_done()
    assert not folder(hass).exists()
    with pytest.raises(BrowseError):
        await _browse(hass, CAMERA_FOLDER)

    entry_folder = folder(hass).parent
    assert entry_folder.exists()
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not entry_folder.exists()


async def test_frames_are_for_signed_in_users_and_ids_are_checked(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    camera.show(fire(library).id)
    await hazard_on(hass, entry)
    url = hass.states.get(SAFETY_EVENT).attributes["snapshot_url"]
    assert (await (await hass_client_no_auth()).get(url)).status == 401
    client = await hass_client()
    assert (await client.get(url)).status == 200
    base = url.rsplit("/", 1)[0]
    for wrong in ("0000000000000-00000000.jpg", "..%2F..%2Fsecrets.yaml", "x.jpg"):
        # Home Assistant refuses the path traversal itself (400); the view what it does not keep.
        assert (await client.get(f"{base}/{wrong}")).status in (400, 404), wrong
    with pytest.raises(media_source.Unresolvable):
        await media_source.async_resolve_media(hass, f"{CAMERA_FOLDER}/../x", None)


@pytest.fixture
def small_disk(hass: HomeAssistant) -> Any:
    """A real 128 kB tmpfs where the event history goes: room for a frame or two."""
    path = Path(hass.config.path("vision_tutor"))
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, (
        f"this test mounts a tmpfs to fill a real disk and needs root: {mounted.stderr}"
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


async def test_a_full_disk_never_stops_the_analysis_and_says_so_in_a_repair(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup(hass, make_entry(simulator.url))
    camera.show(fire(library).id)
    history = entry.runtime_data.history
    issue_id = f"history_write_failed_{entry.entry_id}"
    analysed = []
    for _ in range(8):
        analysis = await coordinator(entry).async_analyse_now()
        await hass.async_block_till_done()
        analysed.append(analysis.analysed_at)
        if history.failures:
            break
    assert history.failures, "the tmpfs never filled up"
    assert len(set(analysed)) == len(analysed)
    assert hass.states.get(SAFETY).state == STATE_ON  # the analysis went on
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders["error"] == "No space left on device"
    assert "Could not write to the event history" in caplog.text
    # What failed is not listed, and nothing half-written is left on the disk.
    listed = {record.id for record in history.events(SUBENTRY_ID)}
    on_disk = stems(small_disk, "*.jpg")
    assert listed == on_disk
    assert not stems(small_disk, "*.tmp")
    assert stems(small_disk, "*.json") == on_disk

    # Space again (the user deleted something): the next event is kept and the repair goes.
    delete_all(small_disk)
    history.records[SUBENTRY_ID].clear()
    await coordinator(entry).async_analyse_now()
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert len(history.events(SUBENTRY_ID)) == 1
