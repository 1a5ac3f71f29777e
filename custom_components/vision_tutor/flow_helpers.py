"""What the config flow checks: URLs, the student and teacher hosts, cameras and options.

No flow state lives here. Each check returns the cleaned value or raises `FlowError`, whose
`reason` is the translation key of the form error and `field` the form field it belongs to, so
the user, reconfigure, discovery, subentry and options steps share one definition of "valid".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
import contextlib
from dataclasses import dataclass
import math
import re
import ssl
from typing import Any, Final

import aiohttp
import httpx
import ollama
from yarl import URL

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from .const import (
    CONF_AUDIT_RATE,
    CONF_CAMERA_ENTITY,
    CONF_CHANGE_SENSITIVITY,
    CONF_CLEAN_TO_CLEAR,
    CONF_DAY_END,
    CONF_DAY_START,
    CONF_DISMISSAL_CLEARS,
    CONF_EXTRA_STUDENT_URLS,
    CONF_FRAME_WIDTH,
    CONF_HISTORY_DAYS,
    CONF_HISTORY_MAX_MB,
    CONF_MAX_CONCURRENT,
    CONF_MAX_MISS_RATE,
    CONF_MIN_CONFIDENCE,
    CONF_MOTION_ENTITY,
    CONF_OUTBOX_MAX_AGE,
    CONF_QUEUE_LIMIT,
    CONF_RELOOK_MINUTES,
    CONF_REVIEWS_PER_HOUR,
    CONF_SAFETY_KEYWORDS,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_STUDENT_TIMEOUT,
    CONF_TARGET,
    CONF_TEACHER_BUDGET,
    CONF_TEACHER_MODE,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
    CONF_TIME_BUCKETS,
    CONF_WINDOW_SIZE,
    CONF_WINDOW_TRIGGER,
    CONNECT_TIMEOUT,
    DEFAULT_AUDIT_RATE,
    DEFAULT_CHANGE_SENSITIVITY,
    DEFAULT_CLEAN_TO_CLEAR,
    DEFAULT_DAY_END,
    DEFAULT_DAY_START,
    DEFAULT_DISMISSAL_CLEARS,
    DEFAULT_FRAME_WIDTH,
    DEFAULT_HISTORY_DAYS,
    DEFAULT_HISTORY_MAX_MB,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_MISS_RATE,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_OUTBOX_MAX_AGE,
    DEFAULT_QUEUE_LIMIT,
    DEFAULT_RELOOK_MINUTES,
    DEFAULT_REVIEWS_PER_HOUR,
    DEFAULT_SAFETY_KEYWORDS,
    DEFAULT_STUDENT_TIMEOUT,
    DEFAULT_TARGET,
    DEFAULT_TEACHER_BUDGET,
    DEFAULT_TIME_BUCKETS,
    DEFAULT_WINDOW_SIZE,
    DEFAULT_WINDOW_TRIGGER,
    MAX_RELOOK_MINUTES,
    MIN_RELOOK_MINUTES,
    TEACHER_MODE_ADDON,
    TEACHER_MODE_MANUAL,
    TEACHER_MODE_NONE,
)
from .ollama_client import (
    ModelInfo,
    Version,
    async_model_info,
    async_server_version,
    create_client,
)
from .overrides import CAMERA_OVERRIDES, camera_overrides

OLLAMA_DEFAULT_PORT: Final = 11434
"""Port assumed when a student address is typed without scheme and port, as Ollama does."""
TEACHER_DEFAULT_PORT: Final = 8765
"""The add-on's API port, assumed the same way for a teacher address."""

PROBE_TIMEOUT: float = CONNECT_TIMEOUT
"""Seconds a whole host check may take (the student's model listing, or the teacher's health)."""

TEACHER_HEALTH_PATH: Final = "/api/v1/health"
TEACHER_USABLE_STATES: Final = frozenset({"ok", "degraded"})
"""Health states of a teacher service worth configuring ("degraded": its own model is down)."""

MIN_SCAN_INTERVAL: Final = 5
"""Seconds; shorter intervals queue frames faster than a small model answers them."""
MAX_SCAN_INTERVAL: Final = 86_400
MAX_SCENE_DESCRIPTION: Final = 300
"""Characters of scene description added to the student's prompt."""

MAX_KEYWORD_LENGTH: Final = 40
_KEYWORD: Final = re.compile(r"[^\W_](?:[\w' -]*[^\W_])?")
"""A word or a short phrase: letters and digits, inner spaces, hyphens and apostrophes."""


class FlowError(Exception):
    """A check failed: `reason` is the form error's translation key, `field` where it shows."""

    def __init__(
        self, reason: str, field: str = "base", placeholders: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.placeholders: dict[str, str] = dict(placeholders or {})


# --- Addresses ----------------------------------------------------------------------------------


def normalise_url(raw: str, *, default_port: int) -> str | None:
    """The address as a canonical http(s) URL without trailing slash; None when it is not one.

    "192.168.1.20" and "nas.local:11434" are accepted the way Ollama reads OLLAMA_HOST: without a
    scheme it is http, and without scheme and port, `default_port`. The result is the config
    entry's unique id, so it is lower-cased and drops the scheme's default port.
    """
    text = raw.strip()
    has_scheme = "://" in text
    if not text or any(char.isspace() for char in text) or (not has_scheme and ":/" in text):
        return None
    try:
        url = URL(text if has_scheme else f"http://{text}")
    except ValueError:
        return None
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or url.explicit_port == 0
        or url.user is not None
        or url.query_string
        or url.fragment
    ):
        return None
    if not has_scheme and url.explicit_port is None:
        url = url.with_port(default_port)
    return str(url.with_path(url.path.rstrip("/")))


def require_url(raw: str, *, field: str, default_port: int) -> str:
    """`normalise_url`, or an `invalid_url` error on the field."""
    if (url := normalise_url(raw, default_port=default_port)) is None:
        raise FlowError("invalid_url", field)
    return url


def url_title(url: str) -> str:
    """A host's address without the scheme (the title entries were given before hub names)."""
    parsed = URL(url)
    return str(parsed).removeprefix(f"{parsed.scheme}://")


HUB_NAME: Final = "Vision Tutor"


def hub_title(taken: Iterable[str]) -> str:
    """A new hub's name, which its device and entity ids take ("binary_sensor.vision_tutor_
    student_connectivity", not one made of host and port): "Vision Tutor", or "Vision Tutor 2"
    and on when another entry has that name."""
    names = set(taken)
    number = 1
    while (title := HUB_NAME if number == 1 else f"{HUB_NAME} {number}") in names:
        number += 1
    return title


def _causes(err: BaseException) -> Iterator[BaseException]:
    """The error and what it was raised from or while handling (clients wrap the SSL error)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connection_reason(err: BaseException, unreachable: str) -> str:
    """Why a connection failed: a certificate, a TLS handshake with a plain-http server, or not."""
    for cause in _causes(err):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "invalid_certificate"
        if isinstance(cause, ssl.SSLError):
            # Only https connections do a handshake; a plain-http server answers it with garbage.
            return "https_to_http"
    return unreachable


# --- The student host ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelListing:
    """The student host's pulled models, as the model step offers them."""

    vision: list[str]
    """Models that read images, sorted by name."""
    blind: frozenset[str]
    """Pulled models that cannot see images (chat would drop the frame)."""
    skipped: int
    """Models whose details the server would not give (a 403 on a cloud model): not listed."""
    version: Version | None
    """The Ollama release, when the server says."""


async def async_list_models(url: str) -> ModelListing:
    """The models the Ollama server at `url` has pulled, and which of them can see.

    Lists the models (`/api/tags`), reads the release (`/api/version`) and each model's
    capabilities (`/api/show`), all within `PROBE_TIMEOUT`. A model whose `show` fails is
    skipped and counted. Raises `FlowError` naming what is wrong with the host.
    """
    async with _student_errors(), asyncio.timeout(PROBE_TIMEOUT), create_client(url) as client:
        listing = await client.list()
        version = await async_server_version(client)
        vision: list[str] = []
        blind: set[str] = set()
        skipped = 0
        for name in sorted({model.model for model in listing.models if model.model}):
            try:
                info = await async_model_info(client, name)
            except ollama.ResponseError:
                skipped += 1
                continue
            (vision.append(name) if info.vision else blind.add(name))
    return ModelListing(vision, frozenset(blind), skipped, version)


async def async_check_model(url: str, model: str) -> ModelInfo:
    """The model's capabilities; `FlowError` `model_not_vision` when it cannot see images."""
    async with _student_errors(), asyncio.timeout(PROBE_TIMEOUT), create_client(url) as client:
        info = await async_model_info(client, model)
    if not info.vision:
        raise FlowError("model_not_vision", placeholders={"model": model})
    return info


async def async_pull_model(url: str, model: str, progress: Callable[[float], None]) -> None:
    """Have the server download `model`, reporting 0..1 as Ollama streams its progress.

    A model comes in layers, each with its own total: the fraction is over the bytes of the
    layers announced so far. No overall timeout: a large model takes many minutes. Raises
    `FlowError` `pull_failed` with Ollama's reason.
    """
    totals: dict[str, tuple[int, int]] = {}
    try:
        async with create_client(url) as client:
            async for part in await client.pull(model, stream=True):
                if part.digest and part.total:
                    totals[part.digest] = (part.completed or 0, part.total)
                    done = sum(completed for completed, _ in totals.values())
                    progress(min(1.0, done / sum(total for _, total in totals.values())))
    except ollama.ResponseError as err:
        raise FlowError("pull_failed", placeholders={"model": model, "error": err.error}) from err
    except (ConnectionError, httpx.HTTPError) as err:
        raise FlowError(
            "pull_failed", placeholders={"model": model, "error": str(err) or type(err).__name__}
        ) from err


async def async_check_student_hosts(
    raw: object, *, first: str, model: str, taken: Mapping[str, str]
) -> list[str]:
    """The other hosts of a student pool, cleaned and checked: each an address Ollama answers
    at, with `model` able to see images. `taken` maps the hosts of other entries to their
    titles. Raises `FlowError` on the `extra_student_urls` field, naming the host."""
    field = CONF_EXTRA_STUDENT_URLS
    values = raw if isinstance(raw, list | tuple) else [] if raw in (None, "") else [raw]
    urls: list[str] = []
    for value in values:
        text = str(value).strip()
        if not text:
            continue
        url = normalise_url(text, default_port=OLLAMA_DEFAULT_PORT)
        if url is None:
            raise FlowError("student_host_invalid", field, {"url": text})
        if url == first or url in urls:
            raise FlowError("student_host_duplicate", field, {"url": url})
        if url in taken:
            raise FlowError("student_host_in_use", field, {"url": url, "entry": taken[url]})
        urls.append(url)
    for url in urls:
        try:
            listing = await async_list_models(url)
        except FlowError as err:
            raise FlowError("student_host_unusable", field, {"url": url}) from err
        if not any(_same_model(model, listed) for listed in listing.vision):
            raise FlowError("student_host_no_model", field, {"url": url, "model": model})
    return urls


def _same_model(wanted: str, listed: str) -> bool:
    """Ollama lists "name:latest" for a model pulled as "name"."""
    return listed.removesuffix(":latest") == wanted.removesuffix(":latest")


@contextlib.asynccontextmanager
async def _student_errors() -> AsyncIterator[None]:
    """Turn what can go wrong talking to a student host into the form's `FlowError`."""
    try:
        yield
    except TimeoutError as err:
        raise FlowError("timeout") from err
    except ollama.ResponseError as err:
        raise FlowError(_student_status_reason(err.status_code)) from err
    except (ConnectionError, httpx.HTTPError) as err:
        raise FlowError(_connection_reason(err, "cannot_connect")) from err
    except ValueError as err:
        # A body that is not JSON, or not shaped like Ollama's: another kind of server answered.
        raise FlowError("not_ollama") from err


def _student_status_reason(status: int) -> str:
    """The form error for an HTTP error status from the student host."""
    if status in (401, 403):
        return "student_auth"
    if status >= 500:
        # A proxy in front of a stopped Ollama, or Ollama failing: the host is not usable now.
        return "cannot_connect"
    return "not_ollama"


# --- The teacher service ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Teacher:
    """Where escalations go: the add-on, a manually entered service, or nowhere."""

    mode: str
    url: str | None = None
    token: str | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Teacher:
        """The teacher a config entry's data describes (none for entries made before teachers)."""
        return cls(
            data.get(CONF_TEACHER_MODE, TEACHER_MODE_NONE),
            data.get(CONF_TEACHER_URL),
            data.get(CONF_TEACHER_TOKEN),
        )

    def as_data(self) -> dict[str, Any]:
        """The config entry data keys for this teacher."""
        return {
            CONF_TEACHER_MODE: self.mode,
            CONF_TEACHER_URL: self.url,
            CONF_TEACHER_TOKEN: self.token,
        }


NO_TEACHER: Final = Teacher(TEACHER_MODE_NONE)


def teacher_from_discovery(config: Mapping[str, Any]) -> Teacher | None:
    """The add-on teacher the Supervisor announced (`host`, `port`, `token`); None if malformed."""
    host, port, token = config.get("host"), config.get("port"), config.get("token")
    if not isinstance(host, str) or not host or not isinstance(token, str) or not token:
        return None
    try:
        port_number = int(port)  # type: ignore[arg-type]  # validated just below
        if not 0 < port_number < 65536:
            return None
        url = URL.build(scheme="http", host=host, port=port_number)
    except TypeError, ValueError:
        return None
    return Teacher(TEACHER_MODE_ADDON, str(url), token)


def manual_teacher(url: str, token: str) -> Teacher:
    """A manually entered teacher service, its URL checked (`invalid_url` on teacher_url)."""
    return Teacher(
        TEACHER_MODE_MANUAL,
        require_url(url, field=CONF_TEACHER_URL, default_port=TEACHER_DEFAULT_PORT),
        token.strip(),
    )


async def async_check_teacher(session: aiohttp.ClientSession, teacher: Teacher) -> str:
    """Check the teacher service answers its health endpoint with this token; its health state.

    200 with a JSON `status` of ok or degraded is a teacher; 401/403 is a wrong token; no answer in
    `PROBE_TIMEOUT` or no connection is `cannot_connect_teacher`; anything else `not_a_teacher`.
    """
    assert teacher.url is not None
    try:
        async with (
            asyncio.timeout(PROBE_TIMEOUT),
            session.get(
                f"{teacher.url}{TEACHER_HEALTH_PATH}",
                headers={"Authorization": f"Bearer {teacher.token}"},
                allow_redirects=False,
            ) as response,
        ):
            if response.status in (401, 403):
                raise FlowError("invalid_auth")
            body = await response.json(content_type=None) if response.status == 200 else None
    except TimeoutError as err:
        raise FlowError("cannot_connect_teacher") from err
    except aiohttp.ClientError as err:
        raise FlowError(_connection_reason(err, "cannot_connect_teacher")) from err
    except ValueError as err:
        raise FlowError("not_a_teacher") from err
    state = body.get("status") if isinstance(body, dict) else None
    if state not in TEACHER_USABLE_STATES:
        raise FlowError("not_a_teacher")
    return str(state)


# --- Cameras ------------------------------------------------------------------------------------


def entity_exists(hass: HomeAssistant, entity_id: str) -> bool:
    """Whether Home Assistant knows the entity: it has a state or is registered (maybe offline)."""
    return (
        hass.states.get(entity_id) is not None
        or er.async_get(hass).async_get(entity_id) is not None
    )


def entity_name(hass: HomeAssistant, entity_id: str) -> str:
    """The name a user knows the entity by: its friendly name, else its entity id."""
    if (state := hass.states.get(entity_id)) is not None:
        return state.name
    entry = er.async_get(hass).async_get(entity_id)
    return (entry.name or entry.original_name if entry else None) or entity_id


def camera_data(hass: HomeAssistant, user_input: Mapping[str, Any]) -> dict[str, Any]:
    """A camera subentry's data from the form, every key present; raises `FlowError`.

    The overrides of hub options (the form's `overrides` section) are stored flat, None for
    one left empty (the hub's value applies; see `overrides.camera_options`).
    """
    camera = user_input[CONF_CAMERA_ENTITY]
    motion = user_input.get(CONF_MOTION_ENTITY) or None
    description = " ".join(str(user_input.get(CONF_SCENE_DESCRIPTION) or "").split())
    limits = {"min": str(MIN_SCAN_INTERVAL), "max": str(MAX_SCENE_DESCRIPTION)}
    if not entity_exists(hass, camera):
        raise FlowError("camera_not_found", CONF_CAMERA_ENTITY)
    if motion is not None and not entity_exists(hass, motion):
        raise FlowError("motion_not_found", CONF_MOTION_ENTITY)
    raw_interval = user_input.get(CONF_SCAN_INTERVAL, 0)
    if not 0 <= float(raw_interval) <= MAX_SCAN_INTERVAL:
        raise FlowError(
            "scan_interval_out_of_range",
            CONF_SCAN_INTERVAL,
            {"min": "0", "max": str(MAX_SCAN_INTERVAL), "value": f"{float(raw_interval):g}"},
        )
    interval = int(raw_interval)
    if 0 < interval < MIN_SCAN_INTERVAL:
        raise FlowError("scan_interval_too_short", CONF_SCAN_INTERVAL, limits)
    if interval == 0 and motion is None:
        raise FlowError("no_trigger")
    if len(description) > MAX_SCENE_DESCRIPTION:
        raise FlowError("scene_description_too_long", CONF_SCENE_DESCRIPTION, limits)
    return {
        CONF_CAMERA_ENTITY: camera,
        CONF_SCAN_INTERVAL: interval,
        CONF_MOTION_ENTITY: motion,
        CONF_SCENE_DESCRIPTION: description,
        **camera_overrides_from_form(user_input.get(OVERRIDES_SECTION) or {}),
    }


OVERRIDES_SECTION: Final = "overrides"
"""The camera form's section of per-camera overrides of the hub's options."""


def _keywords_override(raw: Any) -> list[str] | None:
    """A camera's own safety keywords; none entered is the hub's list."""
    words = [raw] if isinstance(raw, str) else list(raw or ())
    if not any(str(word).strip() for word in words):
        return None
    return safety_keywords(words)


def _number_override(key: str) -> Callable[[Any], float | int | None]:
    def clean(raw: Any) -> float | int | None:
        if raw is None or raw == "":
            return None
        value = number_in_range(key, raw, OVERRIDES_SECTION)
        return int(value) if key in _INT_OPTIONS else value

    return clean


def _target_override(raw: Any) -> str | None:
    """A camera's own calibration target; none chosen is the hub's (the selector checks it)."""
    return str(raw) if raw else None


OVERRIDE_CLEANERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    CONF_MIN_CONFIDENCE: _number_override(CONF_MIN_CONFIDENCE),
    CONF_SAFETY_KEYWORDS: _keywords_override,
    CONF_AUDIT_RATE: _number_override(CONF_AUDIT_RATE),
    CONF_TARGET: _target_override,
    CONF_TEACHER_BUDGET: _number_override(CONF_TEACHER_BUDGET),
    CONF_REVIEWS_PER_HOUR: _number_override(CONF_REVIEWS_PER_HOUR),
    CONF_MAX_MISS_RATE: _number_override(CONF_MAX_MISS_RATE),
}
"""Each overridable option's check on the camera form: its value, or None for "as the hub";
raises `FlowError` on the overrides section. One per key of `overrides.CAMERA_OVERRIDES`."""


def camera_overrides_from_form(section: Mapping[str, Any]) -> dict[str, Any]:
    """The camera's overrides from its form section, every overridable option present."""
    overrides: dict[str, Any] = {}
    for key in CAMERA_OVERRIDES:
        try:
            overrides[key] = OVERRIDE_CLEANERS[key](section.get(key))
        except FlowError as err:
            err.field = OVERRIDES_SECTION
            raise
    return overrides


def camera_form_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """A camera subentry's data as its form shows it: the overrides in their section."""
    values = {
        key: value
        for key, value in data.items()
        if value is not None and key not in CAMERA_OVERRIDES
    }
    if overrides := camera_overrides(data):
        values[OVERRIDES_SECTION] = overrides
    return values


# --- Options ------------------------------------------------------------------------------------

OPTION_DEFAULTS: Final[Mapping[str, Any]] = {
    CONF_MIN_CONFIDENCE: DEFAULT_MIN_CONFIDENCE,
    CONF_SAFETY_KEYWORDS: list(DEFAULT_SAFETY_KEYWORDS),
    CONF_AUDIT_RATE: DEFAULT_AUDIT_RATE,
    CONF_QUEUE_LIMIT: DEFAULT_QUEUE_LIMIT,
    CONF_OUTBOX_MAX_AGE: DEFAULT_OUTBOX_MAX_AGE,
    CONF_WINDOW_SIZE: DEFAULT_WINDOW_SIZE,
    CONF_WINDOW_TRIGGER: DEFAULT_WINDOW_TRIGGER,
    CONF_CLEAN_TO_CLEAR: DEFAULT_CLEAN_TO_CLEAR,
    CONF_DISMISSAL_CLEARS: DEFAULT_DISMISSAL_CLEARS,
    CONF_CHANGE_SENSITIVITY: DEFAULT_CHANGE_SENSITIVITY,
    CONF_STUDENT_TIMEOUT: DEFAULT_STUDENT_TIMEOUT,
    CONF_MAX_CONCURRENT: DEFAULT_MAX_CONCURRENT,
    CONF_FRAME_WIDTH: DEFAULT_FRAME_WIDTH,
    CONF_RELOOK_MINUTES: DEFAULT_RELOOK_MINUTES,
    CONF_HISTORY_DAYS: DEFAULT_HISTORY_DAYS,
    CONF_HISTORY_MAX_MB: DEFAULT_HISTORY_MAX_MB,
    CONF_TARGET: DEFAULT_TARGET,
    CONF_TEACHER_BUDGET: DEFAULT_TEACHER_BUDGET,
    CONF_REVIEWS_PER_HOUR: DEFAULT_REVIEWS_PER_HOUR,
    CONF_MAX_MISS_RATE: DEFAULT_MAX_MISS_RATE,
    CONF_TIME_BUCKETS: DEFAULT_TIME_BUCKETS,
    CONF_DAY_START: DEFAULT_DAY_START,
    CONF_DAY_END: DEFAULT_DAY_END,
}
"""Every option and its default; a new entry starts with these."""

OPTION_SECTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "routing": (
        CONF_MIN_CONFIDENCE,
        CONF_SAFETY_KEYWORDS,
        CONF_AUDIT_RATE,
        CONF_QUEUE_LIMIT,
        CONF_OUTBOX_MAX_AGE,
    ),
    "calibration": (
        CONF_TARGET,
        CONF_TEACHER_BUDGET,
        CONF_REVIEWS_PER_HOUR,
        CONF_MAX_MISS_RATE,
        CONF_TIME_BUCKETS,
        CONF_DAY_START,
        CONF_DAY_END,
    ),
    "safety_sensor": (
        CONF_WINDOW_SIZE,
        CONF_WINDOW_TRIGGER,
        CONF_CLEAN_TO_CLEAR,
        CONF_DISMISSAL_CLEARS,
    ),
    "performance": (
        CONF_CHANGE_SENSITIVITY,
        CONF_STUDENT_TIMEOUT,
        CONF_MAX_CONCURRENT,
        CONF_FRAME_WIDTH,
        CONF_RELOOK_MINUTES,
    ),
    "history": (CONF_HISTORY_DAYS, CONF_HISTORY_MAX_MB),
}
"""How the options form groups the options; they are stored flat."""

OPTION_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    CONF_MIN_CONFIDENCE: (0, 1),
    CONF_AUDIT_RATE: (0, 100_000),
    CONF_QUEUE_LIMIT: (1, 1000),
    CONF_OUTBOX_MAX_AGE: (1, 10_080),
    CONF_WINDOW_SIZE: (1, 50),
    CONF_WINDOW_TRIGGER: (1, 50),
    CONF_CLEAN_TO_CLEAR: (1, 50),
    CONF_CHANGE_SENSITIVITY: (0, 1),
    CONF_STUDENT_TIMEOUT: (0.5, 120),
    CONF_MAX_CONCURRENT: (1, 16),
    CONF_FRAME_WIDTH: (256, 1920),
    CONF_RELOOK_MINUTES: (MIN_RELOOK_MINUTES, MAX_RELOOK_MINUTES),
    CONF_HISTORY_DAYS: (0, 3650),
    CONF_HISTORY_MAX_MB: (10, 100_000),
    CONF_TEACHER_BUDGET: (1, 100),
    CONF_REVIEWS_PER_HOUR: (1, 10_000),
    CONF_MAX_MISS_RATE: (0, 1000),
    CONF_DAY_START: (0, 23),
    CONF_DAY_END: (0, 23),
}
"""The allowed range of each numeric option. The forms show them on their fields, and the
checks here refuse what is outside with `<option>_out_of_range`, a translated error that gives
the range (the selectors' own check would answer in untranslated validator text)."""

_INT_OPTIONS: Final = frozenset(
    {
        CONF_AUDIT_RATE,
        CONF_QUEUE_LIMIT,
        CONF_OUTBOX_MAX_AGE,
        CONF_WINDOW_SIZE,
        CONF_WINDOW_TRIGGER,
        CONF_CLEAN_TO_CLEAR,
        CONF_MAX_CONCURRENT,
        CONF_FRAME_WIDTH,
        CONF_RELOOK_MINUTES,
        CONF_HISTORY_DAYS,
        CONF_HISTORY_MAX_MB,
        CONF_DAY_START,
        CONF_DAY_END,
    }
)


def default_options() -> dict[str, Any]:
    """A fresh copy of the default options."""
    return {
        key: list(value) if isinstance(value, list) else value
        for key, value in OPTION_DEFAULTS.items()
    }


def options_to_form(options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Stored options (defaults for any missing) grouped by the form's sections."""
    merged = {**default_options(), **options}
    return {name: {key: merged[key] for key in keys} for name, keys in OPTION_SECTIONS.items()}


def number_in_range(key: str, raw: Any, field: str) -> float:
    """An option's number checked against `OPTION_RANGES`; `<key>_out_of_range` on `field`."""
    low, high = OPTION_RANGES[key]
    try:
        value = float(raw)
    except TypeError, ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses NaN
        raise FlowError(
            f"{key}_out_of_range",
            field,
            {
                "min": f"{low:g}",
                "max": f"{high:g}",
                "value": f"{value:g}" if math.isfinite(value) else str(raw),
            },
        )
    return value


def _option_value(key: str, raw: Any, field: str) -> Any:
    """One option as stored: numbers range-checked and of their type, the rest as entered."""
    if key in OPTION_RANGES:
        value = number_in_range(key, raw, field)
        return int(value) if key in _INT_OPTIONS else value
    return raw


def options_from_form(form: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The options to store from the submitted form; raises `FlowError` for bad values.

    Errors are put on the section that holds the option (the form shows them there).
    """
    flat = {**default_options(), **{k: v for section in form.values() for k, v in section.items()}}
    section_of = {key: name for name, keys in OPTION_SECTIONS.items() for key in keys}
    options = {
        key: _option_value(key, value, section_of.get(key, "base")) for key, value in flat.items()
    }
    try:
        options[CONF_SAFETY_KEYWORDS] = safety_keywords(flat[CONF_SAFETY_KEYWORDS])
    except FlowError as err:
        err.field = section_of[CONF_SAFETY_KEYWORDS]
        raise
    options[CONF_DISMISSAL_CLEARS] = bool(flat[CONF_DISMISSAL_CLEARS])
    if options[CONF_TIME_BUCKETS] == "hours" and options[CONF_DAY_START] == options[CONF_DAY_END]:
        raise FlowError(
            "day_hours_equal",
            section_of[CONF_TIME_BUCKETS],
            placeholders={"hour": str(options[CONF_DAY_START])},
        )
    if options[CONF_WINDOW_TRIGGER] > options[CONF_WINDOW_SIZE]:
        raise FlowError(
            "window_trigger_too_large",
            section_of[CONF_WINDOW_TRIGGER],
            placeholders={
                "trigger": str(options[CONF_WINDOW_TRIGGER]),
                "size": str(options[CONF_WINDOW_SIZE]),
            },
        )
    return options


def safety_keywords(raw: Any) -> list[str]:
    """The keyword list lower-cased, trimmed and without repeats; raises `FlowError`."""
    words = [raw] if isinstance(raw, str) else list(raw or ())
    keywords: list[str] = []
    for word in words:
        keyword = " ".join(str(word).lower().split())
        if not keyword:
            continue
        if len(keyword) > MAX_KEYWORD_LENGTH or not _KEYWORD.fullmatch(keyword):
            raise FlowError(
                "invalid_safety_keyword",
                placeholders={"keyword": keyword[:MAX_KEYWORD_LENGTH]},
            )
        if keyword not in keywords:
            keywords.append(keyword)
    if not keywords:
        raise FlowError("no_safety_keywords")
    return keywords
