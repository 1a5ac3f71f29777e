"""``python -m vision_tutor_teacher`` as the s6 service runs it: from the add-on folder, options
from a file, state in a data directory; and how it fails when it cannot run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import signal

import aiohttp

from simulator.server import RunningSimulator
from tests.addon.conftest import (
    SpawnService,
    review_body,
    run_entry_point,
    write_options,
)
from vision_tutor_teacher import __version__
from vision_tutor_teacher.__main__ import build_parser
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import RunningService, serve_until_stopped


def test_the_defaults_are_the_addon_paths() -> None:
    args = build_parser().parse_args([])
    assert args.config == Path("/data/options.json")
    assert args.data == Path("/data")
    assert (args.host, args.port) == ("0.0.0.0", 8765)


async def test_the_entry_point_serves_and_stops_cleanly_on_sigterm(
    spawn_service: SpawnService, simulator: RunningSimulator, tmp_path: Path
) -> None:
    options = write_options(tmp_path / "options.json", simulator.url)
    service = await spawn_service(options, tmp_path / "data")
    token = (tmp_path / "data" / "token").read_text().strip()

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        async with session.get(f"{service.url}/api/v1/health") as response:
            health = await response.json()
        async with session.post(
            f"{service.url}/api/v1/reviews", json=review_body("cli")
        ) as response:
            assert response.status == 202
    assert health["version"] == __version__
    assert health["teacher"] == "reachable"

    service.process.send_signal(signal.SIGTERM)
    assert await service.wait() == 0
    assert any("Stopping" in line for line in service.log)
    assert (tmp_path / "data" / "vision_tutor.db").exists()


async def test_invalid_options_exit_2_naming_the_field(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"teacher_url": "ftp://teacher", "queue_limit": 0}))

    status, log = await run_entry_point("--config", str(options), "--data", str(tmp_path))

    assert status == 2
    assert "teacher_url: Value error, must be an http:// or https:// URL" in log
    assert "queue_limit: Input should be greater than or equal to 1" in log


async def test_a_missing_options_file_exits_2(tmp_path: Path) -> None:
    status, log = await run_entry_point(
        "--config", str(tmp_path / "absent.json"), "--data", str(tmp_path)
    )
    assert status == 2
    assert "cannot read options file" in log


async def test_a_data_directory_in_use_or_a_taken_port_exits_3(
    spawn_service: SpawnService, simulator: RunningSimulator, tmp_path: Path
) -> None:
    options = write_options(tmp_path / "options.json", simulator.url)
    running = await spawn_service(options, tmp_path / "data")

    status, log = await run_entry_point(
        "--config", str(options), "--data", str(tmp_path / "data"), "--port", "0"
    )
    assert status == 3
    assert "another Vision Tutor service is using" in log

    port = running.url.rsplit(":", 1)[1]
    status, log = await run_entry_point(
        "--config",
        str(options),
        "--data",
        str(tmp_path / "other"),
        "--host",
        "127.0.0.1",
        "--port",
        port,
    )
    assert status == 3
    assert "Cannot start" in log


async def test_serving_in_process_until_stopped(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    seen: list[str] = []

    def ready(running: RunningService) -> None:
        seen.append(running.url)
        stop.set()

    options = Options(teacher_url=simulator.url)
    await serve_until_stopped(
        options, tmp_path, host="127.0.0.1", port=0, supervisor=None, ready=ready, stop=stop
    )
    assert seen[0].startswith("http://127.0.0.1:")
    assert (tmp_path / "token").exists()
