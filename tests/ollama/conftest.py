"""Fixtures of the tests against a real Ollama.

`real_ollama` is the pinned Ollama built from source (`scripts/ollama-build`) with the test models
of `realollama.models`, started once per test session on a free loopback port, or the server at
VISION_TUTOR_OLLAMA_URL when that is set (the test models are then created on it). Nothing here
skips: without a server these tests fail and say why, as CI must.

`mirror` is the simulator serving the same model names with the same capabilities, so that one
request can be sent to both and the answers compared field by field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import os

import pytest
import pytest_socket

from realollama.models import EMBED, STUDENT, TEACHER, TEXT, ensure_models
from realollama.server import OllamaServer, run_ollama
from simulator.profiles import ModelProfile, SimulatorConfig
from simulator.server import RunningSimulator, run_simulator
from tests.addon.conftest import start_service  # noqa: F401  (fixture for the add-on tests)
from tests.components.conftest import (  # noqa: F401  (fixtures for the Home Assistant tests)
    auto_enable_custom_integrations,
    camera,
    library,
)

IMITATED_VERSION = "0.24.0"


@pytest.fixture(scope="session")
def real_ollama() -> Iterator[OllamaServer]:
    """A real Ollama with the test models, for the whole session."""
    # Home Assistant's test plugin blocks sockets around each test; a session fixture is set up
    # before any test's own socket_enabled, so lift the block for the server's start-up here.
    pytest_socket.enable_socket()
    if url := os.environ.get("VISION_TUTOR_OLLAMA_URL"):
        server = OllamaServer(url=url.rstrip("/"), log_path=os.devnull)  # type: ignore[arg-type]
        ensure_models(server.url)
        yield server
        return
    with run_ollama() as server:
        ensure_models(server.url)
        yield server


def mirror_config() -> SimulatorConfig:
    """The simulator's stand-ins for the real test models: same names, same capabilities."""
    models = {
        STUDENT: ModelProfile(
            name=STUDENT,
            role="student",
            capabilities=("completion", "vision", "tools", "thinking"),
            family="gemma4",
            thinking_latency_ms=50,
        ),
        TEACHER: ModelProfile(
            name=TEACHER, role="teacher", capabilities=("completion", "vision"), family="gemma3"
        ),
        TEXT: ModelProfile(
            name=TEXT, role="student", capabilities=("completion",), family="gemma3"
        ),
        EMBED: ModelProfile(
            name=EMBED, role="embedding", capabilities=("embedding",), family="bert", dimensions=384
        ),
    }
    return SimulatorConfig(models=models, time_scale=0.01, seed=5)


@pytest.fixture
async def mirror(socket_enabled: None) -> AsyncIterator[RunningSimulator]:
    """The simulator with the mirror models, on loopback."""
    async with run_simulator(mirror_config()) as running:
        yield running


@pytest.fixture(autouse=True)
def _sockets(socket_enabled: None) -> None:
    """Every test here talks to servers on loopback."""
