"""The config flow: student host, model, teacher, Supervisor discovery and reconfigure.

Against the simulator over loopback, and small aiohttp servers on 127.0.0.1 for the hosts that
misbehave (a web server that is not Ollama, one that never answers, one with a self-signed
certificate) and for the teacher service's health endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import AsyncMock

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.config_entries import (
    SOURCE_HASSIO,
    SOURCE_IGNORE,
    SOURCE_USER,
    ConfigEntryState,
)
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
    TEACHER_MODE_NONE,
)
from simulator.server import RunningSimulator

from .test_config_flow_helpers import (
    TEACHER_TOKEN,
    Serve,
    SetupCalls,
    answer,
    flow_translations_fixture,  # noqa: F401  (fixture)
    never_answer,
    no_entry_setup_fixture,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (fixture)
    short_probe_timeout_fixture,  # noqa: F401  (fixture)
    simulator_with,
    teacher_server_fixture,  # noqa: F401  (fixture)
    untrusted_tls_url_fixture,  # noqa: F401  (fixture)
)

type TeacherServer = Callable[..., Awaitable[str]]

EXPECTED_OPTIONS = {
    "min_confidence": 0.72,
    "safety_keywords": ["fire", "smoke", "weapon", "fall", "intrusion", "blood"],
    "audit_rate": 150,
    "teacher_queue_limit": 20,
    "outbox_max_age": 60,
    "window_size": 5,
    "window_trigger": 2,
    "clean_to_clear": 3,
    "dismissal_clears": True,
    "change_sensitivity": 0.5,
    "student_timeout": 20.0,
    "max_concurrent": 4,
    "frame_width": 768,
    "relook_minutes": 10,
    "history_days": 7,
    "history_max_mb": 500,
    "target": "share",
    "teacher_budget": 15.0,
    "reviews_per_hour": 30.0,
    "max_miss_rate": 2.0,
    "time_buckets": "sun",
    "day_start": 7,
    "day_end": 19,
}


@pytest.fixture(autouse=True)
def _checked(flow_translations: None, no_entry_setup: SetupCalls) -> None:
    """Every test checks its flow's translations; entries load without coordinators."""


def schema_default(result: Any, key: str) -> Any:
    """The value a form field shows: its suggested value, else its default."""
    for marker in result["data_schema"].schema:
        if marker.schema == key:
            if (marker.description or {}).get("suggested_value") is not None:
                return marker.description["suggested_value"]
            return marker.default()
    raise KeyError(key)


def select_options(result: Any, key: str) -> list[str]:
    """The values a select offers (plain strings, or the values of value/label options)."""
    for marker, selector in result["data_schema"].schema.items():
        if marker.schema == key:
            return [
                option["value"] if isinstance(option, dict) else option
                for option in selector.config["options"]
            ]
    raise KeyError(key)


async def start(hass: HomeAssistant) -> Any:
    return await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})


async def submit(hass: HomeAssistant, result: Any, data: dict[str, Any] | None = None) -> Any:
    return await hass.config_entries.flow.async_configure(result["flow_id"], data or {})


def entry_for(url: str, *, title: str | None = None, **data: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=title or url.removeprefix("http://"),
        unique_id=url,
        data={
            CONF_STUDENT_URL: url,
            CONF_STUDENT_MODEL: "gemma4:e2b",
            CONF_TEACHER_MODE: TEACHER_MODE_NONE,
            CONF_TEACHER_URL: None,
            CONF_TEACHER_TOKEN: None,
            **data,
        },
        options=dict(EXPECTED_OPTIONS),
    )


def discovery(url: str, *, token: str = TEACHER_TOKEN) -> HassioServiceInfo:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return HassioServiceInfo(
        config={"host": host, "port": int(port), "token": token, "addon": "Vision Tutor"},
        name="Vision Tutor",
        slug="vision_tutor",
        uuid="5e2f0b8c4d1a4c7e9f3b6a2d8c0e1f47",
    )


async def discover(hass: HomeAssistant, info: HassioServiceInfo) -> Any:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )


# --- Setting up a student host ------------------------------------------------------------------


async def test_student_only_setup(
    hass: HomeAssistant, simulator: RunningSimulator, no_entry_setup: SetupCalls
) -> None:
    result = await start(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    assert schema_default(result, CONF_STUDENT_URL) == "http://localhost:11434"

    # Spaces and a trailing slash are forgiven; the unique id is the canonical URL.
    result = await submit(hass, result, {CONF_STUDENT_URL: f" {simulator.url}/ "})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "model"
    assert result["description_placeholders"] == {
        "url": simulator.url,
        "version": simulator.config.version,
        "skipped": "0",
    }
    assert result["errors"] == {}
    # Only the models whose /api/show capabilities include vision: not the embedding model.
    assert select_options(result, CONF_STUDENT_MODEL) == ["gemma4:26b", "gemma4:e2b"]
    assert schema_default(result, CONF_STUDENT_MODEL) == "gemma4:e2b"

    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    assert result["step_id"] == "teacher"
    assert select_options(result, CONF_TEACHER_MODE) == [TEACHER_MODE_NONE, TEACHER_MODE_MANUAL]
    assert schema_default(result, CONF_TEACHER_MODE) == TEACHER_MODE_NONE

    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    # The hub's name, not its address: the device and its entity ids are named after it.
    assert entry.title == "Vision Tutor"
    assert entry.unique_id == simulator.url
    assert dict(entry.data) == {
        CONF_STUDENT_URL: simulator.url,
        CONF_STUDENT_MODEL: "gemma4:e2b",
        CONF_TEACHER_MODE: TEACHER_MODE_NONE,
        CONF_TEACHER_URL: None,
        CONF_TEACHER_TOKEN: None,
    }
    assert dict(entry.options) == EXPECTED_OPTIONS
    assert entry.subentries == {}
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert no_entry_setup.setup.await_count == 1


async def test_setup_with_a_teacher_service(
    hass: HomeAssistant, simulator: RunningSimulator, teacher_server: TeacherServer
) -> None:
    teacher_url = await teacher_server(state="degraded")
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:26b"})
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL})
    assert result["step_id"] == "teacher_manual"
    assert result["errors"] == {}

    # A wrong token is refused, and what was typed stays in the form.
    result = await submit(
        hass, result, {CONF_TEACHER_URL: teacher_url, CONF_TEACHER_TOKEN: "wrong"}
    )
    assert result["step_id"] == "teacher_manual"
    assert result["errors"] == {"base": "invalid_auth"}
    assert schema_default(result, CONF_TEACHER_URL) == teacher_url
    assert schema_default(result, CONF_TEACHER_TOKEN) == "wrong"

    # A teacher whose own model is down ("degraded") is still a teacher.
    result = await submit(
        hass, result, {CONF_TEACHER_URL: f"{teacher_url}/", CONF_TEACHER_TOKEN: TEACHER_TOKEN}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(result["data"]) == {
        CONF_STUDENT_URL: simulator.url,
        CONF_STUDENT_MODEL: "gemma4:26b",
        CONF_TEACHER_MODE: TEACHER_MODE_MANUAL,
        CONF_TEACHER_URL: teacher_url,
        CONF_TEACHER_TOKEN: TEACHER_TOKEN,
    }


async def test_address_without_scheme_gets_http(
    hass: HomeAssistant, simulator: RunningSimulator
) -> None:
    result = await submit(
        hass, await start(hass), {CONF_STUDENT_URL: simulator.url.removeprefix("http://")}
    )
    assert result["step_id"] == "model"
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
    assert result["data"][CONF_STUDENT_URL] == simulator.url


async def test_model_preselects_the_first_when_the_default_is_missing(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with simulator_with({"gemma4:26b", "embeddinggemma"}) as only_teacher_model:
        result = await submit(hass, await start(hass), {CONF_STUDENT_URL: only_teacher_model.url})
    # The default student is offered for download after the server's own vision models.
    assert select_options(result, CONF_STUDENT_MODEL) == ["gemma4:26b", "gemma4:e2b"]
    assert schema_default(result, CONF_STUDENT_MODEL) == "gemma4:26b"


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1:11434", "http://", "http://user:secret@127.0.0.1:11434", "http://h:99999"],
)
async def test_invalid_url(hass: HomeAssistant, url: str) -> None:
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: url})
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_STUDENT_URL: "invalid_url"}
    assert schema_default(result, CONF_STUDENT_URL) == url


async def test_unreachable_host_then_recovers(
    hass: HomeAssistant, simulator: RunningSimulator, unused_tcp_port: int
) -> None:
    result = await submit(
        hass, await start(hass), {CONF_STUDENT_URL: f"http://127.0.0.1:{unused_tcp_port}"}
    )
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "cannot_connect"}

    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    assert result["step_id"] == "model"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error"),
    [
        # A web server that is not Ollama: 404 with an HTML page at /api/tags.
        (404, "<html><body>Not Found</body></html>", "text/html", "not_ollama"),
        # One that answers every path with its home page.
        (200, "<html><body>Welcome to my NAS</body></html>", "text/html", "not_ollama"),
        (200, '{"models": "none"}', "application/json", "not_ollama"),
        # A plain-http request to an https server (nginx's answer).
        (400, "The plain HTTP request was sent to HTTPS port", "text/html", "not_ollama"),
        (401, "Unauthorized", "text/plain", "student_auth"),
        (403, "Forbidden", "text/plain", "student_auth"),
        # A reverse proxy whose Ollama is stopped.
        (502, "Bad Gateway", "text/html", "cannot_connect"),
    ],
)
async def test_host_that_is_not_a_usable_ollama(
    hass: HomeAssistant, serve: Serve, status: int, body: str, content_type: str, error: str
) -> None:
    url = await serve(answer(status, body, content_type))
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: url})
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": error}


async def test_host_that_never_answers_times_out(
    hass: HomeAssistant, serve: Serve, short_probe_timeout: float
) -> None:
    url = await serve(never_answer)
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: url})
    assert result["errors"] == {"base": "timeout"}


async def test_https_to_an_http_server(hass: HomeAssistant, simulator: RunningSimulator) -> None:
    https = simulator.url.replace("http://", "https://")
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: https})
    assert result["errors"] == {"base": "https_to_http"}


async def test_untrusted_certificate(hass: HomeAssistant, untrusted_tls_url: str) -> None:
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: untrusted_tls_url})
    assert result["errors"] == {"base": "invalid_certificate"}


async def test_host_already_configured(hass: HomeAssistant, simulator: RunningSimulator) -> None:
    entry_for(simulator.url).add_to_hass(hass)
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: f"{simulator.url}/"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# --- The teacher service's check ----------------------------------------------------------------


async def _at_teacher_manual(hass: HomeAssistant, simulator: RunningSimulator) -> Any:
    result = await submit(hass, await start(hass), {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    return await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL})


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (404, "<html>Not Found</html>", "text/html"),
        (500, '{"error": "boom"}', "application/json"),
        (200, "<html>hello</html>", "text/html"),
        (200, '["ok"]', "application/json"),
        (200, '{"status": "starting"}', "application/json"),
        (200, "", "application/json"),
    ],
)
async def test_teacher_url_that_is_not_a_teacher(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    serve: Serve,
    status: int,
    body: str,
    content_type: str,
) -> None:
    url = await serve(answer(status, body, content_type))
    result = await _at_teacher_manual(hass, simulator)
    result = await submit(hass, result, {CONF_TEACHER_URL: url, CONF_TEACHER_TOKEN: TEACHER_TOKEN})
    assert result["step_id"] == "teacher_manual"
    assert result["errors"] == {"base": "not_a_teacher"}


async def test_teacher_unreachable_invalid_or_silent(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    serve: Serve,
    teacher_server: TeacherServer,
    unused_tcp_port: int,
    short_probe_timeout: float,
) -> None:
    result = await _at_teacher_manual(hass, simulator)
    token = {CONF_TEACHER_TOKEN: TEACHER_TOKEN}

    result = await submit(hass, result, {CONF_TEACHER_URL: "teacher.local:x", **token})
    assert result["errors"] == {CONF_TEACHER_URL: "invalid_url"}

    result = await submit(
        hass, result, {CONF_TEACHER_URL: f"http://127.0.0.1:{unused_tcp_port}", **token}
    )
    assert result["errors"] == {"base": "cannot_connect_teacher"}

    result = await submit(hass, result, {CONF_TEACHER_URL: await serve(never_answer), **token})
    assert result["errors"] == {"base": "cannot_connect_teacher"}

    teacher = await teacher_server()
    https = teacher.replace("http://", "https://")
    result = await submit(hass, result, {CONF_TEACHER_URL: https, **token})
    assert result["errors"] == {"base": "https_to_http"}

    # Without a scheme the address is http; the token's spaces are trimmed.
    result = await submit(
        hass,
        result,
        {
            CONF_TEACHER_URL: teacher.removeprefix("http://"),
            CONF_TEACHER_TOKEN: f" {TEACHER_TOKEN} ",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TEACHER_URL] == teacher
    assert result["data"][CONF_TEACHER_TOKEN] == TEACHER_TOKEN


# --- Supervisor discovery of the add-on ---------------------------------------------------------


async def test_discovery_sets_up_a_student_host_with_the_addon(
    hass: HomeAssistant, simulator: RunningSimulator, teacher_server: TeacherServer
) -> None:
    addon_url = await teacher_server()
    result = await discover(hass, discovery(addon_url))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"]["addon"] == "Vision Tutor"
    flow = hass.config_entries.flow.async_get(result["flow_id"])
    assert flow["context"]["title_placeholders"] == {"name": "Vision Tutor"}
    assert flow["context"]["unique_id"] == "vision_tutor"

    result = await submit(hass, result)
    assert result["step_id"] == "user"
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})

    # The add-on was chosen already: no teacher step.
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == simulator.url
    assert dict(result["data"]) == {
        CONF_STUDENT_URL: simulator.url,
        CONF_STUDENT_MODEL: "gemma4:e2b",
        CONF_TEACHER_MODE: TEACHER_MODE_ADDON,
        CONF_TEACHER_URL: addon_url,
        CONF_TEACHER_TOKEN: TEACHER_TOKEN,
    }
    assert dict(result["options"]) == EXPECTED_OPTIONS


async def test_discovery_confirm_reports_an_addon_that_refuses_its_token(
    hass: HomeAssistant, teacher_server: TeacherServer, unused_tcp_port: int
) -> None:
    addon_url = await teacher_server()
    result = await discover(hass, discovery(addon_url, token="rotated-since"))
    result = await submit(hass, result)
    assert result["step_id"] == "hassio_confirm"
    assert result["errors"] == {"base": "invalid_auth"}

    result = await discover(hass, discovery(f"http://127.0.0.1:{unused_tcp_port}"))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_in_progress"


async def test_discovery_updates_entries_that_use_the_addon(
    hass: HomeAssistant, no_entry_setup: SetupCalls
) -> None:
    using = entry_for(
        "http://10.0.0.2:11434",
        teacher_mode=TEACHER_MODE_ADDON,
        teacher_url="http://local-vision-tutor:8765",
        teacher_token="old-token",
    )
    other = entry_for("http://10.0.0.3:11434")
    for entry in (using, other):
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert no_entry_setup.setup.await_count == 2

    result = await discover(hass, discovery("http://172.30.33.4:8765", token="new-token"))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert using.data[CONF_TEACHER_URL] == "http://172.30.33.4:8765"
    assert using.data[CONF_TEACHER_TOKEN] == "new-token"
    assert using.data[CONF_STUDENT_MODEL] == "gemma4:e2b"
    # Only the changed entry was reloaded; the student-only entry was left alone.
    assert no_entry_setup.setup.await_count == 3
    assert other.data[CONF_TEACHER_MODE] == TEACHER_MODE_NONE

    # The Supervisor announces again on every add-on start: nothing changed, nothing reloads.
    result = await discover(hass, discovery("http://172.30.33.4:8765", token="new-token"))
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert no_entry_setup.setup.await_count == 3


async def test_discovery_update_left_to_an_entry_that_reloads_itself(
    hass: HomeAssistant, no_entry_setup: SetupCalls
) -> None:
    entry = entry_for("http://10.0.0.2:11434", teacher_mode=TEACHER_MODE_ADDON)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    listener = AsyncMock()
    entry.add_update_listener(listener)

    result = await discover(hass, discovery("http://172.30.33.4:8765"))
    await hass.async_block_till_done()
    assert result["reason"] == "already_configured"
    assert listener.await_count == 1
    assert no_entry_setup.setup.await_count == 1


async def test_discovery_links_the_addon_to_existing_entries(
    hass: HomeAssistant, teacher_server: TeacherServer, no_entry_setup: SetupCalls
) -> None:
    addon_url = await teacher_server()
    alone = entry_for("http://10.0.0.2:11434", title="Kitchen GPU")
    manual = entry_for(
        "http://10.0.0.3:11434",
        teacher_mode=TEACHER_MODE_MANUAL,
        teacher_url="http://10.0.0.9:8765",
        teacher_token="t",
    )
    for entry in (alone, manual):
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    result = await discover(hass, discovery(addon_url))
    assert result["step_id"] == "hassio_link"
    assert result["description_placeholders"]["entries"] == "Kitchen GPU, 10.0.0.3:11434"
    flow = hass.config_entries.flow.async_get(result["flow_id"])
    assert flow["context"]["confirm_only"] is True

    result = await submit(hass, result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "addon_linked"
    await hass.async_block_till_done()
    for entry in (alone, manual):
        assert entry.data[CONF_TEACHER_MODE] == TEACHER_MODE_ADDON
        assert entry.data[CONF_TEACHER_URL] == addon_url
        assert entry.data[CONF_TEACHER_TOKEN] == TEACHER_TOKEN
    assert alone.data[CONF_STUDENT_URL] == "http://10.0.0.2:11434"
    # Both were reloaded to use it.
    assert no_entry_setup.setup.await_count == 4
    assert no_entry_setup.unload.await_count == 2


async def test_discovery_link_reports_an_unreachable_addon(
    hass: HomeAssistant, socket_enabled: None, unused_tcp_port: int
) -> None:
    entry = entry_for("http://10.0.0.2:11434")
    entry.add_to_hass(hass)
    result = await discover(hass, discovery(f"http://127.0.0.1:{unused_tcp_port}"))
    result = await submit(hass, result)
    assert result["step_id"] == "hassio_link"
    assert result["errors"] == {"base": "cannot_connect_teacher"}
    assert entry.data[CONF_TEACHER_MODE] == TEACHER_MODE_NONE


@pytest.mark.parametrize(
    "config",
    [
        {"host": "local-vision-tutor", "port": 8765},
        {"host": "local-vision-tutor", "port": "http", "token": "t"},
        {"port": 8765, "token": "t"},
    ],
)
async def test_discovery_with_incomplete_info(hass: HomeAssistant, config: dict[str, Any]) -> None:
    info = HassioServiceInfo(config=config, name="Vision Tutor", slug="vision_tutor", uuid="1")
    result = await discover(hass, info)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_ignored_discovery_stays_ignored(hass: HomeAssistant) -> None:
    MockConfigEntry(domain=DOMAIN, source=SOURCE_IGNORE, unique_id="vision_tutor").add_to_hass(hass)
    result = await discover(hass, discovery("http://172.30.33.4:8765"))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_discovery_then_a_host_already_configured(
    hass: HomeAssistant, simulator: RunningSimulator, teacher_server: TeacherServer
) -> None:
    """A host set up while the discovery waited for confirmation is not set up twice."""
    result = await discover(hass, discovery(await teacher_server()))
    entry_for(simulator.url).add_to_hass(hass)
    result = await submit(hass, result)
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# --- Reconfigure --------------------------------------------------------------------------------


async def test_reconfigure_model_and_teacher(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    teacher_server: TeacherServer,
    no_entry_setup: SetupCalls,
) -> None:
    entry = entry_for(simulator.url)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    teacher_url = await teacher_server()

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    assert schema_default(result, CONF_STUDENT_URL) == simulator.url

    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    assert result["step_id"] == "model"
    assert schema_default(result, CONF_STUDENT_MODEL) == "gemma4:e2b"
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:26b"})
    assert result["step_id"] == "student_hosts"
    result = await submit(hass, result, {})
    assert result["step_id"] == "teacher"
    assert schema_default(result, CONF_TEACHER_MODE) == TEACHER_MODE_NONE
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL})
    assert result["step_id"] == "teacher_manual"
    result = await submit(
        hass, result, {CONF_TEACHER_URL: teacher_url, CONF_TEACHER_TOKEN: TEACHER_TOKEN}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(entry.data) == {
        CONF_STUDENT_URL: simulator.url,
        CONF_STUDENT_MODEL: "gemma4:26b",
        CONF_TEACHER_MODE: TEACHER_MODE_MANUAL,
        CONF_TEACHER_URL: teacher_url,
        CONF_TEACHER_TOKEN: TEACHER_TOKEN,
    }
    assert dict(entry.options) == EXPECTED_OPTIONS
    await hass.async_block_till_done()
    assert no_entry_setup.setup.await_count == 2
    assert no_entry_setup.unload.await_count == 1


async def test_reconfigure_moves_the_entry_to_another_host(
    hass: HomeAssistant, simulator: RunningSimulator, socket_enabled: None
) -> None:
    old_url = "http://10.0.0.2:11434"
    generated = entry_for(old_url)
    named = entry_for("http://10.0.0.3:11434", title="Garage GPU")
    for entry in (generated, named):
        entry.add_to_hass(hass)

    async with simulator_with({"gemma4:e2b"}) as other_host:
        for entry, host in ((generated, simulator), (named, other_host)):
            result = await entry.start_reconfigure_flow(hass)
            result = await submit(hass, result, {CONF_STUDENT_URL: host.url})
            result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
            assert result["step_id"] == "student_hosts"
            result = await submit(hass, result, {})
            result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
            assert result["reason"] == "reconfigure_successful"
            assert entry.unique_id == host.url
            assert entry.data[CONF_STUDENT_URL] == host.url
        await hass.async_block_till_done()

    # A title made of the old host's address becomes a hub name; one the user chose is kept.
    assert generated.title == "Vision Tutor"
    assert named.title == "Garage GPU"


async def test_reconfigure_to_another_entrys_host(
    hass: HomeAssistant, simulator: RunningSimulator
) -> None:
    entry = entry_for("http://10.0.0.2:11434")
    entry.add_to_hass(hass)
    entry_for(simulator.url).add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_STUDENT_URL] == "http://10.0.0.2:11434"


async def test_reconfigure_shows_host_errors_on_its_own_form(
    hass: HomeAssistant, simulator: RunningSimulator, unused_tcp_port: int
) -> None:
    entry = entry_for(simulator.url)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    unreachable = f"http://127.0.0.1:{unused_tcp_port}"
    result = await submit(hass, result, {CONF_STUDENT_URL: unreachable})
    assert result["step_id"] == "reconfigure"
    assert result["errors"] == {"base": "cannot_connect"}
    assert schema_default(result, CONF_STUDENT_URL) == unreachable


async def test_reconfigure_keeps_the_addon_and_its_settings(
    hass: HomeAssistant, simulator: RunningSimulator, no_entry_setup: SetupCalls
) -> None:
    addon = {
        CONF_TEACHER_MODE: TEACHER_MODE_ADDON,
        CONF_TEACHER_URL: "http://local-vision-tutor:8765",
        CONF_TEACHER_TOKEN: "addon-token",
    }
    entry = entry_for(simulator.url, **addon)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:26b"})
    assert result["step_id"] == "student_hosts"
    result = await submit(hass, result, {})
    assert select_options(result, CONF_TEACHER_MODE) == [
        TEACHER_MODE_ADDON,
        TEACHER_MODE_NONE,
        TEACHER_MODE_MANUAL,
    ]
    assert schema_default(result, CONF_TEACHER_MODE) == TEACHER_MODE_ADDON
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_ADDON})
    assert result["reason"] == "reconfigure_successful"
    assert {key: entry.data[key] for key in addon} == addon
    assert entry.data[CONF_STUDENT_MODEL] == "gemma4:26b"


async def test_reconfigure_manual_teacher_prefilled_then_removed(
    hass: HomeAssistant, simulator: RunningSimulator, no_entry_setup: SetupCalls
) -> None:
    entry = entry_for(
        simulator.url,
        teacher_mode=TEACHER_MODE_MANUAL,
        teacher_url="http://10.0.0.9:8765",
        teacher_token="manual-token",
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    # An entry that reloads itself from an update listener is not reloaded a second time.
    listener = AsyncMock()
    entry.add_update_listener(listener)

    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    assert result["step_id"] == "student_hosts"
    result = await submit(hass, result, {})
    assert schema_default(result, CONF_TEACHER_MODE) == TEACHER_MODE_MANUAL
    manual = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL})
    assert schema_default(manual, CONF_TEACHER_URL) == "http://10.0.0.9:8765"
    assert schema_default(manual, CONF_TEACHER_TOKEN) == "manual-token"
    hass.config_entries.flow.async_abort(manual["flow_id"])

    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    assert result["step_id"] == "student_hosts"
    result = await submit(hass, result, {})
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_NONE})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_TEACHER_MODE] == TEACHER_MODE_NONE
    assert entry.data[CONF_TEACHER_URL] is None
    assert entry.data[CONF_TEACHER_TOKEN] is None
    assert listener.await_count == 1
    assert no_entry_setup.setup.await_count == 1


async def test_reconfigure_manual_teacher_not_prefilled_from_another_mode(
    hass: HomeAssistant, simulator: RunningSimulator
) -> None:
    entry = entry_for(
        simulator.url,
        teacher_mode=TEACHER_MODE_ADDON,
        teacher_url="http://local-vision-tutor:8765",
        teacher_token="addon-token",
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_STUDENT_URL: simulator.url})
    result = await submit(hass, result, {CONF_STUDENT_MODEL: "gemma4:e2b"})
    assert result["step_id"] == "student_hosts"
    result = await submit(hass, result, {})
    result = await submit(hass, result, {CONF_TEACHER_MODE: TEACHER_MODE_MANUAL})
    assert result["step_id"] == "teacher_manual"
    # The add-on's internal address and token are not offered as a manual teacher.
    for marker in result["data_schema"].schema:
        assert (marker.description or {}).get("suggested_value") is None
