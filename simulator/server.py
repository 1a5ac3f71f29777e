"""The simulator's HTTP layer: an Ollama-compatible server over the scripted models.

Everything a client can observe follows Ollama's own server (``server/routes.go`` and
``api/types.go`` at the version in ``SimulatorConfig.version``, 0.24.0 by default): routes,
field names, NDJSON streaming, durations in nanoseconds, error bodies ``{"error": "..."}``, their
status codes and their exact texts. The integration talks to this server through the official
``ollama`` client and must later work unchanged against a real Ollama, so where the two could
differ the simulator copies Ollama. The deliberate differences:

* Images sent to a model without the "vision" capability are handled as Ollama 0.24 does by
  default (a runner error for architectures its engine runs with images, dropped silently for
  the others); ``non_vision_images="drop"`` always drops them and ``"reject"`` makes them a 400
  (``"X" does not support vision``) for tests that want a misconfiguration to be loud.
* A ``format`` that is neither "json" nor a schema object fails (500, Ollama's text) before any
  output; Ollama fails the same way, but a thinking model streams its thinking first.
* Durations (total, load, prompt_eval, eval) are the real, time-scaled ones: at time scale
  0.01 they are a hundredth of what the profiles describe.
* Logprobs cover the answer's tokens, not the thinking; ``num_predict`` limits the answer only.
* Every model fits in memory at once (``size_vram`` = ``size``), and ``num_parallel`` slots
  are shared by all models, where Ollama counts them per loaded model.
* Go's JSON binding errors are reproduced for the common cases (wrong field types, bad
  base64, bad durations), not character for character for every malformed body.

Besides the Ollama API there is a small admin API under ``/sim/`` (a prefix Ollama never uses):
fault injection at runtime for reliability tests, and statistics for tests and the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
import contextlib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
import hashlib
import json
import logging
import math
import os
from pathlib import Path
import random
import re
import signal
import time
from typing import Any, Final, Literal

from aiohttp import web

from simulator.behaviour import Behaviour, ChatMessage, Completion, CompletionRequest, Token
from simulator.profiles import Faults, ModelProfile, NonVisionImages, SimulatorConfig, load_config
from simulator.scenes import SceneLibrary

_LOGGER = logging.getLogger(__name__)

type Endpoint = Literal["chat", "generate"]
type Json = dict[str, Any]

# --- Ollama's error texts -------------------------------------------------------------------
# Verified against ollama/ollama v0.24.0 (and by tests/ollama against a real server): server/routes.go (handlers and handleScheduleError),
# server/sched.go (ErrMaxQueue), llm/server.go (runner failures, format validation),
# runner/ollamarunner/runner.go (embeddings) and api/types.go (JSON binding of durations, think).

MISSING_BODY: Final = "missing request body"
MODEL_REQUIRED: Final = "model is required"
TOP_LOGPROBS_RANGE: Final = "top_logprobs must be between 0 and 20"
INVALID_INPUT_TYPE: Final = "invalid input type"
SERVER_BUSY: Final = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_STOPPED: Final = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
"""What Ollama answers (500) when the model runner dies; used for injected errors."""
RUNNER_EOF: Final = "an error was encountered while running the model: unexpected EOF"
"""What Ollama streams when the runner dies mid-answer; used for injected mid-stream errors."""
NO_EMBEDDINGS: Final = "this model does not support embeddings"
NO_IMAGE_INPUT: Final = (
    "Failed to create new sequence: failed to process inputs: "
    "this model is missing data required for image input"
)
MULTIMODAL_FAMILIES: Final = frozenset(
    {"gemma3", "gemma4", "llama4", "mllama", "qwen25vl", "qwen3vl", "qwen3next", "lfm2"}
)
"""Architectures whose Go implementation takes images (model.MultimodalProcessor in 0.24.0)."""
CONTEXT_EXCEEDED: Final = "input exceeds maximum context length"
THINK_TYPES: Final = 'think must be a boolean or string ("high", "medium", "low", true, or false)'


def go_quote(text: str) -> str:
    """Go's ``%q``: a double-quoted string with escapes (JSON's quoting is the same for names)."""
    return json.dumps(text, ensure_ascii=False)


def model_not_found(name: str) -> str:
    """Chat, generate and show: ``model 'X' not found`` (single quotes)."""
    return f"model '{name}' not found"


def model_not_found_pull(name: str) -> str:
    """Embed and embeddings, via handleScheduleError: double quotes and a hint."""
    return f"model {go_quote(name)} not found, try pulling it first"


def does_not_support(name: str, what: str) -> str:
    """Capability errors: ``"X" does not support chat|generate|thinking``."""
    return f"{go_quote(name)} does not support {what}"


def invalid_format(raw: str) -> str:
    """A ``format`` that is neither "json" nor a JSON schema object (llm/server.go)."""
    return f'invalid format: {go_quote(raw)}; expected "json" or a valid JSON Schema object'


class ApiError(Exception):
    """An error answered as Ollama does: the status code and a JSON body ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> web.Response:
    """The one shape of every error body, with gin's JSON content type."""
    return web.json_response({"error": message}, status=status)


# --- Time and sizes in Ollama's formats ---------------------------------------------------------

DEFAULT_KEEP_ALIVE_S: Final = 300.0
"""Ollama keeps a model loaded for 5 minutes after its last request unless told otherwise."""
FOREVER: Final = math.inf
"""A negative keep_alive keeps the model loaded indefinitely."""
_GO_MAX_DURATION_S: Final = (2**63 - 1) / 1e9
DEFAULT_NUM_CTX: Final = 4096
"""Ollama's default context window on a CPU-only machine (OLLAMA_CONTEXT_LENGTH)."""


def nanoseconds(seconds: float) -> int:
    """Ollama reports every duration as integer nanoseconds."""
    return max(0, round(seconds * 1e9))


def go_time(moment: datetime) -> str:
    """RFC 3339 with fractional seconds, ``Z`` for UTC, as Go's ``time.Time`` marshals."""
    text = moment.isoformat(timespec="microseconds")
    head, dot, rest = text.partition(".")
    fraction, offset = rest[:6].rstrip("0"), rest[6:]
    offset = "Z" if offset == "+00:00" else offset
    return f"{head}{dot if fraction else ''}{fraction}{offset}"


def utc_now() -> str:
    """``created_at`` of a response: the current time in UTC."""
    return go_time(datetime.now(UTC))


def local_time(epoch_s: float) -> str:
    """Times Ollama reports in the server's zone (``expires_at``, ``modified_at``)."""
    if epoch_s == FOREVER:  # Go adds the largest duration to now: about 292 years ahead
        return go_time(datetime.now().astimezone() + timedelta(seconds=_GO_MAX_DURATION_S))
    return go_time(datetime.fromtimestamp(epoch_s).astimezone())


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")
_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Parse a duration like Go's ``time.ParseDuration`` ("5m", "1h30m", "300ms"), in seconds."""
    quoted = go_quote(text)
    rest, sign = text, 1.0
    if rest[:1] in ("+", "-"):
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total, position = 0.0, 0
    while position < len(rest):
        part = _DURATION_PART.match(rest, position)
        if part is None:
            raise ValueError(f"time: invalid duration {quoted}")
        number, unit = part.groups()
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        total += float(number) * _DURATION_UNITS[unit]
        position = part.end()
    return sign * total


def keep_alive_seconds(value: object) -> float:
    """``keep_alive`` as api.Duration decodes it: seconds or a Go duration, negative = forever."""
    match value:
        case bool():
            raise ValueError("Unsupported type: 'bool'")
        case int() | float():
            seconds = float(value)
        case str():
            seconds = parse_go_duration(value)
        case list():
            raise ValueError("Unsupported type: '[]interface {}'")
        case _:
            raise ValueError("Unsupported type: 'map[string]interface {}'")
    return FOREVER if seconds < 0 else seconds


def display_name(name: str) -> str:
    """Ollama lists every model with its tag; a bare name means ``:latest``."""
    return name if ":" in name else f"{name}:latest"


def digest(name: str) -> str:
    """A stable stand-in for a manifest digest: hex SHA-256, as /api/tags shows it."""
    return hashlib.sha256(f"vision-tutor-simulator/{display_name(name)}".encode()).hexdigest()


def positive_option(options: Json, name: str) -> int | None:
    """An integer option such as num_ctx or num_predict, when set to a positive number."""
    value = options.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def context_window(profile: ModelProfile, options: Json) -> int:
    """Tokens the model is loaded with: num_ctx (default 4096), at most what the model knows."""
    return min(positive_option(options, "num_ctx") or DEFAULT_NUM_CTX, profile.context_length)


def estimate_tokens(text: str) -> int:
    """Roughly four characters a token, the usual rule of thumb for these tokenizers."""
    return max(1, math.ceil(len(text) / 4))


# --- Request bodies, validated like Go's encoding/json binding ----------------------------------


def _json_kind(value: object) -> str:
    """How Go's decoder names a JSON value in an UnmarshalTypeError."""
    match value:
        case bool():
            return "bool"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case _:
            return "object"


class Body:
    """A decoded JSON request body with typed accessors.

    Wrong types raise a 400 with a message in the style of Go's UnmarshalTypeError, which is
    what Ollama answers when gin cannot bind the body. JSON null counts as absent, as in Go.
    """

    def __init__(self, raw: Json, struct: str) -> None:
        self.raw = raw
        self.struct = struct

    @classmethod
    async def read(cls, request: web.Request, struct: str) -> Body:
        """Read and decode the request body; empty and non-object bodies are 400s."""
        data = await request.read()
        if not data.strip():
            raise ApiError(400, MISSING_BODY)
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as err:
            raise ApiError(400, _json_syntax_error(err)) from None
        except ValueError:  # bytes that are not UTF-8
            raise ApiError(400, "invalid character in request body") from None
        if not isinstance(raw, dict):
            raise ApiError(
                400, f"json: cannot unmarshal {_json_kind(raw)} into Go value of type api.{struct}"
            )
        return cls(raw, struct)

    def _type_error(self, key: str, value: object, go_type: str) -> ApiError:
        return ApiError(
            400,
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
            f"{self.struct}.{key} of type {go_type}",
        )

    def _get(self, key: str, kinds: tuple[type, ...], go_type: str) -> Any:
        value = self.raw.get(key)
        if value is None:
            return None
        # bool is an int to Python, never a number to Go
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self._type_error(key, value, go_type)
        return value

    def string(self, key: str) -> str:
        value: str | None = self._get(key, (str,), "string")
        return value or ""

    def flag(self, key: str) -> bool | None:
        value: bool | None = self._get(key, (bool,), "bool")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key, (int, float), "int")
        if value is None:
            return 0
        if isinstance(value, float) and not value.is_integer():
            raise ApiError(
                400,
                f"json: cannot unmarshal number {value} into Go struct field "
                f"{self.struct}.{key} of type int",
            )
        return int(value)

    def mapping(self, key: str) -> Json:
        value: Json | None = self._get(key, (dict,), "map[string]interface {}")
        return value or {}

    def items(self, key: str, go_type: str) -> list[Any]:
        value: list[Any] | None = self._get(key, (list,), go_type)
        return value or []

    def keep_alive(self) -> float | None:
        """Seconds to keep the model loaded after this request, None when not given."""
        value = self.raw.get("keep_alive")
        if value is None:
            return None
        try:
            return keep_alive_seconds(value)
        except ValueError as err:
            raise ApiError(400, str(err)) from None

    def think(self) -> bool | str | None:
        """``think``: a bool, or a level ("high", "medium", "low") as api.ThinkValue accepts."""
        value = self.raw.get("think")
        match value:
            case None | bool():
                return value
            case "high" | "medium" | "low":
                return str(value)
            case str():
                raise ApiError(
                    400,
                    f"invalid think value: {go_quote(value)} "
                    '(must be "high", "medium", "low", true, or false)',
                )
            case _:
                raise ApiError(400, THINK_TYPES)

    def images(self, values: Sequence[Any], owner: str) -> tuple[bytes, ...]:
        """Decode base64 images as Go does for ``[]byte`` fields."""
        decoded = []
        for value in values:
            if not isinstance(value, str):
                raise ApiError(
                    400,
                    f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                    f"{owner}.images of type []uint8",
                )
            decoded.append(decode_base64(value))
        return tuple(decoded)


_GO_SCANNER_CONTEXT: Final = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Extra data": "after top-level value",
}
"""Python's decoder messages and the context Go's scanner names for the same stray character."""


def _json_syntax_error(err: json.JSONDecodeError) -> str:
    """Go's wording for the common syntax errors: truncated JSON and a stray character."""
    if err.pos >= len(err.doc):
        return "unexpected EOF"
    context = _GO_SCANNER_CONTEXT.get(err.msg, "looking for beginning of value")
    return f"invalid character {err.doc[err.pos]!r} {context}"


_BASE64_ALPHABET = re.compile(r"[^A-Za-z0-9+/=]")


def decode_base64(text: str) -> bytes:
    """Standard base64 like Go's decoder (newlines ignored); errors name the byte offset."""
    compact = text.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error, ValueError:
        bad = _BASE64_ALPHABET.search(compact)
        offset = bad.start() if bad else len(compact) - len(compact) % 4
        raise ApiError(400, f"illegal base64 data at input byte {offset}") from None


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """What /api/chat and /api/generate have in common once the body is validated."""

    model: str
    messages: tuple[ChatMessage, ...]
    stream: bool
    format: object
    options: Json
    keep_alive: float | None
    think: bool | str | None
    logprobs: bool
    top_logprobs: int

    @property
    def load_only(self) -> bool:
        """No messages (chat) or an empty prompt (generate): Ollama just loads the model."""
        return not self.messages

    @property
    def has_images(self) -> bool:
        return any(message.images for message in self.messages)

    @classmethod
    def common(cls, body: Body, messages: tuple[ChatMessage, ...]) -> GenerationParams:
        params = cls(
            model=body.string("model"),
            messages=messages,
            stream=body.flag("stream") is not False,  # Ollama streams unless told not to
            format=body.raw.get("format"),
            options=body.mapping("options"),
            keep_alive=body.keep_alive(),
            think=body.think(),
            logprobs=bool(body.flag("logprobs")),
            top_logprobs=body.integer("top_logprobs"),
        )
        # Validated like Ollama does, though they cannot change a scripted answer.
        body.flag("raw")
        body.flag("truncate")
        if not 0 <= params.top_logprobs <= 20:
            raise ApiError(400, TOP_LOGPROBS_RANGE)
        return params

    @classmethod
    def from_chat(cls, body: Body) -> GenerationParams:
        messages = []
        for index, raw in enumerate(body.items("messages", "[]api.Message")):
            if not isinstance(raw, dict):
                raise ApiError(
                    400,
                    f"json: cannot unmarshal {_json_kind(raw)} into Go struct field "
                    f"ChatRequest.messages of type api.Message",
                )
            message = Body(raw, f"ChatRequest.messages[{index}]")
            messages.append(
                ChatMessage(
                    role=message.string("role"),
                    content=message.string("content"),
                    images=message.images(
                        message.items("images", "[]api.ImageData"), message.struct
                    ),
                )
            )
        return cls.common(body, tuple(messages))

    @classmethod
    def from_generate(cls, body: Body) -> GenerationParams:
        prompt, system = body.string("prompt"), body.string("system")
        images = body.images(body.items("images", "[]api.ImageData"), body.struct)
        body.string("suffix")
        body.string("template")
        body.items("context", "[]int")
        messages: tuple[ChatMessage, ...] = ()
        if prompt:
            user = ChatMessage(role="user", content=prompt, images=images)
            system_message = (ChatMessage(role="system", content=system),) if system else ()
            messages = (*system_message, user)
        return cls.common(body, messages)


# --- Scheduling: slots, the pending queue, and which models are loaded ------------------------


class Scheduler:
    """``num_parallel`` requests run at once; only requests that need a model load can be refused.

    As in Ollama 0.24 (server/sched.go, ``GetRunner``): a request for a model that is already
    loaded goes straight to its runner and waits there for a slot, however many wait with it; a
    request that needs its model loaded goes through the scheduler, which works on one at a time
    while at most ``max_queue`` more wait in its channel, and a request beyond that gets the 503
    at once ("server busy ... maximum pending requests exceeded").
    """

    def __init__(self, num_parallel: int, max_queue: int) -> None:
        self.num_parallel = max(1, num_parallel)
        self.max_queue = max(0, max_queue)
        self._slots = asyncio.Semaphore(self.num_parallel)
        self._admitted = 0
        self._pending = 0
        self.running = 0

    @property
    def queued(self) -> int:
        return self._admitted - self.running

    @contextlib.asynccontextmanager
    async def slot(self, needs_load: bool) -> AsyncIterator[None]:
        """Wait for a free slot; for a model that must be loaded, 503 at once if none can wait."""
        if needs_load and self._pending >= 1 + self.max_queue:
            raise ApiError(503, SERVER_BUSY)
        self._admitted += 1
        self._pending += needs_load
        try:
            async with self._slots:
                self._pending -= needs_load
                needs_load = False
                self.running += 1
                try:
                    yield
                finally:
                    self.running -= 1
        finally:
            self._pending -= needs_load
            self._admitted -= 1


@dataclass(slots=True)
class Resident:
    """A model in (simulated) memory."""

    profile: ModelProfile
    num_ctx: int
    expires_at: float
    """Epoch seconds; FOREVER for a negative keep_alive."""
    users: int = 0
    unload_when_idle: bool = False


class Residency:
    """Which models are loaded, loading them on first use and expiring them after keep_alive.

    Expiry is evaluated lazily (when asked) instead of with timers, so a stopped server leaves
    nothing scheduled behind.
    """

    def __init__(self, time_scale: float) -> None:
        self._time_scale = time_scale
        self._resident: dict[str, Resident] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _expire(self) -> None:
        now = time.time()
        for name, resident in list(self._resident.items()):
            if resident.users == 0 and resident.expires_at <= now:
                del self._resident[name]

    def is_loaded(self, profile: ModelProfile) -> bool:
        """In memory now (requests for it bypass the scheduler's queue)."""
        self._expire()
        return profile.name in self._resident

    def loaded(self) -> list[Resident]:
        """Loaded models, longest remaining lifetime first (as /api/ps sorts them)."""
        self._expire()
        return sorted(self._resident.values(), key=lambda r: r.expires_at, reverse=True)

    async def acquire(self, profile: ModelProfile, keep_alive: float | None, window: int) -> float:
        """Mark the model in use, loading it first if needed; returns the seconds spent loading."""
        started = time.perf_counter()
        lock = self._locks.setdefault(profile.name, asyncio.Lock())
        async with lock:  # concurrent first requests share one load
            self._expire()
            resident = self._resident.get(profile.name)
            if resident is None:
                await asyncio.sleep(profile.load_ms / 1000 * self._time_scale)
                resident = Resident(profile, window, 0.0)
                self._resident[profile.name] = resident
            resident.users += 1
            resident.expires_at = _expiry(keep_alive)
        return time.perf_counter() - started

    def release(self, profile: ModelProfile, keep_alive: float | None) -> None:
        """The request is done: start the keep_alive countdown, or unload for keep_alive 0."""
        resident = self._resident[profile.name]  # in use, so neither expired nor unloaded
        resident.users -= 1
        resident.expires_at = _expiry(keep_alive)
        if resident.users == 0 and (keep_alive == 0 or resident.unload_when_idle):
            del self._resident[profile.name]

    def unload(self, profile: ModelProfile) -> None:
        """Unload now, or as soon as the requests using the model finish."""
        resident = self._resident.get(profile.name)
        if resident is None:
            return
        if resident.users:
            resident.unload_when_idle = True
        else:
            del self._resident[profile.name]


def _expiry(keep_alive: float | None) -> float:
    seconds = DEFAULT_KEEP_ALIVE_S if keep_alive is None else keep_alive
    return FOREVER if seconds == FOREVER else time.time() + seconds


# --- Statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelStats:
    requests: int = 0
    served: int = 0


@dataclass(frozen=True, slots=True)
class SimulatorStats:
    """A snapshot of what the simulator has done, for tests and the demo (``GET /sim/stats``)."""

    requests: int
    """Inference requests (chat, generate, embed) that passed validation."""
    served: int
    """Of those, answered successfully (including load-only requests)."""
    rejected_busy: int
    """Answered 503 because the pending queue was full."""
    errors_injected: int
    """Answered 500 by the error_rate fault."""
    midstream_errors: int
    """Answers cut by the midstream_error_rate fault."""
    stalls: int
    """Requests delayed by the stall_s fault."""
    running: int
    queued: int
    models: dict[str, ModelStats]
    scenes: dict[str, int]
    """Scene ids recognised in request images, with how often each was seen."""
    unrecognised_images: int
    """Requests with images in which no scene was recognised."""

    def as_json(self) -> Json:
        return asdict(self)


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    served: int = 0
    rejected_busy: int = 0
    errors_injected: int = 0
    midstream_errors: int = 0
    stalls: int = 0
    unrecognised_images: int = 0
    model_requests: Counter[str] = field(default_factory=Counter)
    model_served: Counter[str] = field(default_factory=Counter)
    scenes: Counter[str] = field(default_factory=Counter)


# --- The simulator's state ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultDraw:
    """The faults that strike one request."""

    stall_s: float
    error: bool
    midstream_error: bool


class Simulator:
    """Everything the handlers share: models, scheduling, faults and statistics."""

    def __init__(self, config: SimulatorConfig, scenes: SceneLibrary) -> None:
        self.config = config
        self.behaviour = Behaviour(config, scenes)
        self.scheduler = Scheduler(config.num_parallel, config.max_queue)
        self.residency = Residency(config.time_scale)
        self.started_at = time.time()
        self._counters = _Counters()
        self._faults = {name: profile.faults for name, profile in config.models.items()}
        self._scripted: dict[str, list[str]] = {}
        """Answers a test dictated, per model, taken in order before the scripted behaviour's."""
        self.absent = {
            profile.name
            for name in config.not_pulled
            if (profile := config.model(name)) is not None
        }
        """Served models not pulled yet (`SimulatorConfig.not_pulled`), until `/api/pull`."""

    # Models and faults

    def model(self, name: str, not_found: Callable[[str], str]) -> ModelProfile:
        """The profile for a requested model name, with the faults currently in force."""
        profile = self.config.model(name)
        if profile is None or profile.name in self.absent:
            raise ApiError(404, not_found(name))
        return profile.with_faults(self._faults[profile.name])

    def pulled(self) -> list[ModelProfile]:
        """The models on "disk": served and not absent."""
        return [p for p in self.config.models.values() if p.name not in self.absent]

    def faults(self) -> dict[str, Faults]:
        return dict(self._faults)

    def set_faults(self, model: str, faults: Faults) -> None:
        profile = self.config.model(model)
        if profile is None:
            raise KeyError(f"unknown model {model!r}")
        self._faults[profile.name] = faults

    def reset_faults(self) -> None:
        self._faults = {name: profile.faults for name, profile in self.config.models.items()}
        self._scripted = {}

    def script(self, model: str, *answers: str) -> None:
        """The next chat answers of `model`, verbatim (a broken answer a real model once gave)."""
        profile = self.config.model(model)
        if profile is None:
            raise KeyError(f"unknown model {model!r}")
        self._scripted.setdefault(profile.name, []).extend(answers)

    def _draw_faults(self, profile: ModelProfile, request_number: int) -> FaultDraw:
        # Seeded by config seed, request number and model, so a replayed request sequence
        # meets the same faults on every run and on every server instance.
        rng = random.Random(f"faults/{self.config.seed}/{request_number}/{profile.name}")
        faults = profile.faults
        return FaultDraw(
            stall_s=faults.stall_s,
            error=rng.random() < faults.error_rate,
            midstream_error=rng.random() < faults.midstream_error_rate,
        )

    # The life of an inference request

    @contextlib.asynccontextmanager
    async def inference(
        self, profile: ModelProfile, keep_alive: float | None, options: Json, started: float
    ) -> AsyncIterator[Session]:
        """Hold a slot and the loaded model for one request (``started``: its perf_counter)."""
        counters = self._counters
        counters.requests += 1
        counters.model_requests[profile.name] += 1
        session = Session(number=counters.requests, started=started)
        try:
            async with self.scheduler.slot(needs_load=not self.residency.is_loaded(profile)):
                session.load_s = await self.residency.acquire(
                    profile, keep_alive, context_window(profile, options)
                )
                try:
                    session.faults = self._draw_faults(profile, session.number)
                    yield session
                finally:
                    self.residency.release(profile, keep_alive)
        except ApiError as err:
            if err.status == 503:
                counters.rejected_busy += 1
            raise
        if session.ok:
            counters.served += 1
            counters.model_served[profile.name] += 1

    async def strike(self, session: Session) -> None:
        """Apply the stall and error faults before the first byte of the answer."""
        faults = session.faults
        if faults.stall_s > 0:
            self._counters.stalls += 1
            await asyncio.sleep(faults.stall_s)  # real seconds: timeouts are real too
        if faults.error:
            self._counters.errors_injected += 1
            raise ApiError(500, RUNNER_STOPPED)

    def record_midstream_error(self, session: Session) -> None:
        self._counters.midstream_errors += 1
        session.ok = False

    async def complete(self, profile: ModelProfile, request: CompletionRequest) -> Completion:
        """Run the scripted model off the event loop: it decodes and hashes images.

        The behaviour is thread-safe and seeds each request from its content, so parallel
        slots do not make answers depend on timing.
        """
        loop = asyncio.get_running_loop()
        completion = await loop.run_in_executor(None, self.behaviour.complete, profile, request)
        if scripted := self._scripted.get(profile.name):
            text = scripted.pop(0)
            completion = replace(completion, tokens=(Token(text, -0.01, ((text, -0.01),)),))
        if completion.scene_id is not None:
            self._counters.scenes[completion.scene_id] += 1
        elif any(message.images for message in request.messages):
            self._counters.unrecognised_images += 1
        return completion

    async def embed(
        self, profile: ModelProfile, texts: Sequence[str]
    ) -> tuple[list[list[float]], float]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.behaviour.embed, profile, texts)

    def stats(self) -> SimulatorStats:
        counters = self._counters
        return SimulatorStats(
            requests=counters.requests,
            served=counters.served,
            rejected_busy=counters.rejected_busy,
            errors_injected=counters.errors_injected,
            midstream_errors=counters.midstream_errors,
            stalls=counters.stalls,
            running=self.scheduler.running,
            queued=self.scheduler.queued,
            models={
                name: ModelStats(counters.model_requests[name], counters.model_served[name])
                for name in self.config.models
            },
            scenes=dict(counters.scenes),
            unrecognised_images=counters.unrecognised_images,
        )


@dataclass(slots=True)
class Session:
    """One admitted inference request."""

    number: int
    """Position in the sequence of inference requests (seeds the fault draws)."""
    started: float
    """perf_counter() when the request arrived: total_duration counts from here."""
    load_s: float = 0.0
    faults: FaultDraw = FaultDraw(0.0, error=False, midstream_error=False)
    ok: bool = True


SIMULATOR: Final = web.AppKey("simulator", Simulator)


# --- Answers: pacing a completion into chunks ---------------------------------------------------

MAX_CONTENT_CHUNKS: Final = 32
MAX_THINKING_CHUNKS: Final = 16
"""Long answers are grouped into at most this many chunks; streaming stays observable."""
PROMPT_EVAL_SHARE: Final = 0.15
"""Part of the non-thinking time spent reading the prompt (and images) before the first token."""
MIDSTREAM_AFTER: Final = 2
"""A mid-stream fault strikes after this many chunks."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One streamed chunk: text and the tokens behind it, sent after ``delay`` seconds."""

    delay: float
    content: str = ""
    thinking: str = ""
    tokens: tuple[Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """A completion laid out in time, at the configured time scale."""

    pieces: tuple[Piece, ...]
    prompt_eval_count: int
    prompt_eval_s: float
    eval_count: int
    eval_s: float
    done_reason: str

    @property
    def content(self) -> str:
        return "".join(piece.content for piece in self.pieces)

    @property
    def thinking(self) -> str:
        return "".join(piece.thinking for piece in self.pieces)


def _groups[T](items: Sequence[T], most: int) -> list[Sequence[T]]:
    size = max(1, math.ceil(len(items) / most))
    return [items[start : start + size] for start in range(0, len(items), size)]


def thinking_pieces(text: str) -> list[str]:
    """Split thinking text into word-sized pieces that join back to the same text."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[sum(map(len, pieces)) :]
    if tail:
        pieces.append(tail)
    return pieces


def plan_reply(
    completion: Completion, profile: ModelProfile, options: Json, time_scale: float
) -> Reply:
    """Lay the completion out in time: prompt evaluation, thinking chunks, then content chunks."""
    tokens = completion.tokens
    done_reason = "stop"
    num_predict = positive_option(options, "num_predict")  # -1 and -2 mean "no limit"
    if num_predict is not None and num_predict < len(tokens):
        tokens, done_reason = tokens[:num_predict], "length"
    thoughts = thinking_pieces(completion.thinking or "")

    latency = completion.latency_s * time_scale
    thinking_share = 0.0
    if thoughts:
        thinking_ms = profile.thinking_latency_ms
        thinking_share = thinking_ms / (thinking_ms + profile.latency_ms) if thinking_ms else 0.5
    thinking_s = latency * thinking_share
    prompt_eval_s = (latency - thinking_s) * PROMPT_EVAL_SHARE
    content_s = latency - thinking_s - prompt_eval_s

    pieces: list[Piece] = []
    for words in _groups(thoughts, MAX_THINKING_CHUNKS):
        delay = thinking_s * len(words) / len(thoughts)
        pieces.append(Piece(delay, thinking="".join(words)))
    for group in _groups(tokens, MAX_CONTENT_CHUNKS):
        delay = content_s * len(group) / len(tokens)
        pieces.append(Piece(delay, content="".join(t.text for t in group), tokens=tuple(group)))
    if not pieces:
        pieces.append(Piece(delay=content_s))
    pieces[0] = replace(pieces[0], delay=pieces[0].delay + prompt_eval_s)
    return Reply(
        pieces=tuple(pieces),
        prompt_eval_count=completion.prompt_tokens,
        prompt_eval_s=prompt_eval_s,
        eval_count=len(tokens) + len(thoughts),
        eval_s=thinking_s + content_s,
        done_reason=done_reason,
    )


def _token_logprob(text: str, logprob: float) -> Json:
    entry: Json = {"token": text, "logprob": logprob}
    if text:  # Go omits empty byte lists
        entry["bytes"] = list(text.encode())
    return entry


def logprob_entries(tokens: Sequence[Token], top_logprobs: int) -> list[Json]:
    """api.Logprob entries: the chosen token, its bytes, and the top alternatives if asked."""
    entries = []
    for token in tokens:
        entry = _token_logprob(token.text, token.logprob)
        if top_logprobs:
            entry["top_logprobs"] = [
                _token_logprob(text, logprob) for text, logprob in token.top[:top_logprobs]
            ]
        entries.append(entry)
    return entries


class ReplyWriter:
    """Shapes chunks for /api/chat (``message``) or /api/generate (``response``)."""

    def __init__(self, endpoint: Endpoint, model: str, params: GenerationParams) -> None:
        self.endpoint = endpoint
        self.model = model
        self.params = params

    def _text(self, content: str, thinking: str) -> Json:
        if self.endpoint == "chat":
            message: Json = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            return {"message": message}
        text: Json = {"response": content}
        if thinking:
            text["thinking"] = thinking
        return text

    def chunk(self, piece: Piece) -> Json:
        body: Json = {
            "model": self.model,
            "created_at": utc_now(),
            **self._text(piece.content, piece.thinking),
            "done": False,
        }
        if self.params.logprobs and piece.tokens:
            body["logprobs"] = logprob_entries(piece.tokens, self.params.top_logprobs)
        return body

    def done(self, reason: str, metrics: Json | None = None) -> Json:
        """The final chunk ("load" and "unload" answers carry no metrics, as in Ollama)."""
        return {
            "model": self.model,
            "created_at": utc_now(),
            **self._text("", ""),
            "done": True,
            "done_reason": reason,
            **(metrics or {}),
        }

    def whole(self, reply: Reply, session: Session) -> Json:
        """A non-streamed answer: the final chunk carrying all the text and logprobs."""
        body = self.done(reply.done_reason, metrics(reply, session))
        body.update(self._text(reply.content, reply.thinking))
        if self.params.logprobs:
            tokens = [token for piece in reply.pieces for token in piece.tokens]
            body["logprobs"] = logprob_entries(tokens, self.params.top_logprobs)
        return body


def metrics(reply: Reply, session: Session) -> Json:
    """api.Metrics of a finished completion; durations in nanoseconds, at the time scale."""
    return {
        "total_duration": nanoseconds(time.perf_counter() - session.started),
        "load_duration": nanoseconds(session.load_s),
        "prompt_eval_count": reply.prompt_eval_count,
        "prompt_eval_duration": nanoseconds(reply.prompt_eval_s),
        "eval_count": reply.eval_count,
        "eval_duration": nanoseconds(reply.eval_s),
    }


async def send_reply(
    request: web.Request, sim: Simulator, writer: ReplyWriter, reply: Reply, session: Session
) -> web.StreamResponse:
    """Deliver a planned reply: NDJSON chunks paced in time, or one JSON object at the end.

    A mid-stream fault cuts the answer after a couple of chunks: streamed, with an
    ``{"error": ...}`` line as Ollama sends when its runner dies; not streamed, as a 500.
    """
    cut = min(MIDSTREAM_AFTER, len(reply.pieces)) if session.faults.midstream_error else None
    pieces = reply.pieces[:cut]
    if not writer.params.stream:
        await asyncio.sleep(sum(piece.delay for piece in pieces))
        if cut is not None:
            sim.record_midstream_error(session)
            raise ApiError(500, RUNNER_EOF)
        return web.json_response(writer.whole(reply, session))

    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        for piece in pieces:
            await asyncio.sleep(piece.delay)
            await _write_line(response, writer.chunk(piece))
        if cut is not None:
            sim.record_midstream_error(session)
            await _write_line(response, {"error": RUNNER_EOF})
        else:
            await _write_line(response, writer.done(reply.done_reason, metrics(reply, session)))
        await response.write_eof()
    except ConnectionResetError:  # the client left mid-answer: nobody to tell
        session.ok = False
    return response


async def _write_line(response: web.StreamResponse, body: Json) -> None:
    await response.write(json.dumps(body, ensure_ascii=False).encode() + b"\n")


def resolve_think(profile: ModelProfile, params: GenerationParams) -> bool:
    """Thinking models think unless told not to; asking others to think is a 400."""
    if "thinking" in profile.capabilities:
        return True if params.think is None else bool(params.think)
    if params.think:  # True or a level
        raise ApiError(400, does_not_support(params.model, "thinking"))
    return False


def images_for(
    profile: ModelProfile, params: GenerationParams, non_vision: NonVisionImages
) -> GenerationParams:
    """The request as the model sees it, for images sent to a model without vision.

    Ollama 0.24 ("ollama"): an architecture its own engine runs with images (gemma3, gemma4, ...)
    fails in the runner when the model file has no vision weights; any other model gets the
    image tags as plain text, so the images are silently dropped and the model describes a
    picture it never saw (runner/ollamarunner/runner.go, ``inputs``). "drop" always drops them,
    "reject" answers 400.
    """
    if not params.has_images or "vision" in profile.capabilities:
        return params
    if non_vision == "reject":
        raise ApiError(400, does_not_support(params.model, "vision"))
    if non_vision == "ollama" and profile.family in MULTIMODAL_FAMILIES:
        raise ApiError(500, NO_IMAGE_INPUT)
    messages = tuple(replace(message, images=()) for message in params.messages)
    return replace(params, messages=messages)


LOGPROBS_SINCE: Final = (0, 12, 11)
"""The first Ollama release that returns logprobs; older ones ignore the request field."""


def logprobs_for(params: GenerationParams, version: str) -> GenerationParams:
    """An emulated release before 0.12.11 answers without logprobs, whatever was asked."""
    if params.logprobs and release(version) < LOGPROBS_SINCE:
        return replace(params, logprobs=False, top_logprobs=0)
    return params


def release(version: str) -> tuple[int, ...]:
    """ "0.12.11" as (0, 12, 11); what does not parse counts as the newest."""
    try:
        return tuple(int(part) for part in version.split("-")[0].split("."))
    except ValueError:
        return (999,)


def format_for(
    profile: ModelProfile, response_format: str | Json | None, think: bool, config: SimulatorConfig
) -> str | Json | None:
    """The format the runner applies: none, on an emulated Ollama 0.20.0 to 0.21.0, for a
    thinking model told not to think (it answers free text whatever ``format`` asked)."""
    if config.format_dropped_without_thinking and "thinking" in profile.capabilities and not think:
        return None
    return response_format


def completion_format(value: object) -> str | Json | None:
    """``format`` as the runner accepts it; Ollama reports anything else as a runner error."""
    match value:
        case None | "":
            return None
        case "json":
            return "json"
        case dict():
            return value
        case _:
            raise ApiError(500, invalid_format(json.dumps(value, separators=(",", ":"))))


# --- Ollama API handlers ------------------------------------------------------------------------

REQUEST_MODEL: Final = web.RequestKey("model", str)
"""The model a request named, for the request log line."""


async def handle_root(request: web.Request) -> web.Response:
    """Clients (and the integration's config flow) probe ``/`` to see that Ollama is up."""
    return web.Response(text="Ollama is running")


async def handle_version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[SIMULATOR].config.version})


def model_details(profile: ModelProfile) -> Json:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": profile.family,
        "families": [profile.family],
        "parameter_size": profile.parameter_size,
        "quantization_level": profile.quantization_level,
    }


async def handle_tags(request: web.Request) -> web.Response:
    """``GET /api/tags``: every served model, as if pulled when the server started."""
    sim = request.app[SIMULATOR]
    models = [
        {
            "name": display_name(profile.name),
            "model": display_name(profile.name),
            "modified_at": local_time(sim.started_at),
            "size": profile.size_bytes,
            "digest": digest(profile.name),
            "details": model_details(profile),
        }
        for profile in sim.pulled()
    ]
    return web.json_response({"models": models})


async def handle_ps(request: web.Request) -> web.Response:
    """``GET /api/ps``: the models in memory and when keep_alive will unload them."""
    sim = request.app[SIMULATOR]
    models = [
        {
            "name": display_name(resident.profile.name),
            "model": display_name(resident.profile.name),
            "size": resident.profile.size_bytes,
            "digest": digest(resident.profile.name),
            "details": model_details(resident.profile),
            "expires_at": local_time(resident.expires_at),
            "size_vram": resident.profile.size_bytes,  # all on the (imaginary) GPU
            "context_length": resident.num_ctx,
        }
        for resident in sim.residency.loaded()
    ]
    return web.json_response({"models": models})


_CHAT_TEMPLATE: Final = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""
_CHAT_PARAMETERS: Final = {"stop": "<end_of_turn>", "temperature": 1, "top_k": 64, "top_p": 0.95}


def _parameter_count(size: str) -> int:
    """ "5.1B" -> 5100000000, "307.58M" -> 307580000."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
    try:
        return round(float(size[:-1]) * scale[size[-1].upper()])
    except KeyError, ValueError, IndexError:
        return 0


def _embedding_length(profile: ModelProfile) -> int:
    """Hidden size: the vector length for embedding models, a size-typical width otherwise."""
    if profile.dimensions:
        return profile.dimensions
    parameters = _parameter_count(profile.parameter_size)
    return 2560 if parameters < 8e9 else 3840 if parameters < 20e9 else 5376


def show_body(profile: ModelProfile, modified_at: float) -> Json:
    """``POST /api/show``: what a client reads to learn a model's capabilities and limits."""
    chat_model = "completion" in profile.capabilities
    template = _CHAT_TEMPLATE if chat_model else "{{ .Prompt }}"
    parameters = _CHAT_PARAMETERS if chat_model else {}
    parameter_lines = [
        f"{name:<30} {json.dumps(value)}" for name, value in sorted(parameters.items())
    ]
    architecture = profile.family
    modelfile = "\n".join(
        [
            '# Modelfile generated by "ollama show"',
            "# To build a new Modelfile based on this, replace FROM with:",
            f"# FROM {display_name(profile.name)}",
            "",
            f"FROM /root/.ollama/models/blobs/sha256-{digest(profile.name)}",
            f'TEMPLATE """{template}"""',
            *(f"PARAMETER {name} {value}" for name, value in sorted(parameters.items())),
            "",
        ]
    )
    body: Json = {
        "modelfile": modelfile,
        "template": template,
        "details": model_details(profile),
        "model_info": {
            "general.architecture": architecture,
            "general.parameter_count": _parameter_count(profile.parameter_size),
            "general.quantization_version": 2,
            f"{architecture}.context_length": profile.context_length,
            f"{architecture}.embedding_length": _embedding_length(profile),
        },
        "capabilities": list(profile.capabilities),
        "modified_at": local_time(modified_at),
    }
    if parameter_lines:
        body["parameters"] = "\n".join(parameter_lines)
    # Ollama 0.24 lists the model file's tensors (name, ggml type, shape). Gemma 3 and 4 vision
    # models are single files for its own engine, so there is no projector_info: that appears
    # only for the older projector-file models.
    width = _embedding_length(profile)
    body["tensors"] = [
        {"name": "output_norm.weight", "type": "F32", "shape": [width]},
        {"name": "token_embd.weight", "type": profile.quantization_level, "shape": [width, 262144]},
    ]
    return body


async def handle_show(request: web.Request) -> web.Response:
    body = await Body.read(request, "ShowRequest")
    name = body.string("model") or body.string("name")  # "name" is the legacy field
    if not name:
        raise ApiError(400, MODEL_REQUIRED)
    request[REQUEST_MODEL] = name
    sim = request.app[SIMULATOR]
    return web.json_response(show_body(sim.model(name, model_not_found), sim.started_at))


PULL_STEPS: Final = 4
"""Progress lines per pulled layer."""
PULL_STEP_S: Final = 0.5
"""Simulated seconds between progress lines (time-scaled)."""


def pull_progress(profile: ModelProfile) -> list[Json]:
    """The progress lines Ollama streams for a pull: manifest, the layer, verify, write, done."""
    layer = f"sha256:{digest(profile.name)}"
    total = profile.size_bytes or 1
    lines: list[Json] = [{"status": "pulling manifest"}]
    lines += [
        {
            "status": f"pulling {digest(profile.name)[:12]}",
            "digest": layer,
            "total": total,
            "completed": total * step // PULL_STEPS,
        }
        for step in range(PULL_STEPS + 1)
    ]
    lines += [
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    return lines


async def handle_pull(request: web.Request) -> web.StreamResponse:
    """``POST /api/pull``: fetch a served model that is not pulled yet, streaming progress."""
    body = await Body.read(request, "PullRequest")
    name = body.string("model") or body.string("name")
    request[REQUEST_MODEL] = name
    sim = request.app[SIMULATOR]
    profile = sim.config.model(name)
    if profile is None:
        raise ApiError(500, "pull model manifest: file does not exist")
    lines = pull_progress(profile) if profile.name in sim.absent else [{"status": "success"}]
    if body.flag("stream") is False:
        await asyncio.sleep(PULL_STEP_S * len(lines) * sim.config.time_scale)
        sim.absent.discard(profile.name)
        return web.json_response(lines[-1])
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for line in lines:
        await _write_line(response, line)
        await asyncio.sleep(PULL_STEP_S * sim.config.time_scale)
    sim.absent.discard(profile.name)
    await response.write_eof()
    return response


async def handle_chat(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()  # total_duration includes reading the (image-laden) body
    body = await Body.read(request, "ChatRequest")
    return await generate_reply(request, "chat", GenerationParams.from_chat(body), started)


async def handle_generate(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    body = await Body.read(request, "GenerateRequest")
    return await generate_reply(request, "generate", GenerationParams.from_generate(body), started)


async def generate_reply(
    request: web.Request, endpoint: Endpoint, params: GenerationParams, started: float
) -> web.StreamResponse:
    """Chat and generate, checked in the order Ollama checks them."""
    sim = request.app[SIMULATOR]
    request[REQUEST_MODEL] = params.model
    if not params.model:
        # An empty name: chat answers "model is required", generate "model '' not found".
        if endpoint == "chat":
            raise ApiError(400, MODEL_REQUIRED)
        raise ApiError(404, model_not_found(""))
    profile = sim.model(params.model, model_not_found)
    writer = ReplyWriter(endpoint, params.model, params)
    if params.load_only and params.keep_alive == 0:
        sim.residency.unload(profile)
        return web.json_response(writer.done("unload"))
    think = resolve_think(profile, params)
    if "completion" not in profile.capabilities:
        raise ApiError(400, does_not_support(params.model, endpoint))
    params = logprobs_for(
        images_for(profile, params, sim.config.non_vision_images), sim.config.version
    )
    writer = ReplyWriter(endpoint, params.model, params)

    async with sim.inference(profile, params.keep_alive, params.options, started) as session:
        if params.load_only:
            return web.json_response(writer.done("load"))
        if isinstance(params.think, str):
            raise ApiError(
                400, f"think value {go_quote(params.think)} is not supported for this model"
            )
        response_format = format_for(profile, completion_format(params.format), think, sim.config)
        await sim.strike(session)
        completion = await sim.complete(
            profile,
            CompletionRequest(
                messages=params.messages,
                format=response_format,
                options=params.options,
                think=think,
            ),
        )
        reply = plan_reply(completion, profile, params.options, sim.config.time_scale)
        return await send_reply(request, sim, writer, reply, session)


def embed_inputs(value: object) -> list[str]:
    """``input``: one string or a list of strings; an empty string means no input at all."""
    match value:
        case None:
            return []
        case str():
            return [value] if value else []
        case list() if all(isinstance(item, str) for item in value):
            return list(value)
        case _:
            raise ApiError(400, INVALID_INPUT_TYPE)


def fit_context(texts: Sequence[str], num_ctx: int, truncate: bool) -> tuple[list[str], int]:
    """Cut inputs to the context window (or refuse, with truncate=false); count the tokens."""
    fitted, total = [], 0
    for text in texts:
        tokens = estimate_tokens(text)
        if tokens > num_ctx:
            if not truncate:
                raise ApiError(400, CONTEXT_EXCEEDED)
            text, tokens = text[: num_ctx * 4], num_ctx
        fitted.append(text)
        total += tokens
    return fitted, total


def normalise(vector: Sequence[float]) -> list[float]:
    """L2-normalise, as Ollama does to every /api/embed vector (and again after truncation)."""
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / max(norm, 1e-12) for value in vector]


async def handle_embed(request: web.Request) -> web.Response:
    started = time.perf_counter()
    sim = request.app[SIMULATOR]
    body = await Body.read(request, "EmbedRequest")
    texts = embed_inputs(body.raw.get("input"))
    truncate = body.flag("truncate") is not False
    dimensions = body.integer("dimensions")
    keep_alive, options = body.keep_alive(), body.mapping("options")
    name = body.string("model")
    request[REQUEST_MODEL] = name
    if not name:
        raise ApiError(400, MODEL_REQUIRED)
    profile = sim.model(name, model_not_found_pull)
    async with sim.inference(profile, keep_alive, options, started) as session:
        if not texts:  # nothing to embed: Ollama only loads the model
            return web.json_response({"model": name, "embeddings": []})
        if "embedding" not in profile.capabilities:
            # The runner's 501 passes through /api/embed (the legacy route below makes it a 500).
            raise ApiError(501, NO_EMBEDDINGS)
        texts, token_count = fit_context(texts, context_window(profile, options), truncate)
        await sim.strike(session)
        vectors, latency_s = await sim.embed(profile, texts)
        await asyncio.sleep(latency_s * sim.config.time_scale)
        embeddings = [normalise(vector) for vector in vectors]
        if dimensions > 0:
            embeddings = [normalise(vector[:dimensions]) for vector in embeddings]
        return web.json_response(
            {
                "model": name,
                "embeddings": embeddings,
                "total_duration": nanoseconds(time.perf_counter() - started),
                "load_duration": nanoseconds(session.load_s),
                "prompt_eval_count": token_count,
            }
        )


async def handle_embeddings(request: web.Request) -> web.Response:
    """The legacy single-prompt endpoint, ``{"embedding": [...]}``."""
    started = time.perf_counter()
    sim = request.app[SIMULATOR]
    body = await Body.read(request, "EmbeddingRequest")
    prompt, keep_alive, options = body.string("prompt"), body.keep_alive(), body.mapping("options")
    name = body.string("model")
    request[REQUEST_MODEL] = name
    if not name:
        raise ApiError(400, MODEL_REQUIRED)
    profile = sim.model(name, model_not_found_pull)
    async with sim.inference(profile, keep_alive, options, started) as session:
        if not prompt:
            return web.json_response({"embedding": []})
        if "embedding" not in profile.capabilities:
            raise ApiError(500, NO_EMBEDDINGS)
        await sim.strike(session)
        vectors, latency_s = await sim.embed(profile, [prompt])
        await asyncio.sleep(latency_s * sim.config.time_scale)
        return web.json_response({"embedding": vectors[0]})


# --- Admin API (/sim/...) -----------------------------------------------------------------------

FAULT_FIELDS: Final = tuple(f.name for f in fields(Faults))


def faults_from_mapping(values: Mapping[str, object], base: Faults | None = None) -> Faults:
    """Build Faults from loose values (JSON or CLI), checking names and ranges."""
    settings: dict[str, float] = {}
    for key, value in values.items():
        if key not in FAULT_FIELDS:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(FAULT_FIELDS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number")
        number = float(value)
        if key == "stall_s" and not 0 <= number < math.inf:
            raise ValueError("stall_s must be a number of seconds >= 0")
        if key != "stall_s" and not 0 <= number <= 1:
            raise ValueError(f"{key} must be a probability between 0 and 1")
        settings[key] = number
    return replace(base or Faults(), **settings)


def _faults_json(sim: Simulator) -> Json:
    return {"faults": {name: asdict(faults) for name, faults in sim.faults().items()}}


async def handle_get_faults(request: web.Request) -> web.Response:
    return web.json_response(_faults_json(request.app[SIMULATOR]))


async def handle_set_faults(request: web.Request) -> web.Response:
    """``POST /sim/faults {"model": ..., "error_rate": ...}``: replace one model's faults.

    Without "model" the faults apply to every model. Unnamed faults are off.
    """
    sim = request.app[SIMULATOR]
    body = await Body.read(request, "Faults")
    name = body.string("model")
    try:
        faults = faults_from_mapping({k: v for k, v in body.raw.items() if k != "model"})
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    targets = [sim.model(name, model_not_found).name] if name else list(sim.config.models)
    for target in targets:
        sim.set_faults(target, faults)
    return web.json_response(_faults_json(sim))


async def handle_reset_faults(request: web.Request) -> web.Response:
    """``DELETE /sim/faults``: back to the faults the profiles (and CLI) started with."""
    sim = request.app[SIMULATOR]
    sim.reset_faults()
    return web.json_response(_faults_json(sim))


async def handle_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].stats().as_json())


# --- The application ----------------------------------------------------------------------------

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""Camera frames arrive base64-encoded in the JSON body; Ollama sets no small limit either."""

GIN_ROUTING_ERRORS: Final = {404: "404 page not found", 405: "405 method not allowed"}
"""Ollama's router (gin) answers unknown routes and methods in plain text."""

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def ollama_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn errors into Ollama's error responses and log one line per request."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except ApiError as err:
        status = err.status
        return error_response(err.status, err.message)
    except asyncio.CancelledError:
        status = 499  # the client went away; Ollama logs these as 499 "request canceled"
        raise
    except web.HTTPException as err:  # from aiohttp: no route, wrong method, body too large
        status = err.status
        if status in GIN_ROUTING_ERRORS:
            # gin writes these as bare text/plain, without a charset.
            return web.Response(
                status=status, body=GIN_ROUTING_ERRORS[status].encode(), content_type="text/plain"
            )
        return error_response(status, err.reason)
    except Exception as err:
        _LOGGER.exception("Unexpected error answering %s %s", request.method, request.path)
        return error_response(500, f"simulator error: {err}")
    finally:
        model = request.get(REQUEST_MODEL)
        _LOGGER.info(
            "%s %s %d %.1fms%s",
            request.method,
            request.path,
            status,
            (time.perf_counter() - started) * 1000,
            f" model={model}" if model else "",
        )


def create_app(config: SimulatorConfig, scenes: SceneLibrary | None = None) -> web.Application:
    """The simulator as an aiohttp application (run it with `run_simulator` or any runner)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[ollama_middleware])
    app[SIMULATOR] = Simulator(config, scenes or SceneLibrary.default())
    routes = app.router
    routes.add_get("/", handle_root)
    routes.add_get("/api/version", handle_version)
    routes.add_get("/api/tags", handle_tags)
    routes.add_get("/api/ps", handle_ps)
    routes.add_post("/api/show", handle_show)
    routes.add_post("/api/pull", handle_pull)
    routes.add_post("/api/chat", handle_chat)
    routes.add_post("/api/generate", handle_generate)
    routes.add_post("/api/embed", handle_embed)
    routes.add_post("/api/embeddings", handle_embeddings)
    routes.add_get("/sim/faults", handle_get_faults)
    routes.add_post("/sim/faults", handle_set_faults)
    routes.add_delete("/sim/faults", handle_reset_faults)
    routes.add_get("/sim/stats", handle_stats)
    return app


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A simulator serving on a real socket."""

    url: str
    """Base URL for an Ollama client, e.g. ``http://127.0.0.1:41234``."""
    config: SimulatorConfig
    simulator: Simulator = field(repr=False)

    def set_faults(self, model: str, faults: Faults) -> None:
        """Change a model's fault injection from now on (KeyError for an unknown model)."""
        self.simulator.set_faults(model, faults)

    def reset_faults(self) -> None:
        """Back to the configured faults, and no dictated answers."""
        self.simulator.reset_faults()

    def script(self, model: str, *answers: str) -> None:
        """Dictate the next chat answers of `model`, verbatim (KeyError for an unknown model)."""
        self.simulator.script(model, *answers)

    @property
    def stats(self) -> SimulatorStats:
        return self.simulator.stats()


SHUTDOWN_TIMEOUT_S: Final = 1.0
"""How long stopping waits for answers in flight before cancelling them."""


@contextlib.asynccontextmanager
async def run_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    scenes: SceneLibrary | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator until the block exits; port 0 picks a free port.

    Keyword overrides (seed, time_scale, num_parallel, max_queue, ...) replace config fields;
    without a config the default profiles are used.
    """
    if config is None:
        config = load_config(**overrides)
    else:
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    app = create_app(config, scenes)
    # Cancel a handler when its client goes away (a timed-out request must free its slot),
    # and don't let a stalled answer hold up shutdown.
    runner = web.AppRunner(
        app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        yield RunningSimulator(f"http://{url_host}:{bound_port}", config, app[SIMULATOR])
    finally:
        await runner.cleanup()


# --- Command line (python -m simulator) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CliOptions:
    config: SimulatorConfig
    host: str
    port: int
    log_level: str


def parse_fault(spec: str) -> tuple[str, dict[str, float]]:
    """``MODEL:error_rate=0.1,stall_s=2`` (model names may contain ':' themselves)."""
    model, _, settings = spec.rpartition(":")
    if not model or not settings:
        raise argparse.ArgumentTypeError(f"expected MODEL:name=value[,name=value...], got {spec!r}")
    values: dict[str, float] = {}
    for setting in settings.split(","):
        key, equals, number = setting.partition("=")
        try:
            if not equals:
                raise ValueError
            values[key.strip()] = float(number)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad fault setting {setting!r} in {spec!r}") from None
    return model, values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Vision Tutor's Ollama-compatible simulator: scripted student, teacher and "
        "embedding models over a library of synthetic camera scenes.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=11434, help="port (0 picks a free one)")
    parser.add_argument("--profiles", type=Path, help="model profiles JSON (default: built in)")
    parser.add_argument("--seed", type=int, help="random seed (default: from the profiles)")
    parser.add_argument(
        "--time-scale", type=float, help="multiply simulated durations (0.01 = 100x faster)"
    )
    parser.add_argument(
        "--num-parallel", type=int, help="requests served at once (env OLLAMA_NUM_PARALLEL)"
    )
    parser.add_argument(
        "--max-queue", type=int, help="requests allowed to wait before 503 (env OLLAMA_MAX_QUEUE)"
    )
    parser.add_argument(
        "--ollama-version", help="what /api/version answers (default: from the profiles)"
    )
    parser.add_argument(
        "--drop-format-without-thinking",
        action="store_true",
        help="emulate Ollama 0.20.0-0.21.0: format is ignored when think is false",
    )
    parser.add_argument(
        "--reject-non-vision-images",
        action="store_true",
        help="answer 400 to images for a model without vision (real Ollama drops them)",
    )
    parser.add_argument(
        "--not-pulled",
        action="append",
        default=[],
        metavar="MODEL",
        help="a served model that starts absent until /api/pull fetches it (repeatable)",
    )
    parser.add_argument(
        "--fault",
        type=parse_fault,
        action="append",
        default=[],
        metavar="MODEL:NAME=VALUE,...",
        help=f"inject faults into a model; names: {', '.join(FAULT_FIELDS)} (repeatable)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def _env_int(parser: argparse.ArgumentParser, environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        parser.error(f"{name} must be an integer, got {raw!r}")
    return value or None  # Ollama treats 0 as "choose for me"


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> CliOptions:
    """Parse the command line (exits with status 2 and a message on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    num_parallel = args.num_parallel or _env_int(parser, environ, "OLLAMA_NUM_PARALLEL")
    max_queue = args.max_queue
    if max_queue is None:
        max_queue = _env_int(parser, environ, "OLLAMA_MAX_QUEUE")
    try:
        config = load_config(
            args.profiles,
            seed=args.seed,
            time_scale=args.time_scale,
            num_parallel=num_parallel,
            max_queue=max_queue,
            version=args.ollama_version,
            format_dropped_without_thinking=args.drop_format_without_thinking or None,
            non_vision_images="reject" if args.reject_non_vision_images else None,
            not_pulled=args.not_pulled or None,
        )
    except ValueError as err:
        parser.error(str(err))
    models = dict(config.models)
    for model, values in args.fault:
        profile = config.model(model)
        if profile is None:
            parser.error(f"--fault: unknown model {model!r} (known: {', '.join(models)})")
        try:
            faults = faults_from_mapping(values, base=models[profile.name].faults)
        except ValueError as err:
            parser.error(f"--fault {model}: {err}")
        models[profile.name] = profile.with_faults(faults)
    return CliOptions(replace(config, models=models), args.host, args.port, args.log_level)


async def serve(
    config: SimulatorConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 11434,
    ready: Callable[[RunningSimulator], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (or until ``stop`` is set), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    for stop_signal in stop_signals:
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        async with run_simulator(config, host=host, port=port) as running:
            if ready is not None:
                ready(running)
            await stop.wait()
            _LOGGER.info("Stopping")
    finally:
        for stop_signal in stop_signals:
            loop.remove_signal_handler(stop_signal)
