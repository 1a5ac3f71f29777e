"""Supervisor discovery, against a fake Supervisor on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
import socket
from typing import Any

from aiohttp import web
import pytest

from simulator.server import RunningSimulator
from tests.addon.conftest import (
    SpawnService,
    StartService,
    service_env,
    write_options,
)
from vision_tutor_teacher.discovery import (
    SUPERVISOR_URL_ENV,
    SupervisorAccess,
    announce_until_done,
)

SUPERVISOR_TOKEN = "supervisor-secret"


@dataclass
class FakeSupervisor:
    url: str = ""
    announcements: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    failures_left: int = 0
    info_status: int = 200
    announced: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def supervisor(socket_enabled: None) -> AsyncIterator[FakeSupervisor]:
    fake = FakeSupervisor()

    async def info(request: web.Request) -> web.Response:
        fake.authorizations.append(request.headers.get("Authorization", ""))
        if fake.info_status != 200:
            return web.json_response({"result": "error", "message": "no"}, status=fake.info_status)
        return web.json_response(
            {
                "result": "ok",
                "data": {"hostname": "local-vision-tutor", "slug": "local_vision_tutor"},
            }
        )

    async def discovery(request: web.Request) -> web.Response:
        fake.authorizations.append(request.headers.get("Authorization", ""))
        if fake.failures_left:
            fake.failures_left -= 1
            return web.json_response({"result": "error", "message": "not ready"}, status=503)
        fake.announcements.append(await request.json())
        fake.announced.set()
        return web.json_response({"result": "ok", "data": {"uuid": "abc123"}})

    app = web.Application()
    app.router.add_get("/addons/self/info", info)
    app.router.add_post("/discovery", discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def test_supervisor_access_comes_from_the_environment() -> None:
    assert SupervisorAccess.from_environ({}) is None
    assert SupervisorAccess.from_environ({"SUPERVISOR_TOKEN": " "}) is None
    assert SupervisorAccess.from_environ({"SUPERVISOR_TOKEN": "t"}) == SupervisorAccess(
        "http://supervisor", "t"
    )
    assert SupervisorAccess.from_environ(
        {"SUPERVISOR_TOKEN": "t", SUPERVISOR_URL_ENV: "http://127.0.0.1:9/"}
    ) == SupervisorAccess("http://127.0.0.1:9", "t")


async def test_an_addon_announces_host_port_and_token_and_ingress_is_trusted(
    start_service: StartService, simulator: RunningSimulator, supervisor: FakeSupervisor
) -> None:
    client = await start_service(
        simulator.url, supervisor=SupervisorAccess(supervisor.url, SUPERVISOR_TOKEN)
    )
    async with asyncio.timeout(10):
        await supervisor.announced.wait()

    assert supervisor.announcements == [
        {
            "service": "vision_tutor",
            "config": {
                "host": "local-vision-tutor",
                "port": client.running.port,
                "token": client.token,
            },
        }
    ]
    assert set(supervisor.authorizations) == {f"Bearer {SUPERVISOR_TOKEN}"}
    assert client.running.service.ingress_proxy == "172.30.32.2"


async def test_announcing_retries_then_gives_up_without_failing(
    supervisor: FakeSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    access = SupervisorAccess(supervisor.url, SUPERVISOR_TOKEN)
    supervisor.failures_left = 1
    assert await announce_until_done(access, 8765, "tok", retry_delays_s=(0.0,))
    assert len(supervisor.announcements) == 1

    supervisor.failures_left = 5
    supervisor.info_status = 500  # the hostname falls back to the container's own
    assert not await announce_until_done(access, 8765, "tok", retry_delays_s=(0.0, 0.0))
    assert "Could not announce to Home Assistant" in caplog.text

    unreachable = SupervisorAccess("http://127.0.0.1:9", SUPERVISOR_TOKEN)
    assert not await announce_until_done(unreachable, 8765, "tok", retry_delays_s=())
    supervisor.failures_left = 0
    assert await announce_until_done(access, 8765, "tok", retry_delays_s=())
    assert supervisor.announcements[-1]["config"]["host"] == socket.gethostname()


async def test_the_entry_point_announces_when_the_supervisor_token_is_set(
    spawn_service: SpawnService,
    simulator: RunningSimulator,
    supervisor: FakeSupervisor,
    tmp_path: Path,
) -> None:
    options = write_options(tmp_path / "options.json", simulator.url)
    env = service_env(SUPERVISOR_TOKEN=SUPERVISOR_TOKEN, **{SUPERVISOR_URL_ENV: supervisor.url})

    service = await spawn_service(options, tmp_path / "data", env=env)
    async with asyncio.timeout(10):
        await supervisor.announced.wait()

    (announcement,) = supervisor.announcements
    assert announcement["config"]["port"] == int(service.url.rsplit(":", 1)[1])
    assert announcement["config"]["token"] == (tmp_path / "data" / "token").read_text().strip()
