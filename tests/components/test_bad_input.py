"""Bad input gets a clear answer and loses nothing: broken cameras, huge frames, a host gone."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
import io
import logging

import numpy as np
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from custom_components.vision_tutor.const import CONF_STUDENT_MODEL, DOMAIN
from custom_components.vision_tutor.coordinator import UNREACHABLE_REPAIR_AFTER
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator

from .conftest import CAMERA_ENTITY, ENTRY_ID, SceneCamera, make_entry
from .helpers import (
    CAMERA_ENTITIES,
    CONFIDENCE,
    CONNECTIVITY,
    ESCALATIONS_PER_HOUR,
    OBSERVATION,
    PROMPT_VERSION,
    SAFETY,
    chat_requests,
    coordinator,
    next_frame,
    routine,
    setup,
)

CAMERA_LOGGER = "custom_components.vision_tutor.coordinator"
ERROR_LOG = "Error fetching vision_tutor camera.front_door data"
RECOVERED_LOG = "Fetching vision_tutor camera.front_door data recovered"


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CAMERA_LOGGER and text in r.getMessage()]


def _assert_camera_unavailable(hass: HomeAssistant) -> None:
    for entity_id in CAMERA_ENTITIES:
        assert hass.states.get(entity_id).state == STATE_UNAVAILABLE, entity_id


@pytest.fixture(scope="module")
def big_jpeg(library: SceneLibrary) -> bytes:
    """A 6400x3600 photo-like JPEG of a routine scene, about 20 MB (sensor noise, quality 97)."""
    scene = routine(library)
    pixels = np.asarray(library.image(scene.id).resize((6400, 3600)), dtype=np.int16)
    noise = np.random.default_rng(0).integers(-40, 40, pixels.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=97)
    return out.getvalue()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "Unable to get image"),
        (b"<html><body>Please log in</body></html>", "is not an image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 64, "is not an image"),
    ],
    ids=["no_image", "html", "truncated_jpeg"],
)
async def test_a_camera_without_a_usable_image_is_unavailable_logged_once(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    caplog: pytest.LogCaptureFixture,
    payload: bytes | None,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger=CAMERA_LOGGER)
    requests = chat_requests(simulator.stats)
    if payload is None:
        camera.broken = True
    else:
        camera.payload = payload

    for _ in range(3):
        await next_frame(hass, entry)
        _assert_camera_unavailable(hass)

    errors = _messages(caplog, ERROR_LOG)
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert f"Could not get a usable frame from {CAMERA_ENTITY}" in errors[0].getMessage()
    assert reason in errors[0].getMessage()
    assert chat_requests(simulator.stats) == requests, "nothing was sent to the student"
    # The hub keeps working.
    assert hass.states.get(CONNECTIVITY).state == STATE_ON
    assert hass.states.get(PROMPT_VERSION).state == "builtin"

    camera.broken = False
    camera.show(camera.scene_id)
    for _ in range(2):
        await next_frame(hass, entry)
    assert hass.states.get(OBSERVATION).state != STATE_UNAVAILABLE
    assert hass.states.get(SAFETY).state == STATE_OFF
    recovered = _messages(caplog, RECOVERED_LOG)
    assert len(recovered) == 1
    assert recovered[0].levelno == logging.INFO
    assert len(_messages(caplog, ERROR_LOG)) == 1


async def test_a_20_mb_frame_is_scaled_down_and_analysed(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    big_jpeg: bytes,
) -> None:
    assert 19e6 < len(big_jpeg) < 25 * 1024 * 1024
    requests = chat_requests(simulator.stats)
    camera.payload = big_jpeg

    await coordinator(entry).async_analyse_now()
    await hass.async_block_till_done()

    assert chat_requests(simulator.stats) == requests + 1
    # The student saw the scene, at the configured width.
    assert simulator.stats.scenes[routine(library).id] == 2
    analysis = coordinator(entry).data.analysis
    assert (analysis.frame.width, analysis.frame.height) == (768, 432)
    assert len(analysis.frame.jpeg) < 500_000
    observation = hass.states.get(OBSERVATION)
    assert observation.state not in (STATE_UNAVAILABLE, "")
    assert not observation.state.startswith("Student error")


async def test_a_frame_over_25_mb_is_refused_with_its_size(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    caplog: pytest.LogCaptureFixture,
) -> None:
    requests = chat_requests(simulator.stats)
    jpeg = library.jpeg(routine(library).id)
    camera.payload = jpeg + b"\0" * (26 * 1024 * 1024 - len(jpeg))

    await next_frame(hass, entry)

    _assert_camera_unavailable(hass)
    (error,) = _messages(caplog, ERROR_LOG)
    assert "the camera image is 27 MB, over the 25 MB limit" in error.getMessage()
    assert chat_requests(simulator.stats) == requests

    with pytest.raises(HomeAssistantError, match="over the 25 MB limit"):
        await hass.services.async_call(
            DOMAIN, "analyze", {"camera": CAMERA_ENTITY}, blocking=True, return_response=True
        )


type SimulatorFactory = Callable[..., AbstractAsyncContextManager[RunningSimulator]]


@pytest.fixture
def own_simulator(socket_enabled: None) -> SimulatorFactory:
    """A simulator the test can stop and start again (on the same port)."""

    def start(port: int = 0) -> AbstractAsyncContextManager[RunningSimulator]:
        return run_simulator(time_scale=0.01, seed=1234, port=port)

    return start


async def test_a_student_host_that_refuses_connections(
    hass: HomeAssistant,
    own_simulator: SimulatorFactory,
    camera: SceneCamera,
    library: SceneLibrary,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with own_simulator() as running:
        entry = await setup(hass, make_entry(running.url))
        port = int(running.url.rsplit(":", 1)[1])
    # The host is gone: connection refused.
    camera.show(routine(library, 1).id)
    await next_frame(hass, entry)
    _assert_camera_unavailable(hass)
    (error,) = _messages(caplog, ERROR_LOG)
    assert f"The student's Ollama server at {running.url} is not reachable" in error.getMessage()

    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(
            DOMAIN, "analyze", {"camera": CAMERA_ENTITY}, blocking=True, return_response=True
        )
    assert raised.value.translation_key == "student_unreachable"

    await entry.runtime_data.host.async_refresh()
    await hass.async_block_till_done()
    connectivity = hass.states.get(CONNECTIVITY)
    assert connectivity.state == STATE_OFF
    # What does not need the host stays available.
    assert hass.states.get(ESCALATIONS_PER_HOUR).state == "0"
    assert hass.states.get(PROMPT_VERSION).state == "builtin"
    assert not ir.async_get(hass).async_get_issue(DOMAIN, f"student_unreachable_{ENTRY_ID}")

    async with own_simulator(port) as again:
        await entry.runtime_data.host.async_refresh()
        await next_frame(hass, entry)
        assert hass.states.get(CONNECTIVITY).state == STATE_ON
        assert hass.states.get(OBSERVATION).state != STATE_UNAVAILABLE
        assert hass.states.get(CONFIDENCE).state != STATE_UNAVAILABLE
        assert chat_requests(again.stats) == 1
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_host_unreachable_for_ten_minutes_raises_a_repair_issue(
    hass: HomeAssistant,
    own_simulator: SimulatorFactory,
    camera: SceneCamera,
    issue_registry: ir.IssueRegistry,
) -> None:
    async with own_simulator() as running:
        entry = await setup(hass, make_entry(running.url))
        port = int(running.url.rsplit(":", 1)[1])
    host = entry.runtime_data.host
    issue_id = f"student_unreachable_{ENTRY_ID}"

    await host.async_refresh()
    assert host._down_since is not None
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    # Nine minutes later: still no issue.
    host._down_since = dt_util.utcnow() - UNREACHABLE_REPAIR_AFTER + timedelta(minutes=1)
    await host.async_refresh()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    # Past ten minutes: the issue says which server.
    host._down_since = dt_util.utcnow() - UNREACHABLE_REPAIR_AFTER
    await host.async_refresh()
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "student_unreachable"
    assert issue.translation_placeholders == {"url": running.url}
    assert issue.severity is ir.IssueSeverity.ERROR
    assert not issue.is_fixable

    async with own_simulator(port):
        await host.async_refresh()
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
        assert host._down_since is None
        assert hass.states.get(CONNECTIVITY).state == STATE_ON
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_missing_student_model_raises_a_repair_issue(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    issue_registry: ir.IssueRegistry,
) -> None:
    entry = make_entry(simulator.url)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_STUDENT_MODEL: "llava:7b"}
    )
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    issue_id = f"model_missing_{ENTRY_ID}"

    assert entry.state is ConfigEntryState.LOADED
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "model_missing"
    assert issue.translation_placeholders == {"url": simulator.url, "model": "llava:7b"}
    _assert_camera_unavailable(hass)
    # The host answers: it is the model that is missing.
    assert hass.states.get(CONNECTIVITY).state == STATE_ON

    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(
            DOMAIN, "analyze", {"camera": CAMERA_ENTITY}, blocking=True, return_response=True
        )
    assert raised.value.translation_key == "student_model_missing"
    assert "ollama pull llava:7b" in str(raised.value)

    # The user picks a model the host has: the issue goes away with the reload.
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_STUDENT_MODEL: "gemma4:e2b"}
    )
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert hass.states.get(OBSERVATION).state != STATE_UNAVAILABLE


async def test_a_model_removed_while_running_raises_the_issue_at_once(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A chat answered 404 reports the missing model without waiting for the next poll."""
    issue_id = f"model_missing_{ENTRY_ID}"
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    entry.runtime_data.student.model = "llava:7b"  # as if `ollama rm` ran on the host

    camera.show(routine(library, 1).id)
    await next_frame(hass, entry)

    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    _assert_camera_unavailable(hass)
