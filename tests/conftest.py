"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import hashlib
import os
from pathlib import Path
import subprocess

import pytest

# Imported at module level so that this repository's package, not the test harness's own
# `custom_components` folder, is the one Home Assistant finds.
import custom_components.vision_tutor  # noqa: F401
from simulator.server import RunningSimulator, run_simulator


@pytest.fixture
def hass_config_dir(hass_tmp_config_dir: str) -> str:
    """Home Assistant's configuration folder, the test's own: the integration writes there
    (its event history), and the test harness's default is a folder of the shared venv."""
    return hass_tmp_config_dir


@pytest.fixture
async def simulator(socket_enabled: None) -> AsyncIterator[RunningSimulator]:
    """An Ollama-compatible simulator on loopback, a hundred times faster than real time.

    Home Assistant's test plugin blocks sockets; ``socket_enabled`` lets this test listen and
    connect on loopback.
    """
    async with run_simulator(time_scale=0.01, seed=1234) as running:
        yield running


def tracked_changes(root: Path) -> dict[str, str] | None:
    """Tracked files that differ from the index, with a hash of their content; None without git."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--modified", "--deleted", "-z"],
            capture_output=True,
            check=True,
        ).stdout.decode()
    except OSError, subprocess.CalledProcessError:
        return None
    changes: dict[str, str] = {}
    for name in filter(None, listed.split("\0")):
        path = root / name
        changes[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
    return changes


@pytest.fixture(scope="session", autouse=True)
def no_tracked_file_is_written() -> Iterator[None]:
    """The test suite writes nothing into the repository's tracked files (e.g. screenshots, a
    configuration folder): compared before and after the run, whatever was already edited.

    `VISION_TUTOR_SCREENSHOTS` asks for screenshots on purpose; the folder it names is left out.
    """
    root = Path(__file__).parents[1]
    before = tracked_changes(root)
    yield
    after = tracked_changes(root)
    if before is None or after is None:
        return  # not a git checkout: nothing to compare with
    wanted = os.environ.get("VISION_TUTOR_SCREENSHOTS")
    allowed = (root / wanted).resolve() if wanted else None
    written = sorted(
        name
        for name, digest in after.items()
        if before.get(name) != digest
        and not (allowed is not None and (root / name).resolve().is_relative_to(allowed))
    )
    assert not written, f"the tests wrote into tracked files: {written}"
