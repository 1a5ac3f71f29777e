"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

# Imported at module level so that this repository's package, not the test harness's own
# `custom_components` folder, is the one Home Assistant finds.
import custom_components.vision_tutor  # noqa: F401
from simulator.server import RunningSimulator, run_simulator


@pytest.fixture
async def simulator(socket_enabled: None) -> AsyncIterator[RunningSimulator]:
    """An Ollama-compatible simulator on loopback, a hundred times faster than real time.

    Home Assistant's test plugin blocks sockets; ``socket_enabled`` lets this test listen and
    connect on loopback.
    """
    async with run_simulator(time_scale=0.01, seed=1234) as running:
        yield running
