"""The config flow, against the simulator over loopback."""

from __future__ import annotations

from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.vision_tutor.const import CONF_STUDENT_URL, DOMAIN
from simulator.server import RunningSimulator


async def test_user_step_creates_entry_for_a_reachable_host(
    hass: HomeAssistant, simulator: RunningSimulator
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: f" {simulator.url}/ "}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "127.0.0.1"
    assert result["data"] == {CONF_STUDENT_URL: simulator.url}
    assert result["result"].unique_id == simulator.url


async def test_user_step_rejects_a_url_that_is_not_http(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: "ftp://127.0.0.1:11434"}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_STUDENT_URL: "invalid_url"}


async def test_user_step_reports_an_unreachable_host_and_recovers(
    hass: HomeAssistant, simulator: RunningSimulator, unused_tcp_port: int
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: f"http://127.0.0.1:{unused_tcp_port}"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: simulator.url}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_step_aborts_for_a_host_already_configured(
    hass: HomeAssistant, simulator: RunningSimulator
) -> None:
    MockConfigEntry(
        domain=DOMAIN, unique_id=simulator.url, data={CONF_STUDENT_URL: simulator.url}
    ).add_to_hass(hass)

    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: simulator.url}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
