"""The student host going away: a dropped connection is "unreachable", not a crash; the repair
issue appears after ten minutes even when the host was down at startup (the clock survives setup
retries); and a camera that finds the host gone turns connectivity off at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
import logging

from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.vision_tutor.const import DOMAIN
from simulator.scenes import SceneLibrary
from simulator.server import run_simulator

from .conftest import ENTRY_ID, SceneCamera, make_entry
from .helpers import CONNECTIVITY, OBSERVATION, next_frame, routine, setup

ISSUE_ID = f"student_unreachable_{ENTRY_ID}"


@asynccontextmanager
async def _dropping_server(port: int) -> AsyncIterator[None]:
    """Accepts connections on the port and closes them without an answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def test_a_host_that_drops_connections_is_unreachable_not_an_unexpected_error(
    hass: HomeAssistant,
    socket_enabled: None,
    camera: SceneCamera,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with run_simulator(time_scale=0.01, seed=1234) as running:
        entry = await setup(hass, make_entry(running.url))
        port = int(running.url.rsplit(":", 1)[1])
    host = entry.runtime_data.host

    async with _dropping_server(port):
        await host.async_refresh()
        await hass.async_block_till_done()
        assert hass.states.get(CONNECTIVITY).state == STATE_OFF
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info], (
            "a dropped connection is an unreachable host, not a crash with a traceback"
        )
        assert host._down_since is not None

        host._down_since -= timedelta(minutes=10)
        await host.async_refresh()
        assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_host_down_since_startup_raises_the_repair_issue_after_ten_minutes(
    hass: HomeAssistant,
    socket_enabled: None,
    unused_tcp_port: int,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No simulator here, so frozen time is safe."""
    entry = make_entry(f"http://127.0.0.1:{unused_tcp_port}")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY

    for _ in range(12):  # setup retries back off: 5, 10, 20, 40, 80, 160, 320 s...
        freezer.tick(timedelta(seconds=120))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert caplog.text.count("not ready yet") >= 7

    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None, (
        "24 minutes without the host, and no repair issue"
    )


async def test_connectivity_goes_off_when_a_camera_finds_the_host_gone(
    hass: HomeAssistant, socket_enabled: None, camera: SceneCamera, library: SceneLibrary
) -> None:
    async with run_simulator(time_scale=0.01, seed=1234) as running:
        entry = await setup(hass, make_entry(running.url))
    camera.show(routine(library, 1).id)

    await next_frame(hass, entry)
    await hass.async_block_till_done()

    assert hass.states.get(OBSERVATION).state == STATE_UNAVAILABLE
    assert hass.states.get(CONNECTIVITY).state == STATE_OFF, (
        "the cameras say the host is unreachable, the hub still says connected"
    )
