"""Escalations reach the teacher or say they did not: the outbox, with the real teacher service
in-process (and, for a misbehaving proxy, a small aiohttp server in front of nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from pathlib import Path
import random

from aiohttp import web
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.const import STATE_ON
from homeassistant.core import Event, HomeAssistant, callback

from custom_components.vision_tutor.const import (
    CONF_OUTBOX_MAX_AGE,
    CONF_STUDENT_TIMEOUT,
    EVENT_ESCALATION,
    EVENT_TEACHER_REVIEW,
)
from custom_components.vision_tutor.outbox import EscalationOutbox, OutboxEntry
from custom_components.vision_tutor.teacher import TeacherLink
from simulator.profiles import Faults
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import (
    OBSERVATION,
    SAFETY,
    coordinator,
    fast_teacher_retries,  # noqa: F401  (autouse fixture)
    fire,
    setup,
)
from .test_teacher import OUTBOX, _teacher, _wait_for

TEACHER = "gemma4:26b"
OPTIONS = {CONF_STUDENT_TIMEOUT: 60}


async def _analyse(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await coordinator(entry).async_analyse_now()
    await hass.async_block_till_done()


async def _collected(
    hass: HomeAssistant, events: list[Event], count: int, *, within_s: float
) -> None:
    """Wait until `events` (from async_capture_events) holds `count` events."""
    enough = asyncio.Event()

    @callback
    def _check(event: Event) -> None:
        if len(events) >= count:
            enough.set()

    unsubscribe = hass.bus.async_listen(EVENT_TEACHER_REVIEW, _check)
    try:
        if len(events) < count:
            async with asyncio.timeout(within_s):
                await enough.wait()
    finally:
        unsubscribe()


async def _token(simulator: RunningSimulator, data: Path) -> str:
    """The service's token for a data directory (made on its first start)."""
    async with _teacher(simulator, data) as teacher:
        return teacher.token


async def test_an_escalation_made_while_the_addon_is_down_reaches_it_after_a_restart(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    token = await _token(simulator, tmp_path)
    url = f"http://127.0.0.1:{unused_tcp_port}"
    entry = await setup(
        hass, make_entry(simulator.url, teacher=(url, token), interval=0, options=OPTIONS)
    )
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    camera.show(fire(library).id)
    retrying = asyncio.ensure_future(
        _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["outcome"] == "retrying")
    )
    await _analyse(hass, entry)
    await retrying
    first = coordinator(entry).data.escalation_id
    assert hass.states.get(OUTBOX).state == "1"
    assert hass.states.get(OUTBOX).attributes["by_reason"] == {"safety": 1}
    assert "unreachable" in hass.states.get(OUTBOX).attributes["last_error"]

    # Home Assistant stops and starts again, the add-on still down: the escalation is kept.
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(OUTBOX).state == "1"
    # The camera goes on analysing (and escalating) while the add-on is still down.
    await _analyse(hass, entry)
    second = coordinator(entry).data.escalation_id
    assert hass.states.get(OUTBOX).state == "2"

    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
    async with _teacher(simulator, tmp_path, unused_tcp_port):
        await _collected(hass, reviews, 2, within_s=20)
        await hass.async_block_till_done()

        queued = [e for e in escalations if e.data["outcome"] == "queued"]
        # Each escalation reached the service exactly once, the one from before the restart too.
        assert sorted(e.data["escalation_id"] for e in queued) == sorted([first, second])
        assert {e.data["outcome"] for e in escalations} == {"retrying", "queued"}
        assert [e.data["outcome"] for e in reviews] == ["reviewed", "reviewed"]
        assert all("fire" in e.data["flags"] for e in reviews)
        assert hass.states.get(OUTBOX).state == "0"
        assert hass.states.get(OBSERVATION).attributes["teacher"] == "reviewed"
        assert hass.states.get(SAFETY).attributes["confirmed_by_teacher"] is True
        assert await hass.config_entries.async_unload(entry.entry_id)


@contextlib.asynccontextmanager
async def _proxy(port: int) -> AsyncIterator[str]:
    """A proxy that answers every submission 200 with its own page, and has no stream."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<html>Welcome to the hotel network</html>", content_type="text/html"
        )

    async def no_stream(request: web.Request) -> web.Response:
        return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/api/v1/reviews", page)
    app.router.add_get("/api/v1/events", no_stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_200_without_a_review_is_an_error_to_retry_not_a_duplicate(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    unused_tcp_port: int,
) -> None:
    async with _proxy(unused_tcp_port) as url:
        entry = await setup(
            hass, make_entry(simulator.url, teacher=(url, "t"), interval=0, options=OPTIONS)
        )
        escalations = async_capture_events(hass, EVENT_ESCALATION)
        camera.show(fire(library).id)
        retrying = asyncio.ensure_future(
            _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["outcome"] == "retrying")
        )
        await _analyse(hass, entry)
        event = await retrying
        await hass.async_block_till_done()

        assert event.data["error"] == "200 without a review in the body"
        assert "duplicate" not in [e.data["outcome"] for e in escalations]
        assert hass.states.get(OUTBOX).state == "1"
        observation = hass.states.get(OBSERVATION).attributes
        assert observation["teacher_unavailable"] is True
        assert observation["teacher"] == "sending: retrying (200 without a review in the body)"
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_escalation_the_service_refuses_for_good_says_so(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
) -> None:
    async with _teacher(simulator, tmp_path) as teacher:
        entry = await setup(
            hass,
            make_entry(simulator.url, teacher=(teacher.url, "wrong"), interval=0, options=OPTIONS),
        )
        camera.show(fire(library).id)
        refused = asyncio.ensure_future(
            _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["outcome"] == "refused")
        )
        await _analyse(hass, entry)
        event = await refused
        await hass.async_block_till_done()
        assert event.data["error"].startswith("401")
        assert hass.states.get(OUTBOX).state == "0"
        assert (
            hass.states.get(OBSERVATION)
            .attributes["teacher"]
            .startswith("not reviewed (refused: 401")
        )
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_escalation_older_than_the_maximum_age_expires_and_says_so(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    unused_tcp_port: int,
) -> None:
    options = {**OPTIONS, CONF_OUTBOX_MAX_AGE: 0.005}  # minutes: 0.3 s
    url = f"http://127.0.0.1:{unused_tcp_port}"
    entry = await setup(
        hass, make_entry(simulator.url, teacher=(url, "t"), interval=0, options=options)
    )
    camera.show(fire(library).id)
    expired = asyncio.ensure_future(
        _wait_for(hass, EVENT_ESCALATION, lambda e: e.data["outcome"] == "expired")
    )
    await _analyse(hass, entry)
    event = await expired
    await hass.async_block_till_done()
    assert event.data["reason"] == "safety"
    assert "not delivered within" in event.data["error"]
    assert hass.states.get(OUTBOX).state == "0"
    assert (
        hass.states.get(OBSERVATION)
        .attributes["teacher"]
        .startswith("not reviewed (expired: not delivered within")
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_full_outbox_drops_audits_first_and_safety_last(hass: HomeAssistant) -> None:
    # Nothing is sent: the outbox is not running, this is about what it keeps.
    link = TeacherLink(hass, "e", "http://127.0.0.1:9", "t", lambda e: None, lambda: None)
    outcomes: list[tuple[str, str]] = []
    outbox = EscalationOutbox(
        hass,
        "e",
        link,
        max_age_s=3600,
        limit=2,
        on_outcome=lambda entry, outcome, details: outcomes.append((entry.key, outcome)),
        rng=random.Random(1),
    )
    dropped = async_capture_events(hass, EVENT_ESCALATION)

    def escalation(key: str, reason: str, priority: int, at: float) -> OutboxEntry:
        event = {"camera": "camera.x", "reason": reason}
        return OutboxEntry(key, "camera.x", priority, at, {"idempotency_key": key}, event)

    outbox.add(escalation("audit", "audit", 1, 1.0))
    outbox.add(escalation("safety", "safety", 5, 2.0))
    outbox.add(escalation("low", "low_confidence", 3, 3.0))
    outbox.add(escalation("audit-2", "audit", 1, 4.0))
    await hass.async_block_till_done()

    assert outcomes == [("audit", "dropped"), ("audit-2", "dropped")]
    assert outbox.depth == 2
    assert outbox.pending("safety")
    assert [e.data["outcome"] for e in dropped] == ["dropped", "dropped"]
    assert dropped[0].data["error"] == "the outbox is full (2)"
    outbox.add(escalation("safety-2", "safety", 5, 5.0))
    assert outcomes[-1] == ("low", "dropped")
    assert outbox.summary()["by_reason"] == {"safety": 2}


async def test_a_safety_review_the_teacher_failed_on_is_surfaced_and_the_evidence_stays(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    tmp_path: Path,
) -> None:
    # The teacher answers nonsense every time; with one attempt allowed, the review dead-letters.
    simulator.set_faults(TEACHER, Faults(garbage_rate=1.0))
    async with _teacher(simulator, tmp_path, max_attempts=1) as teacher:
        entry = await setup(
            hass,
            make_entry(
                simulator.url, teacher=(teacher.url, teacher.token), interval=0, options=OPTIONS
            ),
        )
        camera.show(fire(library).id)
        reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
        for _ in range(2):
            await _analyse(hass, entry)
        await _collected(hass, reviews, 2, within_s=10)
        await hass.async_block_till_done()

        assert [e.data["outcome"] for e in reviews] == ["failed", "failed"]
        assert reviews[-1].data["camera"] == "camera.front_door"
        assert reviews[-1].data["reason"] == "safety"
        assert reviews[-1].data["flags"] == []
        assert reviews[-1].data["error"]
        # The frame on display says its review did not happen, and why.
        assert (
            hass.states.get(OBSERVATION).attributes["teacher"].startswith("not reviewed (failed: ")
        )
        safety = hass.states.get(SAFETY)
        assert safety.state == STATE_ON
        assert "fire" in safety.attributes["flags"]
        assert safety.attributes["confirmed_by_teacher"] is False
        assert await hass.config_entries.async_unload(entry.entry_id)
