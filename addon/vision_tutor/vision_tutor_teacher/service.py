"""The service assembled: its parts (`vision_tutor_teacher.core`) behind the web server.

`run_service` is what both the entry point (``python -m vision_tutor_teacher``) and the tests
use, so the tests exercise the same start-up and shut-down as the add-on. Nothing imports this
module back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass
import logging
from pathlib import Path
import signal
from typing import Final

from aiohttp import web

from .api.app import create_app
from .core import TeacherService
from .discovery import SupervisorAccess, announce_until_done
from .options import Options

_LOGGER = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class RunningService:
    url: str
    """Base URL, e.g. ``http://127.0.0.1:8765``."""
    port: int
    service: TeacherService

    @property
    def token(self) -> str:
        return self.service.token


@contextlib.asynccontextmanager
async def run_service(
    options: Options,
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    supervisor: SupervisorAccess | None = None,
) -> AsyncIterator[RunningService]:
    """Serve until the block exits; port 0 picks a free port."""
    service = await TeacherService.start(options, data_dir, supervisor=supervisor)
    runner = web.AppRunner(
        create_app(service),
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=_LOGGER if options.log_level == "debug" else None,
    )
    announcing: asyncio.Task[bool] | None = None
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        url_host = f"[{host}]" if ":" in host else host
        # Listening on every address: loopback is the address a local client can use.
        url_host = "127.0.0.1" if host in ("0.0.0.0", "") else url_host
        if supervisor is not None:
            announcing = asyncio.create_task(
                announce_until_done(supervisor, bound_port, service.token),
                name="vision-tutor-discovery",
            )
        yield RunningService(f"http://{url_host}:{bound_port}", bound_port, service)
    finally:
        if announcing is not None:
            announcing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcing
        service.events.close()
        await runner.cleanup()
        await service.stop()


async def serve_until_stopped(
    options: Options,
    data_dir: Path,
    *,
    host: str,
    port: int,
    supervisor: SupervisorAccess | None,
    ready: Callable[[RunningService], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or `stop`), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    for stop_signal in stop_signals:
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        async with run_service(
            options, data_dir, host=host, port=port, supervisor=supervisor
        ) as running:
            if ready is not None:
                ready(running)
            await stop.wait()
            _LOGGER.info("Stopping")
    finally:
        for stop_signal in stop_signals:
            loop.remove_signal_handler(stop_signal)
