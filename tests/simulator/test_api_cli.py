"""``python -m simulator``: argument parsing, serving until stopped, and the real process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

import httpx
import ollama
import pytest

from simulator.profiles import DEFAULT_PROFILES, Faults
from simulator.server import RunningSimulator, parse_args, serve
from tests.simulator.conftest import EMBEDDER, STUDENT, TEACHER

REPO = Path(__file__).resolve().parents[2]


def test_defaults_serve_the_shipped_profiles_on_ollamas_port() -> None:
    options = parse_args([], environ={})

    assert (options.host, options.port) == ("127.0.0.1", 11434)
    assert set(options.config.models) == {STUDENT, TEACHER, EMBEDDER}
    assert options.config.time_scale == 1.0  # real time for people trying it out
    assert options.config.num_parallel == 1
    assert options.config.max_queue == 512
    assert options.log_level == "INFO"


def test_options_override_the_profiles() -> None:
    options = parse_args(
        [
            "--host=0.0.0.0",
            "--port=8080",
            "--seed=7",
            "--time-scale=0.01",
            "--num-parallel=4",
            "--max-queue=2",
            "--log-level=DEBUG",
        ],
        environ={},
    )

    config = options.config
    assert (options.host, options.port, options.log_level) == ("0.0.0.0", 8080, "DEBUG")
    assert (config.seed, config.time_scale, config.num_parallel, config.max_queue) == (
        7,
        0.01,
        4,
        2,
    )


def test_ollamas_environment_variables_are_fallbacks() -> None:
    environ = {"OLLAMA_NUM_PARALLEL": "3", "OLLAMA_MAX_QUEUE": "9"}

    from_env = parse_args([], environ=environ).config
    from_cli = parse_args(["--num-parallel=2", "--max-queue=0"], environ=environ).config
    auto = parse_args([], environ={"OLLAMA_NUM_PARALLEL": "0"}).config

    assert (from_env.num_parallel, from_env.max_queue) == (3, 9)
    assert (from_cli.num_parallel, from_cli.max_queue) == (2, 0)
    assert auto.num_parallel == 1  # 0 means "choose for me", as in Ollama


def test_faults_from_the_command_line() -> None:
    options = parse_args(
        [
            "--fault",
            "gemma4:e2b:error_rate=0.1,stall_s=2",
            "--fault",
            "gemma4:e2b:garbage_rate=0.5",
            "--fault",
            "embeddinggemma:midstream_error_rate=1",
        ],
        environ={},
    )

    models = options.config.models
    assert models[STUDENT].faults == Faults(error_rate=0.1, stall_s=2.0, garbage_rate=0.5)
    assert models[EMBEDDER].faults == Faults(midstream_error_rate=1.0)
    assert models[TEACHER].faults == Faults()


def test_faults_from_a_profiles_file(tmp_path: Path) -> None:
    profiles = json.loads(DEFAULT_PROFILES.read_text(encoding="utf-8"))
    profiles["models"][TEACHER]["faults"] = {"error_rate": 0.25}
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(profiles), encoding="utf-8")

    options = parse_args(["--profiles", str(path), "--fault", "gemma4:26b:stall_s=1"], environ={})

    assert options.config.models[TEACHER].faults == Faults(error_rate=0.25, stall_s=1.0)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--fault", "nope:error_rate=1"], {}, "unknown model 'nope'"),
        (["--fault", "gemma4:e2b:error_rate=2"], {}, "between 0 and 1"),
        (["--fault", "gemma4:e2b:bogus=1"], {}, "unknown fault 'bogus'"),
        (["--fault", "gemma4:e2b:error_rate"], {}, "bad fault setting"),
        (["--fault", "error_rate=1"], {}, "expected MODEL:name=value"),
        (["--profiles", "/nonexistent/profiles.json"], {}, "cannot read simulator profiles"),
        ([], {"OLLAMA_MAX_QUEUE": "lots"}, "OLLAMA_MAX_QUEUE must be an integer"),
        (["--port", "http"], {}, "invalid int value"),
    ],
)
def test_bad_arguments_exit_with_status_2_and_say_why(
    argv: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv, environ=environ)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


async def test_serve_runs_until_stopped(socket_enabled: None) -> None:
    config = parse_args(["--time-scale=0.01"], environ={}).config
    stop = asyncio.Event()
    started: asyncio.Future[RunningSimulator] = asyncio.get_running_loop().create_future()

    server = asyncio.create_task(
        serve(config, host="127.0.0.1", port=0, ready=started.set_result, stop=stop)
    )
    running = await asyncio.wait_for(started, timeout=10)
    async with ollama.AsyncClient(host=running.url) as client:
        response = await client.generate(STUDENT, "hello", think=False)
    stop.set()
    await asyncio.wait_for(server, timeout=5)

    assert response.done
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(running.url)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_command_serves_until_sigterm(socket_enabled: None) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--time-scale", "0.01"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        version = None
        deadline = time.monotonic() + 30
        while version is None and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                version = httpx.get(f"{url}/api/version", timeout=1).json()["version"]
            except httpx.TransportError:
                time.sleep(0.1)
        assert version == "0.24.0"
        answer = httpx.post(
            f"{url}/api/generate",
            json={"model": STUDENT, "prompt": "hi", "stream": False, "think": False},
            timeout=10,
        )
        assert answer.json()["done"] is True

        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert url in stdout
    assert "GET /api/version 200" in stderr  # one log line per request
    assert "POST /api/generate 200" in stderr


def test_a_busy_port_is_reported_not_raised(socket_enabled: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "simulator", "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
