"""The simulator against a real Ollama 0.24.0: the same requests, compared field by field.

Every route and option the integration and the add-on use goes to both servers, with the same model
names and capabilities (tests/ollama/conftest.py). What is compared is what a client can rely on:
status codes, content types, error texts, the JSON shape (every key, recursively, with its type),
and the values that do not depend on model weights (version, capabilities, done reasons, roles).
The only differences allowed are the deliberate ones listed in simulator/README.md; each is pinned
below as exactly the difference it is, so a change on either side shows up here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
import io
import json
from typing import Any

import httpx
from PIL import Image
import pytest

from realollama.models import EMBED, STUDENT, TEACHER, TEXT
from realollama.server import OllamaServer
from simulator.server import RunningSimulator

from .conftest import IMITATED_VERSION


def _jpeg() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 30)).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


IMAGE = _jpeg()
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "safety_flags": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number"},
    },
    "required": ["summary", "safety_flags", "confidence"],
}
SHORT = {"num_predict": 8, "temperature": 0}


def user(text: str, *images: str) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": "user", "content": text}
    if images:
        message["images"] = list(images)
    return [message]


@dataclass(frozen=True)
class Case:
    """One request, and the values (by dotted path) that must be equal besides the shape."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | str | None = None
    values: tuple[str, ...] = ()
    shape: bool = True
    before: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    """Requests sent first to both servers (e.g. to load a model), answers not compared."""


CASES: list[Case] = [
    Case("root", "GET", "/", shape=False),
    Case("version", "GET", "/api/version", values=("version",)),
    Case("tags", "GET", "/api/tags"),
    Case(
        "show student", "POST", "/api/show", {"model": STUDENT}, ("capabilities", "details.family")
    ),
    Case(
        "show teacher", "POST", "/api/show", {"model": TEACHER}, ("capabilities", "details.family")
    ),
    Case("show text model", "POST", "/api/show", {"model": TEXT}, ("capabilities",)),
    Case("show embedding model", "POST", "/api/show", {"model": EMBED}, ("capabilities",)),
    Case("show unknown model", "POST", "/api/show", {"model": "nope:1"}),
    Case("show without model", "POST", "/api/show", {}),
    Case(
        "student: image, schema, think off, logprobs",
        "POST",
        "/api/chat",
        {
            "model": STUDENT,
            "messages": [
                {"role": "system", "content": "Describe the frame."},
                *user("Frame:", IMAGE),
            ],
            "format": SCHEMA,
            "think": False,
            "logprobs": True,
            "options": {"temperature": 0, "num_predict": 256},
            "keep_alive": "30m",
            "stream": False,
        },
        ("done", "done_reason", "message.role"),
    ),
    Case(
        "student streamed (the client's default)",
        "POST",
        "/api/chat",
        {"model": STUDENT, "messages": user("Hi", IMAGE), "think": False, "options": SHORT},
        ("first.done", "last.done", "last.done_reason"),
    ),
    Case(
        "teacher: image, schema, think off",
        "POST",
        "/api/chat",
        {
            "model": TEACHER,
            "messages": user("Review this frame.", IMAGE),
            "format": SCHEMA,
            "think": False,
            "options": {"temperature": 0, "num_predict": 48},
            "stream": False,
        },
        ("done", "message.role"),
    ),
    Case(
        "text model: schema and top logprobs",
        "POST",
        "/api/chat",
        {
            "model": TEXT,
            "messages": user("A person holds a lighter with a visible flame. Any fire?"),
            "format": SCHEMA,
            "logprobs": True,
            "top_logprobs": 2,
            "options": SHORT,
            "stream": False,
        },
        ("done", "done_reason", "message.role"),
    ),
    Case(
        "text model streamed",
        "POST",
        "/api/chat",
        {"model": TEXT, "messages": user("Say hi"), "options": {"num_predict": 3}},
        ("first.done", "last.done", "last.done_reason"),
    ),
    Case(
        "generate loads the model on an empty prompt",
        "POST",
        "/api/generate",
        {"model": TEXT, "prompt": "", "stream": False},
        ("done", "done_reason"),
    ),
    Case(
        "embed",
        "POST",
        "/api/embed",
        {"model": EMBED, "input": ["a kitchen", "a fire"]},
        ("model",),
    ),
    Case(
        "ps",
        "GET",
        "/api/ps",
        before=(("POST", "/api/generate", {"model": TEXT, "prompt": "", "stream": False}),),
    ),
    # Errors
    Case(
        "chat: unknown model",
        "POST",
        "/api/chat",
        {"model": "nope:1", "messages": user("x"), "stream": False},
    ),
    Case("chat: no model", "POST", "/api/chat", {"messages": user("x"), "stream": False}),
    Case(
        "chat: think on a model without thinking",
        "POST",
        "/api/chat",
        {"model": TEACHER, "messages": user("x"), "think": True, "stream": False},
    ),
    Case(
        "chat: image to a text-only model",
        "POST",
        "/api/chat",
        {
            "model": TEXT,
            "messages": user("What is this?", IMAGE),
            "options": SHORT,
            "stream": False,
        },
    ),
    Case(
        "chat: bad format",
        "POST",
        "/api/chat",
        {"model": TEXT, "messages": user("x"), "format": "yaml", "stream": False},
    ),
    Case("chat: malformed body", "POST", "/api/chat", "{not json"),
    Case("chat: truncated body", "POST", "/api/chat", '{"model": "x"'),
    Case(
        "chat: wrong field type",
        "POST",
        "/api/chat",
        {"model": TEXT, "messages": "x", "stream": False},
    ),
    Case(
        "chat: embedding model",
        "POST",
        "/api/chat",
        {"model": EMBED, "messages": user("x"), "stream": False},
    ),
    Case("embed: chat model", "POST", "/api/embed", {"model": TEXT, "input": "a"}),
    Case("embed: unknown model", "POST", "/api/embed", {"model": "nope:1", "input": "a"}),
    Case("unknown route", "GET", "/api/nothing", shape=False),
]


@dataclass
class Answer:
    """What a client can observe of one response."""

    status: int
    content_type: str
    text: str
    json: Any = None
    values: dict[str, Any] = field(default_factory=dict)


def skeleton(value: Any) -> Any:
    """Keys and value types, recursively; a list by its first element."""
    if isinstance(value, dict):
        return {key: skeleton(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [skeleton(value[0])] if value else []
    return type(value).__name__


def lookup(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        document = document.get(part) if isinstance(document, dict) else None
    return sorted(document) if isinstance(document, list) else document


async def ask(url: str, case: Case) -> Answer:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        for method, path, body in case.before:
            (await client.request(method, path, json=body)).raise_for_status()
        if isinstance(case.body, str):
            response = await client.request(case.method, case.path, content=case.body)
        elif case.body is None:
            response = await client.request(case.method, case.path)
        else:
            response = await client.request(case.method, case.path, json=case.body)
    answer = Answer(response.status_code, response.headers.get("content-type", ""), response.text)
    lines = [line for line in response.text.splitlines() if line.strip()]
    try:
        chunks = [json.loads(line) for line in lines]
    except ValueError:
        return answer
    if len(chunks) == 1:
        answer.json = chunks[0]
    elif chunks:
        # A stream: its first and last chunks (every middle chunk has the first one's shape).
        answer.json = {"first": chunks[0], "last": chunks[-1]}
    answer.values = {path: lookup(answer.json, path) for path in case.values}
    return answer


def differences(real: Answer, sim: Answer, case: Case) -> dict[str, tuple[Any, Any]]:
    """Everything observable that differs, by name."""
    found: dict[str, tuple[Any, Any]] = {}
    if real.status != sim.status:
        found["status"] = (real.status, sim.status)
    if real.content_type != sim.content_type:
        found["content-type"] = (real.content_type, sim.content_type)
    real_error = real.json.get("error") if isinstance(real.json, dict) else None
    sim_error = sim.json.get("error") if isinstance(sim.json, dict) else None
    if real_error != sim_error:
        found["error"] = (real_error, sim_error)
    if not case.shape and real.json is None and real.text != sim.text:
        found["text"] = (real.text, sim.text)
    for path in case.values:
        if real.values.get(path) != sim.values.get(path):
            found[path] = (real.values.get(path), sim.values.get(path))
    if case.shape:
        found.update(shape_differences(skeleton(real.json), skeleton(sim.json), "body"))
    return found


def shape_differences(real: Any, sim: Any, where: str) -> dict[str, tuple[Any, Any]]:
    if isinstance(real, dict) and isinstance(sim, dict):
        found: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(real) | set(sim)):
            if key not in sim:
                found[f"{where}.{key}"] = ("present", "missing")
            elif key not in real:
                found[f"{where}.{key}"] = ("missing", "present")
            else:
                found.update(shape_differences(real[key], sim[key], f"{where}.{key}"))
        return found
    if isinstance(real, list) and isinstance(sim, list) and real and sim:
        return shape_differences(real[0], sim[0], f"{where}[]")
    return {} if real == sim else {where: (real, sim)}


# The deliberate differences (simulator/README.md, "Where the simulator knowingly differs"): by case,
# the part of the answer allowed to differ. `model_info` is the model file's own metadata (every
# hyper-parameter of its architecture, and of how it was made): the simulator names a few general
# keys, which must have the same types where the real file has them too.
DELIBERATE: dict[str, str] = {
    "show student": "body.model_info.",
    "show teacher": "body.model_info.",
    "show text model": "body.model_info.",
    "show embedding model": "body.model_info.",
}
PRESENCE = {("present", "missing"), ("missing", "present")}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_same_answer_as_real_ollama(
    case: Case, real_ollama: OllamaServer, mirror: RunningSimulator
) -> None:
    real = await ask(real_ollama.url, case)
    sim = await ask(mirror.url, case)
    found = differences(real, sim, case)
    allowed = DELIBERATE.get(case.name)
    if allowed:
        found = {
            name: diff
            for name, diff in found.items()
            if not (name.startswith(allowed) and diff in PRESENCE)
        }
    assert found == {}, f"{case.name}: real vs simulator: {found}"


async def test_the_simulator_says_which_version_it_imitates(
    real_ollama: OllamaServer, mirror: RunningSimulator
) -> None:
    real = await ask(real_ollama.url, Case("version", "GET", "/api/version"))
    assert real.json == {"version": IMITATED_VERSION}
    sim = await ask(mirror.url, Case("version", "GET", "/api/version"))
    assert sim.json == {"version": IMITATED_VERSION}
