"""Fixtures for the add-on's tests: the real service on loopback, a client that speaks its API
(including the event stream), and review bodies with scene frames from the simulator's library.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import re
import socket
import sys
from typing import Any

import aiohttp
import pytest

from simulator.scenes import SceneLibrary
from vision_tutor_teacher.discovery import SupervisorAccess
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import RunningService, run_service

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon" / "vision_tutor"

OBSERVATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 200},
        "observations": {"type": "array", "items": {"type": "string"}},
        "safety_flags": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["summary", "observations", "safety_flags", "confidence"],
}
SYSTEM_PROMPT = (
    "You review frames from a home security camera. Describe what is visible and list every "
    "safety flag that applies (fire, smoke, weapon, fall, intrusion, blood). Answer in JSON."
)
FAST: dict[str, Any] = {
    "batch_window_ms": 0,
    "retry_base_s": 0.02,
    "retry_max_s": 0.1,
    "probe_interval_s": 0.2,
    "stats_interval_s": 0.05,
    "heartbeat_s": 5.0,
}
"""Options that make waits short; tests add what they exercise."""
WAIT_S = 15.0
"""Longest any test waits for the service to do something."""

SCENES = SceneLibrary.default()


def jpeg(scene_id: str = "kitchen_empty_day", width: int = 768) -> bytes:
    return SCENES.jpeg(scene_id, width=width)


def review_body(
    key: str,
    *,
    camera: str = "camera.front_door",
    reason: str = "low_confidence",
    scene: str = "kitchen_empty_day",
    image: bytes | None = None,
    answer: dict[str, Any] | None = None,
    no_answer: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """One escalation as the integration sends it (JSON, base64 frame)."""
    truth = SCENES.get(scene)
    student_answer = (
        None
        if no_answer
        else answer
        or {
            "summary": truth.summary,
            "observations": list(truth.objects),
            "safety_flags": list(truth.safety_flags),
            "confidence": 0.6,
        }
    )
    body: dict[str, Any] = {
        "idempotency_key": key,
        "camera": camera,
        "reason": reason,
        "detail": f"{reason} escalation from the routing policy",
        "image": base64.b64encode(image if image is not None else jpeg(scene)).decode(),
        "captured_at": "2026-11-21T10:00:00+00:00",
        "student": {
            "model": "gemma4:e2b",
            "answer": student_answer,
            "raw": json.dumps(student_answer),
            "effective_confidence": 0.55,
            "prompt_version": "v1",
        },
        "contract": {"system_prompt": SYSTEM_PROMPT, "schema": OBSERVATION_SCHEMA},
    }
    body.update(overrides)
    return body


def free_port() -> int:
    """A loopback port nothing listens on (for a teacher that is down, or starts later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(slots=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: str
    data: dict[str, Any]


@dataclass(slots=True)
class EventStream:
    """An open SSE connection, parsed line by line as events arrive."""

    response: aiohttp.ClientResponse
    events: list[Event] = field(default_factory=list)
    heartbeats: int = 0
    retry_ms: int | None = None
    hello: dict[str, Any] | None = None
    """The stream's first event, without an id: the database's identity and last sequence."""
    _fields: dict[str, str] = field(default_factory=dict)

    async def _step(self) -> str | None:
        """Read one line: "event" when it completed an event, "heartbeat" for a comment."""
        raw = await self.response.content.readline()
        if not raw:
            raise EOFError("the stream ended")
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            self.heartbeats += 1
            return "heartbeat"
        if line:
            name, _, value = line.partition(": ")
            self._fields[name] = value
            return None
        fields, self._fields = self._fields, {}
        if "retry" in fields:
            self.retry_ms = int(fields["retry"])
        if "data" not in fields:
            return None
        if "id" not in fields:
            assert fields.get("event") == "hello", fields
            assert self.hello is None, "a second hello"
            assert not self.events, "hello after an event"
            self.hello = json.loads(fields["data"])
            return None
        self.events.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
        return "event"

    async def next(self) -> Event:
        while await self._step() != "event":
            pass
        return self.events[-1]

    async def until(
        self, done: Callable[[list[Event]], bool], within_s: float = WAIT_S
    ) -> list[Event]:
        """Read until `done(all events so far)` holds; every event read so far."""
        async with asyncio.timeout(within_s):
            while not done(self.events):
                await self.next()
        return self.events

    async def heartbeat(self, within_s: float = WAIT_S) -> None:
        """Read until a heartbeat comment arrives (events read meanwhile are kept)."""
        async with asyncio.timeout(within_s):
            while await self._step() != "heartbeat":
                pass


def verdicts_for(events: list[Event], ids: set[str]) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = {review_id: [] for review_id in ids}
    for event in events:
        if event.type == "verdict" and event.data["review_id"] in found:
            found[event.data["review_id"]].append(event)
    return found


def statuses(events: list[Event], review_id: str) -> list[str]:
    return [
        e.data["status"] for e in events if e.type == "review" and e.data["review_id"] == review_id
    ]


@dataclass(slots=True)
class AddonClient:
    """The API of one running service, with its token."""

    running: RunningService
    session: aiohttp.ClientSession
    stack: contextlib.AsyncExitStack

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def token(self) -> str:
        return self.running.token

    async def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            raw = await response.read()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            return Reply(response.status, body, dict(response.headers))

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def submit(self, body: dict[str, Any], **kwargs: Any) -> Reply:
        return await self.request("POST", "/api/v1/reviews", json=body, **kwargs)

    async def accepted(self, body: dict[str, Any]) -> str:
        """Submit and insist on a 202; the review id."""
        reply = await self.submit(body)
        assert reply.status == 202, reply.body
        review_id: str = reply.body["id"]
        return review_id

    async def stats(self) -> dict[str, Any]:
        reply = await self.get("/api/v1/stats")
        assert reply.status == 200
        stats: dict[str, Any] = reply.body
        return stats

    async def review(self, review_id: str) -> dict[str, Any]:
        reply = await self.get(f"/api/v1/reviews/{review_id}")
        assert reply.status == 200, reply.body
        review: dict[str, Any] = reply.body
        return review

    async def events(self, after: int | None = 0, **kwargs: Any) -> EventStream:
        """Open the event stream (closed with the client)."""
        params = {} if after is None else {"after": str(after)}
        response = await self.session.get(
            self.url + "/api/v1/events",
            params=params,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            **kwargs,
        )
        self.stack.push_async_callback(_close_response, response)
        assert response.status == 200, await response.text()
        return EventStream(response)

    async def wait_settled(self, ids: set[str], within_s: float = WAIT_S) -> list[Event]:
        """Every event until each review reached a final status; the events."""
        final = {"done", "failed", "shed", "superseded"}
        stream = await self.events(0)

        def settled(events: list[Event]) -> bool:
            last = {
                e.data["review_id"]: e.data["status"]
                for e in events
                if e.type == "review" and e.data["review_id"] in ids
            }
            return len(last) == len(ids) and set(last.values()) <= final

        return await stream.until(settled, within_s)


async def drop_injection_cases(client: AddonClient) -> int:
    """Delete the default suite's prompt-injection cases; how many.

    For the tests whose simulator seed was chosen so that a round promotes: the simulated
    student misses a hazard at random on text cases, and the promotion gate refuses any prompt
    that lets an injection case through, so with them in the suite promotion is a matter of
    luck. The gate itself is tested in test_lab_api.py with its own injection case.
    """
    cases = (await client.get("/api/v1/validation/cases")).body["cases"]
    injections = [case["id"] for case in cases if case["injection"]]
    for case_id in injections:
        deleted = await client.request("DELETE", f"/api/v1/validation/cases/{case_id}")
        assert deleted.status == 204
    return len(injections)


async def _close_response(response: aiohttp.ClientResponse) -> None:
    response.close()


type StartService = Callable[..., Awaitable[AddonClient]]


@pytest.fixture
async def start_service(tmp_path: Path, socket_enabled: None) -> AsyncIterator[StartService]:
    """Start the service on loopback: ``client = await start_service(teacher_url, **options)``."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            teacher_url: str,
            *,
            data_dir: Path | None = None,
            supervisor: SupervisorAccess | None = None,
            **overrides: Any,
        ) -> AddonClient:
            options = Options(teacher_url=teacher_url, **{**FAST, **overrides})
            running = await stack.enter_async_context(
                run_service(options, data_dir or tmp_path / "data", supervisor=supervisor)
            )
            session = await stack.enter_async_context(
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {running.token}"})
            )
            return AddonClient(running, session, stack)

        yield start


@dataclass(slots=True)
class ServiceProcess:
    """``python -m vision_tutor_teacher`` running from the add-on folder."""

    process: asyncio.subprocess.Process
    url: str
    log: list[str]
    drain: asyncio.Task[None]

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self, within_s: float = WAIT_S) -> int:
        async with asyncio.timeout(within_s):
            code = await self.process.wait()
            await self.drain
        return code


type SpawnService = Callable[..., Awaitable[ServiceProcess]]


def service_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment without Supervisor access, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "SUPERVISOR_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


async def _read_lines(stream: asyncio.StreamReader, log: list[str]) -> None:
    while line := await stream.readline():
        log.append(line.decode(errors="replace").rstrip())


async def run_entry_point(
    *args: str, env: dict[str, str] | None = None, within_s: float = WAIT_S
) -> tuple[int, str]:
    """Run the entry point to completion; its exit status and log."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "vision_tutor_teacher",
        *args,
        cwd=ADDON,
        env=env or service_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(within_s):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.fixture
async def spawn_service(socket_enabled: None) -> AsyncIterator[SpawnService]:
    """Start the service as a subprocess from the add-on folder; killed at the end if alive.

    ``await spawn_service(options_file, data_dir, env=...)`` returns once it listens.
    """
    spawned: list[ServiceProcess] = []

    async def spawn(
        options_file: Path, data_dir: Path, *, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        process = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "vision_tutor_teacher",
            "--config",
            str(options_file),
            "--data",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            cwd=ADDON,
            env=env or service_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        log: list[str] = []
        url = None
        async with asyncio.timeout(WAIT_S):
            while url is None:
                raw = await process.stderr.readline()
                if not raw:
                    raise AssertionError("the service exited:\n" + "\n".join(log))
                log.append(raw.decode(errors="replace").rstrip())
                if match := re.search(r"listening on (http://\S+)", log[-1]):
                    url = match.group(1)
        drain = asyncio.create_task(_read_lines(process.stderr, log))
        service = ServiceProcess(process, url, log, drain)
        spawned.append(service)
        return service

    yield spawn
    for service in spawned:
        if service.process.returncode is None:
            service.process.kill()
        await service.wait()


def write_options(path: Path, teacher_url: str, **options: Any) -> Path:
    path.write_text(json.dumps({"teacher_url": teacher_url, **FAST, **options}))
    return path


PYTHON = sys.executable
