"""Setting up and unloading a config entry."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry


async def test_entry_loads_with_the_hosts_models_and_unloads(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = make_entry(simulator.url)
    entry.add_to_hass(hass)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    host = entry.runtime_data.host.data
    assert "gemma4:e2b" in host.models
    assert host.model_present

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_unreachable_host_retries_setup_later(
    hass: HomeAssistant, socket_enabled: None, unused_tcp_port: int
) -> None:
    entry = make_entry(f"http://127.0.0.1:{unused_tcp_port}")
    entry.add_to_hass(hass)

    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "is not reachable" in (entry.reason or "")
