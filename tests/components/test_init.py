"""Setting up and unloading a config entry."""

from __future__ import annotations

from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.vision_tutor.const import CONF_STUDENT_URL, DOMAIN
from simulator.server import RunningSimulator


def _entry(url: str) -> MockConfigEntry:
    return MockConfigEntry(domain=DOMAIN, unique_id=url, data={CONF_STUDENT_URL: url})


async def test_entry_loads_and_lists_the_hosts_models(
    hass: HomeAssistant, simulator: RunningSimulator
) -> None:
    entry = _entry(simulator.url)
    entry.add_to_hass(hass)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert "gemma4:e2b" in entry.runtime_data.models

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_unreachable_host_retries_setup_later(
    hass: HomeAssistant, socket_enabled: None, unused_tcp_port: int
) -> None:
    entry = _entry(f"http://127.0.0.1:{unused_tcp_port}")
    entry.add_to_hass(hass)

    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "is not reachable" in (entry.reason or "")
