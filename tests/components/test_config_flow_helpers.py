"""The config flow's checks on their own, and the fixtures every config flow test module uses.

The fixtures live here (a `test_config_flow_*` module, imported by the others) so the flow tests
share one set of loopback servers and one translation check:

- `flow_translations` (autouse where imported) fails a test whose flow shows a step, field,
  error or abort that `translations/en.json` does not translate, or a placeholder it does not
  fill;
- `no_entry_setup` stands in for the integration's setup, so these tests exercise the flow and
  not the coordinators (as Home Assistant core's flow tests do);
- `serve` starts a small aiohttp server on 127.0.0.1 (a web server that is not Ollama, one
  that never answers, a teacher service); `untrusted_tls_url` is an https server with a
  self-signed certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
from dataclasses import dataclass, replace
import datetime
import ipaddress
import json
from pathlib import Path
import re
import ssl
from typing import Any
from unittest.mock import AsyncMock, patch

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from homeassistant import config_entries, data_entry_flow
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, section
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import SelectSelector

import custom_components.vision_tutor as integration
from custom_components.vision_tutor import flow_helpers
from custom_components.vision_tutor.const import (
    CONF_AUDIT_RATE,
    CONF_CAMERA_ENTITY,
    CONF_MIN_CONFIDENCE,
    CONF_MOTION_ENTITY,
    CONF_SAFETY_KEYWORDS,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_TEACHER_MODE,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
    CONF_WINDOW_SIZE,
    CONF_WINDOW_TRIGGER,
    DEFAULT_SAFETY_KEYWORDS,
    TEACHER_MODE_ADDON,
    TEACHER_MODE_MANUAL,
    TEACHER_MODE_NONE,
)
from custom_components.vision_tutor.flow_helpers import (
    OPTION_DEFAULTS,
    OPTION_RANGES,
    FlowError,
    Teacher,
    camera_data,
    default_options,
    entity_name,
    hub_title,
    normalise_url,
    options_from_form,
    options_to_form,
    safety_keywords,
    teacher_from_discovery,
    url_title,
)
from custom_components.vision_tutor.overrides import CAMERA_OVERRIDES
from simulator.profiles import load_config
from simulator.server import RunningSimulator, run_simulator

TRANSLATIONS: dict[str, Any] = json.loads(
    (Path(integration.__file__).parent / "translations" / "en.json").read_text(encoding="utf-8")
)
TEACHER_TOKEN = "teacher-token-1234"


# --- Translation check --------------------------------------------------------------------------


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"(?<!\{)\{([a-z_]+)\}(?!\})", text))


def _check_fields(schema: Any, step: dict[str, Any], where: str) -> None:
    """Every field has a label and a description; sections have a name and translated fields."""
    for marker, value in schema.schema.items():
        key = str(marker.schema)
        if isinstance(value, section):
            translated = step.get("sections", {}).get(key)
            assert translated, f"{where}: section {key} is not translated"
            assert translated.get("name"), f"{where}: section {key} has no name"
            _check_fields(value.schema, translated, f"{where}.sections.{key}")
            continue
        assert step.get("data", {}).get(key), f"{where}: field {key} has no label"
        assert step.get("data_description", {}).get(key), f"{where}: field {key} undescribed"
        if isinstance(value, SelectSelector) and (key_ := value.config.get("translation_key")):
            options = TRANSLATIONS["selector"][key_]["options"]
            for option in value.config["options"]:
                assert option in options, f"{where}: select option {option} untranslated"


def check_translated(category: str, subentry_type: str | None, result: Any) -> None:
    """Fail when a flow result shows something en.json does not translate."""
    strings = TRANSLATIONS[category]
    if subentry_type is not None:
        strings = strings[subentry_type]
    placeholders = set((result.get("description_placeholders") or {}).keys())
    if result["type"] is FlowResultType.FORM:
        where = f"{category}.step.{result['step_id']}"
        step = strings["step"].get(result["step_id"])
        assert step is not None, f"{where} is not translated"
        assert step.get("title"), f"{where} has no title"
        for text in (step.get("description", ""),):
            missing = _placeholders(text) - placeholders
            assert not missing, f"{where}: placeholders {missing} not provided"
        if result["data_schema"] is not None:
            _check_fields(result["data_schema"], step, where)
        for field, error in (result["errors"] or {}).items():
            text = strings["error"].get(error)
            assert text, f"{category} error {error} (on {field}) is not translated"
            missing = _placeholders(text) - placeholders
            assert not missing, f"{category} error {error}: placeholders {missing} not provided"
    elif result["type"] is FlowResultType.SHOW_PROGRESS:
        text = strings.get("progress", {}).get(result["progress_action"])
        assert text, f"{category} progress {result['progress_action']} is not translated"
        missing = _placeholders(text) - placeholders
        assert not missing, f"{category} progress: placeholders {missing} not provided"
    elif result["type"] is FlowResultType.ABORT and result.get("translation_domain") is None:
        assert result["reason"] in strings["abort"], f"{category} abort {result['reason']}"


@pytest.fixture(name="flow_translations")
def flow_translations_fixture() -> Iterator[None]:
    """Check every flow result of the test against translations/en.json."""
    original = data_entry_flow.FlowManager._async_handle_step

    async def handle_step(
        self: data_entry_flow.FlowManager[Any, Any, Any], flow: Any, *args: Any, **kwargs: Any
    ) -> Any:
        result = await original(self, flow, *args, **kwargs)
        if isinstance(self, config_entries.ConfigSubentryFlowManager):
            check_translated("config_subentries", flow.handler[1], result)
        elif isinstance(self, config_entries.OptionsFlowManager):
            check_translated("options", None, result)
        else:
            check_translated("config", None, result)
        return result

    with patch.object(data_entry_flow.FlowManager, "_async_handle_step", handle_step):
        yield


# --- The integration's setup, replaced ----------------------------------------------------------


@dataclass(slots=True)
class SetupCalls:
    setup: AsyncMock
    unload: AsyncMock


@pytest.fixture(name="no_entry_setup")
def no_entry_setup_fixture() -> Iterator[SetupCalls]:
    """Entries load without starting coordinators; the mocks count (re)loads."""
    with (
        patch.object(integration, "async_setup_entry", return_value=True) as setup,
        patch.object(integration, "async_unload_entry", return_value=True) as unload,
    ):
        yield SetupCalls(setup, unload)


# --- Loopback servers ---------------------------------------------------------------------------

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
type Serve = Callable[..., Awaitable[str]]


@pytest.fixture(name="serve")
async def serve_fixture(socket_enabled: None) -> AsyncIterator[Serve]:
    """Start an aiohttp app on 127.0.0.1 answering every path with `handler`; returns its URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.1, access_log=None
        )
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def answer(status: int, body: str = "", content_type: str = "text/html") -> Handler:
    """A handler answering every request the same way."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    return handle


async def never_answer(request: web.Request) -> web.Response:
    """A handler that keeps the client waiting until it gives up (then it is cancelled)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def teacher_health(state: str = "ok", token: str = TEACHER_TOKEN) -> Handler:
    """A teacher service's `/api/v1/health`: 401 without the right bearer token."""

    async def handle(request: web.Request) -> web.Response:
        if request.path != "/api/v1/health":
            return web.Response(status=404, text="404: Not Found")
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"status": state, "queue_depth": 0})

    return handle


@pytest.fixture(name="teacher_server")
def teacher_server_fixture(serve: Serve) -> Callable[..., Awaitable[str]]:
    """Start a teacher service (see `teacher_health`); returns its URL."""

    async def start(state: str = "ok") -> str:
        return await serve(teacher_health(state))

    return start


def _self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 that no client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture(name="untrusted_tls_url")
async def untrusted_tls_url_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[str]:
    """An https address whose self-signed certificate the client rejects in the handshake.

    The handshake runs in the connection callback, so its failure is handled here rather than
    reported to the event loop as an error.
    """
    context = _self_signed_context(tmp_path)

    async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.start_tls(context)
        writer.close()

    server = await asyncio.start_server(handshake, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@contextlib.asynccontextmanager
async def simulator_with(models: set[str]) -> AsyncIterator[RunningSimulator]:
    """A simulator serving only these of the default profiles' models."""
    config = load_config(time_scale=0.01, seed=1234)
    kept = {name: profile for name, profile in config.models.items() if name in models}
    async with run_simulator(replace(config, models=kept)) as running:
        yield running


@pytest.fixture(name="short_probe_timeout")
def short_probe_timeout_fixture() -> Iterator[float]:
    """Host checks give up after a second: a silent host fails fast, a real one on a busy
    two-core machine still answers in time (0.2 s was seen to time out the real add-on)."""
    with patch.object(flow_helpers, "PROBE_TIMEOUT", 1.0):
        yield 1.0


# --- The checks on their own --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("  http://LocalHost:11434/  ", "http://localhost:11434"),
        ("https://ollama.example.com/", "https://ollama.example.com"),
        ("https://ollama.example.com:443", "https://ollama.example.com"),
        ("http://nas.local/ollama/", "http://nas.local/ollama"),
        ("http://[::1]:11434", "http://[::1]:11434"),
        ("192.168.1.20", "http://192.168.1.20:11434"),
        ("nas.local:8080", "http://nas.local:8080"),
        ("", None),
        ("   ", None),
        ("ftp://127.0.0.1:11434", None),
        ("http://", None),
        ("http:/localhost", None),
        ("http://exa mple.com", None),
        ("http://[::1", None),
        ("http://host:99999", None),
        ("http://host:0", None),
        ("http://user:secret@host:11434", None),
        ("http://host:11434/?model=x", None),
        ("http://host:11434/#top", None),
    ],
)
def test_normalise_url(raw: str, expected: str | None) -> None:
    assert normalise_url(raw, default_port=11434) == expected


def test_hub_title_is_a_name_not_an_address() -> None:
    assert hub_title([]) == "Vision Tutor"
    assert hub_title(["Kitchen GPU"]) == "Vision Tutor"
    assert hub_title(["Vision Tutor", "Vision Tutor 2"]) == "Vision Tutor 3"


def test_url_title_drops_the_scheme() -> None:
    assert url_title("http://192.168.1.20:11434") == "192.168.1.20:11434"
    assert url_title("https://ollama.example.com/gpu") == "ollama.example.com/gpu"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"host": "local-vision-tutor", "port": 8765, "token": "t"},
            Teacher(TEACHER_MODE_ADDON, "http://local-vision-tutor:8765", "t"),
        ),
        (
            {"host": "172.30.33.4", "port": "8765", "token": "t", "addon": "Vision Tutor"},
            Teacher(TEACHER_MODE_ADDON, "http://172.30.33.4:8765", "t"),
        ),
        ({"host": "local-vision-tutor", "port": 8765}, None),
        ({"host": "local-vision-tutor", "port": 8765, "token": ""}, None),
        ({"host": "", "port": 8765, "token": "t"}, None),
        ({"host": 17, "port": 8765, "token": "t"}, None),
        ({"host": "local-vision-tutor", "token": "t"}, None),
        ({"host": "local-vision-tutor", "port": "eighty", "token": "t"}, None),
        ({"host": "local-vision-tutor", "port": 70000, "token": "t"}, None),
        ({"host": "bad host/name", "port": 8765, "token": "t"}, None),
    ],
)
def test_teacher_from_discovery(config: dict[str, Any], expected: Teacher | None) -> None:
    assert teacher_from_discovery(config) == expected


def test_teacher_data_round_trip() -> None:
    teacher = Teacher(TEACHER_MODE_MANUAL, "http://10.0.0.5:8765", "secret")
    data = teacher.as_data()
    assert data == {
        CONF_TEACHER_MODE: TEACHER_MODE_MANUAL,
        CONF_TEACHER_URL: "http://10.0.0.5:8765",
        CONF_TEACHER_TOKEN: "secret",
    }
    assert Teacher.from_data(data) == teacher
    # Entries made before there were teachers have none.
    assert Teacher.from_data({}) == Teacher(TEACHER_MODE_NONE)


def test_safety_keywords_are_cleaned() -> None:
    assert safety_keywords([" Fire ", "gas  Leak", "fire", "", "o'clock-fall"]) == [
        "fire",
        "gas leak",
        "o'clock-fall",
    ]
    assert safety_keywords("Smoke") == ["smoke"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "no_safety_keywords"),
        (None, "no_safety_keywords"),
        (["  "], "no_safety_keywords"),
        (["fire", "#!"], "invalid_safety_keyword"),
        (["-fire"], "invalid_safety_keyword"),
        (["x" * 41], "invalid_safety_keyword"),
    ],
)
def test_safety_keywords_rejected(raw: Any, reason: str) -> None:
    with pytest.raises(FlowError) as err:
        safety_keywords(raw)
    assert err.value.reason == reason
    assert err.value.field == "base"


def test_options_form_round_trip_fills_missing_options() -> None:
    form = options_to_form({CONF_WINDOW_SIZE: 7})
    assert set(form) == {"routing", "calibration", "safety_sensor", "performance", "history"}
    assert form["safety_sensor"][CONF_WINDOW_SIZE] == 7
    assert form["routing"][CONF_SAFETY_KEYWORDS] == list(DEFAULT_SAFETY_KEYWORDS)
    assert options_from_form(form) == {**OPTION_DEFAULTS, CONF_WINDOW_SIZE: 7}
    # The defaults are copied: changing one entry's list does not change the next one's.
    default_options()[CONF_SAFETY_KEYWORDS].append("lava")
    assert default_options()[CONF_SAFETY_KEYWORDS] == list(DEFAULT_SAFETY_KEYWORDS)


def test_options_window_trigger_cannot_exceed_the_window() -> None:
    form = options_to_form({CONF_WINDOW_SIZE: 3, CONF_WINDOW_TRIGGER: 4})
    with pytest.raises(FlowError) as err:
        options_from_form(form)
    assert err.value.reason == "window_trigger_too_large"
    assert err.value.placeholders == {"trigger": "4", "size": "3"}


def test_camera_data_normalises_the_form(hass: HomeAssistant) -> None:
    hass.states.async_set("camera.porch", "idle")
    assert camera_data(
        hass,
        {
            CONF_CAMERA_ENTITY: "camera.porch",
            CONF_SCAN_INTERVAL: 12.0,
            CONF_MOTION_ENTITY: "",
            CONF_SCENE_DESCRIPTION: "  porch,\n light at night ",
        },
    ) == {
        CONF_CAMERA_ENTITY: "camera.porch",
        CONF_SCAN_INTERVAL: 12,
        CONF_MOTION_ENTITY: None,
        CONF_SCENE_DESCRIPTION: "porch, light at night",
        **dict.fromkeys(CAMERA_OVERRIDES),
    }


def test_camera_data_keeps_the_overrides_entered(hass: HomeAssistant) -> None:
    hass.states.async_set("camera.kitchen", "idle")
    data = camera_data(
        hass,
        {
            CONF_CAMERA_ENTITY: "camera.kitchen",
            CONF_SCAN_INTERVAL: 30,
            "overrides": {CONF_MIN_CONFIDENCE: 0.5, CONF_SAFETY_KEYWORDS: [" Smoke ", "gas leak"]},
        },
    )
    assert data[CONF_MIN_CONFIDENCE] == 0.5
    assert data[CONF_SAFETY_KEYWORDS] == ["smoke", "gas leak"]
    assert data[CONF_AUDIT_RATE] is None, "left empty: the hub's rate"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({CONF_MIN_CONFIDENCE: 1.2}, "min_confidence_out_of_range"),
        ({CONF_AUDIT_RATE: -3}, "audit_rate_out_of_range"),
        ({CONF_SAFETY_KEYWORDS: ["<b>"]}, "invalid_safety_keyword"),
    ],
)
def test_camera_overrides_rejected_on_their_section(
    hass: HomeAssistant, overrides: dict[str, Any], reason: str
) -> None:
    hass.states.async_set("camera.kitchen", "idle")
    with pytest.raises(FlowError) as err:
        camera_data(
            hass,
            {CONF_CAMERA_ENTITY: "camera.kitchen", CONF_SCAN_INTERVAL: 30, "overrides": overrides},
        )
    assert err.value.reason == reason
    assert err.value.field == "overrides"


def test_entity_name(hass: HomeAssistant, entity_registry: er.EntityRegistry) -> None:
    hass.states.async_set("camera.porch", "idle", {"friendly_name": "Porch"})
    hass.states.async_set("camera.back_yard", "idle")
    entity_registry.async_get_or_create(
        "camera", "onvif", "shed-1", suggested_object_id="shed", original_name="Shed"
    )
    assert entity_name(hass, "camera.porch") == "Porch"
    assert entity_name(hass, "camera.back_yard") == "back yard"
    assert entity_name(hass, "camera.shed") == "Shed"
    assert entity_name(hass, "camera.gone") == "camera.gone"


def test_translation_check_catches_gaps() -> None:
    """The check is not vacuous: an untranslated error or a missing placeholder fails it."""
    form: dict[str, Any] = {
        "type": FlowResultType.FORM,
        "step_id": "user",
        "data_schema": None,
        "description_placeholders": {},
    }
    with pytest.raises(AssertionError, match="not translated"):
        check_translated("config", None, {**form, "errors": {"base": "made_up"}})
    with pytest.raises(AssertionError, match="placeholders"):
        check_translated("config", None, {**form, "errors": {"base": "models_skipped"}})
    with pytest.raises(AssertionError, match="abort"):
        check_translated("config", None, {"type": FlowResultType.ABORT, "reason": "made_up"})


def test_every_flow_string_is_used() -> None:
    """No stale translations: each step, error and abort key appears in the flow's code."""
    package = Path(integration.__file__).parent
    source = "".join(
        (package / name).read_text(encoding="utf-8")
        for name in ("config_flow.py", "flow_helpers.py")
    )
    sections = [
        TRANSLATIONS["config"],
        TRANSLATIONS["config_subentries"]["camera"],
        TRANSLATIONS["options"],
    ]
    for strings in sections:
        for kind in ("step", "error", "abort"):
            for key in strings.get(kind, {}):
                if key in ("user", "reconfigure", "init", "already_configured"):
                    continue
                if kind == "error" and key.removesuffix("_out_of_range") in OPTION_RANGES:
                    continue  # made by number_in_range from the option's key
                assert f'"{key}"' in source, f"{kind} {key} is translated but never used"
