"""The teacher check against the real Vision Tutor teacher service (the add-on's code), in-process.

The other config flow tests use a small stand-in for the service's health endpoint; these make
sure the flow and the service agree on the endpoint, the token and the health states.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import contextlib
from pathlib import Path
from typing import Any

import pytest

from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from custom_components.vision_tutor.const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
    DOMAIN,
    TEACHER_MODE_ADDON,
    TEACHER_MODE_MANUAL,
)
from simulator.server import RunningSimulator
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import run_service

from .test_config_flow_helpers import (
    SetupCalls,
    flow_translations_fixture,  # noqa: F401  (fixture)
    no_entry_setup_fixture,  # noqa: F401  (fixture)
)

type StartService = Callable[[str], contextlib.AbstractAsyncContextManager[Any]]


@pytest.fixture(autouse=True)
def _checked(flow_translations: None, no_entry_setup: SetupCalls) -> None:
    """Every test checks its flow's translations; entries load without coordinators."""


@pytest.fixture(name="teacher_service")
def teacher_service_fixture(tmp_path: Path, socket_enabled: None) -> StartService:
    """Start the teacher service on loopback with its teacher model at `teacher_url`."""

    @contextlib.asynccontextmanager
    async def start(teacher_url: str) -> AsyncIterator[Any]:
        options = Options(teacher_url=teacher_url, probe_interval_s=0.2, batch_window_ms=0)
        async with run_service(options, tmp_path / "data") as running:
            yield running

    return start


async def _at_teacher_manual(hass: HomeAssistant, student_url: str) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    for step in (
        {CONF_STUDENT_URL: student_url},
        {CONF_STUDENT_MODEL: "gemma4:e2b"},
        {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL},
    ):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], step)
    assert result["step_id"] == "teacher_manual"
    return result


async def test_manual_teacher_checked_against_the_service(
    hass: HomeAssistant, simulator: RunningSimulator, teacher_service: StartService
) -> None:
    async with teacher_service(simulator.url) as service:
        result = await _at_teacher_manual(hass, simulator.url)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_TEACHER_URL: service.url, CONF_TEACHER_TOKEN: "guessed"}
        )
        assert result["errors"] == {"base": "invalid_auth"}

        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_TEACHER_URL: service.url, CONF_TEACHER_TOKEN: service.token}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TEACHER_URL] == service.url
    assert result["data"][CONF_TEACHER_TOKEN] == service.token


async def test_service_whose_teacher_model_is_down_is_still_accepted(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    teacher_service: StartService,
    unused_tcp_port: int,
) -> None:
    """Health says degraded: the queue holds reviews until the teacher's Ollama is back."""
    async with teacher_service(f"http://127.0.0.1:{unused_tcp_port}") as service:
        result = await _at_teacher_manual(hass, simulator.url)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_TEACHER_URL: service.url, CONF_TEACHER_TOKEN: service.token}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_discovery_of_the_service(
    hass: HomeAssistant, simulator: RunningSimulator, teacher_service: StartService
) -> None:
    async with teacher_service(simulator.url) as service:
        info = HassioServiceInfo(
            config={"host": "127.0.0.1", "port": service.port, "token": service.token},
            name="Vision Tutor",
            slug="vision_tutor",
            uuid="5e2f0b8c4d1a4c7e9f3b6a2d8c0e1f47",
        )
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_HASSIO}, data=info
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "user"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: simulator.url}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_MODEL: "gemma4:e2b"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TEACHER_MODE] == TEACHER_MODE_ADDON
    assert result["data"][CONF_TEACHER_URL] == service.url
