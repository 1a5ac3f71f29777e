"""The config flow's model step: capabilities, a server that will not describe a model, and
downloading a model with a progress step, against the simulator (and a proxy in front of it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import replace
from typing import Any

from aiohttp import ClientSession, web
import pytest

from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE, FlowResultType

from custom_components.vision_tutor.const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    TEACHER_MODE_NONE,
)
from custom_components.vision_tutor.ollama_client import create_client
from simulator.profiles import ModelProfile, load_config
from simulator.server import RunningSimulator, run_simulator

from .test_config_flow import schema_default, select_options, start, submit
from .test_config_flow_helpers import (
    Serve,
    SetupCalls,
    flow_translations_fixture,  # noqa: F401  (fixture)
    no_entry_setup_fixture,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (fixture)
)

TEXT_ONLY = "textonly:1b"


@pytest.fixture(autouse=True)
def _checked(flow_translations: None, no_entry_setup: SetupCalls) -> None:
    """Every test checks its flow's translations; entries load without coordinators."""


@contextlib.asynccontextmanager
async def simulator(
    models: set[str] | None = None, **overrides: Any
) -> AsyncIterator[RunningSimulator]:
    """The default profiles (only `models` when given) plus a text-only model."""
    config = load_config(time_scale=0.01, seed=1234)
    text_only = ModelProfile(
        name=TEXT_ONLY, role="student", capabilities=("completion",), family="gemma3"
    )
    served = {**config.models, TEXT_ONLY: text_only}
    if models is not None:
        served = {name: profile for name, profile in served.items() if name in models}
    async with run_simulator(replace(config, models=served, **overrides)) as running:
        yield running


async def pull(hass: HomeAssistant, result: Any, model: str) -> tuple[Any, list[float]]:
    """Choose a model that is not on the server; wait for the download; the next step."""
    progress: list[float] = []

    def record(event: Event[dict[str, Any]]) -> None:
        if event.data["flow_id"] == result["flow_id"]:
            progress.append(event.data["progress"])

    unsubscribe = hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE, record)
    result = await submit(hass, result, {CONF_STUDENT_MODEL: model})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "pull"
    assert result["progress_action"] == "pull"
    assert result["description_placeholders"]["model"] == model
    await hass.async_block_till_done()
    unsubscribe()
    return await submit(hass, result), progress


async def test_a_host_without_vision_models_offers_the_default_and_downloads_it(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with simulator({"gemma4:e2b", "embeddinggemma"}, not_pulled={"gemma4:e2b"}) as host:
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: host.url})
        assert result["step_id"] == "model"
        assert select_options(result, CONF_STUDENT_MODEL) == ["gemma4:e2b"]
        assert schema_default(result, CONF_STUDENT_MODEL) == "gemma4:e2b"

        result, progress = await pull(hass, result, "gemma4:e2b")
        listed = await _pulled(host.url)

    # Ollama's streamed progress reached the form, counting up to the whole model.
    assert progress
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert "gemma4:e2b" in listed
    # Then on as if the model had been there.
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "teacher"
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_STUDENT_MODEL] == "gemma4:e2b"


async def _pulled(url: str) -> list[str]:
    async with create_client(url) as client:
        return [str(model.model) for model in (await client.list()).models]


async def test_a_model_without_vision_is_refused_with_a_clear_error(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with simulator() as host:
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: host.url})
        assert TEXT_ONLY not in select_options(result, CONF_STUDENT_MODEL)
        # Typed in by hand: it is on the server, but would never see a frame.
        result = await submit(hass, result, {CONF_STUDENT_MODEL: TEXT_ONLY})
    assert result["step_id"] == "model"
    assert result["errors"] == {"base": "model_not_vision"}
    assert result["description_placeholders"]["model"] == TEXT_ONLY


async def test_a_downloaded_model_without_vision_is_refused(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with simulator(not_pulled={TEXT_ONLY}) as host:
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: host.url})
        result, _ = await pull(hass, result, TEXT_ONLY)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "model"
    assert result["errors"] == {"base": "model_not_vision"}


async def test_a_download_that_fails_says_why_and_offers_the_models_again(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with simulator() as host:
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: host.url})
        result, _ = await pull(hass, result, "nosuchmodel:7b")
    assert result["step_id"] == "model"
    assert result["errors"] == {"base": "pull_failed"}
    assert "file does not exist" in result["description_placeholders"]["error"]
    assert select_options(result, CONF_STUDENT_MODEL) == ["gemma4:26b", "gemma4:e2b"]


def refusing_show(upstream: str, refused: str) -> Callable[[web.Request], Any]:
    """A proxy in front of Ollama that answers 403 to `/api/show` for one model (as a cloud
    model does when the server is not signed in) and forwards everything else."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path == "/api/show" and refused in body.decode():
            return web.json_response({"error": "unauthorized"}, status=403)
        async with (
            ClientSession() as session,
            session.request(
                request.method, f"{upstream}{request.path_qs}", data=body or None
            ) as response,
        ):
            return web.Response(
                status=response.status,
                body=await response.read(),
                content_type=response.content_type,
            )

    return handle


async def test_a_model_the_server_will_not_describe_is_skipped_and_counted(
    hass: HomeAssistant, serve: Serve
) -> None:
    async with simulator() as host:
        proxy = await serve(refusing_show(host.url, "gemma4:26b"))
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: proxy})
    # Discovery goes on without it, and says how many were left out.
    assert result["step_id"] == "model"
    assert select_options(result, CONF_STUDENT_MODEL) == ["gemma4:e2b"]
    assert result["errors"] == {"base": "models_skipped"}
    assert result["description_placeholders"]["skipped"] == "1"


async def test_the_model_step_names_the_ollama_release(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with simulator(version="0.20.4") as host:
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: host.url})
    assert result["description_placeholders"]["version"] == "0.20.4"
