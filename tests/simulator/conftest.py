"""Fixtures for the simulator's HTTP tests: a real server on loopback and real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import replace
from typing import Any

import httpx
import ollama
import pytest

from simulator.profiles import ModelProfile, SimulatorConfig, load_config
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator

TIME_SCALE = 0.01
"""A hundred times faster than real time: a student answer takes about a millisecond."""
SEED = 1234

STUDENT = "gemma4:e2b"
TEACHER = "gemma4:26b"
EMBEDDER = "embeddinggemma"
TEXT_ONLY = "textonly:1b"
"""A completion model without vision or thinking, added for the capability checks."""

type SimulatorFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningSimulator]]


def make_config(**overrides: Any) -> SimulatorConfig:
    """The shipped profiles plus a text-only model, fast and seeded."""
    config = load_config(**{"time_scale": TIME_SCALE, "seed": SEED, **overrides})
    text_only = ModelProfile(
        name=TEXT_ONLY,
        role="student",
        capabilities=("completion",),
        family="gemma3",
        parameter_size="1B",
        size_bytes=815_319_791,
        latency_ms=60,
    )
    return replace(config, models={**config.models, TEXT_ONLY: text_only})


@pytest.fixture(scope="session")
def scenes() -> SceneLibrary:
    return SceneLibrary.default()


@pytest.fixture
def start_simulator(scenes: SceneLibrary, socket_enabled: None) -> SimulatorFactory:
    """Start a simulator with config overrides: ``async with start_simulator(seed=7) as sim``.

    Home Assistant's test plugin blocks sockets; ``socket_enabled`` lifts that for the test,
    while connections stay limited to 127.0.0.1.
    """

    def start(**overrides: Any) -> contextlib.AbstractAsyncContextManager[RunningSimulator]:
        return run_simulator(make_config(**overrides), scenes=scenes)

    return start


@pytest.fixture
async def simulator(start_simulator: SimulatorFactory) -> AsyncIterator[RunningSimulator]:
    """A simulator in this process on 127.0.0.1 (random port), time scale 0.01."""
    async with start_simulator() as running:
        yield running


@pytest.fixture
async def client(simulator: RunningSimulator) -> AsyncIterator[ollama.AsyncClient]:
    """The official Ollama client, pointed at the simulator."""
    async with ollama.AsyncClient(host=simulator.url) as ollama_client:
        yield ollama_client


@pytest.fixture
async def http(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client, for what the Ollama client will not send or does not show."""
    async with httpx.AsyncClient(base_url=simulator.url) as raw_client:
        yield raw_client
