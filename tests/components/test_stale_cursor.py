"""A saved stream cursor that no longer fits the add-on's database drops no verdict.

The add-on's database is deleted and recreated, restored from an older copy, or the saved
cursor is far ahead of it: in each case every verdict reaches Home Assistant exactly once.
The real teacher service runs in-process on a fixed port and is stopped and started around the
integration, which stays loaded (or, for the saved cursor, starts with it in its storage).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
import shutil
from typing import Any

from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.core import Event, HomeAssistant

from custom_components.vision_tutor.const import CONF_STUDENT_TIMEOUT, EVENT_TEACHER_REVIEW
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SceneCamera, make_entry
from .helpers import (
    coordinator,
    fast_teacher_retries,  # noqa: F401  (autouse fixture)
    fire,
    setup,
)
from .test_escalation_delivery import _collected
from .test_teacher import _teacher

DATABASE = "vision_tutor.db"
OPTIONS = {CONF_STUDENT_TIMEOUT: 60}


def _reviewed(events: list[Event]) -> list[Event]:
    return [e for e in events if e.data["outcome"] == "reviewed"]


async def _verdict(
    hass: HomeAssistant, entry: MockConfigEntry, reviews: list[Event], count: int
) -> None:
    """Analyse the fire frame and wait until `count` verdicts have arrived in all."""
    await coordinator(entry).async_analyse_now()
    await hass.async_block_till_done()
    await _collected(hass, reviews, count, within_s=20)
    await hass.async_block_till_done()


def _exactly_once(reviews: list[Event], count: int) -> None:
    per_review = Counter(e.data["review_id"] for e in _reviewed(reviews))
    assert len(per_review) == count, per_review
    assert set(per_review.values()) == {1}, per_review


def _remove_database(data: Path) -> None:
    for path in data.glob(f"{DATABASE}*"):
        path.unlink()


async def _entry(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    url: str,
    token: str,
) -> MockConfigEntry:
    camera.show(fire(library).id)
    return await setup(
        hass, make_entry(simulator.url, teacher=(url, token), interval=0, options=OPTIONS)
    )


async def test_a_deleted_and_recreated_database_delivers_every_verdict_once(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
    async with _teacher(simulator, tmp_path, unused_tcp_port) as teacher:
        entry = await _entry(hass, simulator, camera, library, teacher.url, teacher.token)
        for n in range(1, 4):
            await _verdict(hass, entry, reviews, n)
        old_cursor = entry.runtime_data.teacher.cursor

    _remove_database(tmp_path)  # the token stays: the add-on is reinstalled with its config
    async with _teacher(simulator, tmp_path, unused_tcp_port):
        await _verdict(hass, entry, reviews, 4)
        # The new database's log is shorter than the old cursor was; nothing was skipped.
        assert entry.runtime_data.teacher.cursor < old_cursor
        _exactly_once(reviews, 4)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_database_restored_from_an_older_copy_delivers_every_verdict_once(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
    async with _teacher(simulator, data, unused_tcp_port) as teacher:
        entry = await _entry(hass, simulator, camera, library, teacher.url, teacher.token)
        await _verdict(hass, entry, reviews, 1)
    shutil.copytree(data, backup)  # a backup of the add-on, taken here

    async with _teacher(simulator, data, unused_tcp_port):
        for n in range(2, 5):
            await _verdict(hass, entry, reviews, n)

    # The add-on is restored from the backup: its log ends before this entry's cursor, and its
    # next verdicts get sequence numbers the entry has already passed.
    _remove_database(data)
    for path in backup.glob(f"{DATABASE}*"):
        shutil.copy(path, data / path.name)
    async with _teacher(simulator, data, unused_tcp_port):
        await _verdict(hass, entry, reviews, 5)
        # The restored log is read again from its start: the first verdict is not applied twice.
        _exactly_once(reviews, 5)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_saved_cursor_far_ahead_of_the_log_delivers_every_verdict(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
) -> None:
    hass_storage[f"vision_tutor.{ENTRY_ID}.teacher_cursor"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"vision_tutor.{ENTRY_ID}.teacher_cursor",
        "data": {"cursor": 10**6},
    }
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
    async with _teacher(simulator, tmp_path) as teacher:
        entry = await _entry(hass, simulator, camera, library, teacher.url, teacher.token)
        for n in range(1, 4):
            await _verdict(hass, entry, reviews, n)
        _exactly_once(reviews, 3)
        assert entry.runtime_data.teacher.cursor < 10**6
        assert await hass.config_entries.async_unload(entry.entry_id)
