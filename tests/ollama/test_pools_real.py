"""The pools against real Ollama servers: a second real `ollama serve` is the other GPU box.

- The add-on's teacher pool with a host that has no model (a real Ollama with an empty models
  folder): the real server's answers make the add-on report the host and skip it, and the review
  is done by the host that has the teacher.
- The integration's student pool over two real servers sharing one models folder: the cameras
  are spread over them, and when one is killed (kill -9) its camera's next frame is answered by
  the other real server.

The models are tiny (see `realollama`): what is checked is the pools' handling of real servers'
answers and failures, not what the models say.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import pytest_socket

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant

from custom_components.vision_tutor.const import CONF_STUDENT_MODEL, CONF_STUDENT_TIMEOUT
from custom_components.vision_tutor.flow_helpers import default_options
from realollama.models import EMBED, STUDENT, TEACHER, ensure_models
from realollama.server import OllamaServer, run_ollama
from simulator.scenes import SceneLibrary
from tests.addon.conftest import StartService, review_body
from tests.components.helpers import CONNECTIVITY, setup
from tests.components.test_student_pool import entry_with, other_connectivity, two_cameras
from tests.ollama.test_addon_real import FEW_SHOT, OBSERVATION_SCHEMA, REAL_WAIT_S


@pytest.fixture
def empty_ollama(tmp_path: Path) -> Iterator[OllamaServer]:
    """A real Ollama that has no model at all."""
    pytest_socket.enable_socket()
    with run_ollama(models=tmp_path / "no-models") as server:
        yield server


@pytest.fixture
def second_ollama(real_ollama: OllamaServer) -> Iterator[OllamaServer]:
    """Another real Ollama with the same test models (it reads the same models folder)."""
    pytest_socket.enable_socket()
    with run_ollama() as server:
        ensure_models(server.url)
        yield server


async def test_a_teacher_host_without_the_model_is_reported_and_skipped(
    start_service: StartService, real_ollama: OllamaServer, empty_ollama: OllamaServer
) -> None:
    client = await start_service(
        empty_ollama.url,
        teacher_model=TEACHER,
        teachers=[{"url": real_ollama.url}],
        embedding_model=EMBED,
        teacher_timeout_s=300.0,
    )
    body = review_body(
        "pool-real-1",
        scene="fire_kitchen_pan",
        contract={"system_prompt": FEW_SHOT, "schema": OBSERVATION_SCHEMA},
    )
    review_id = await client.accepted(body)
    await client.wait_settled({review_id}, within_s=REAL_WAIT_S)

    review = await client.review(review_id)
    assert review["status"] == "done", review
    assert review["attempts"] == 1
    reply = await client.get("/api/v1/health")
    hosts: dict[str, dict[str, Any]] = {host["url"]: host for host in reply.body["teachers"]}
    # What the real server without the model answered is what the add-on says of it.
    assert hosts[empty_ollama.url]["status"] == "unreachable"
    assert f"has no model '{TEACHER}'" in hosts[empty_ollama.url]["error"]
    assert hosts[real_ollama.url]["error"] is None
    assert reply.body["status"] == "degraded"


def real_pool_entry(*urls: str) -> MockConfigEntry:
    """Two cameras on a pool of real hosts, with the real student and a patient timeout."""
    entry = entry_with(*urls)
    return MockConfigEntry(
        domain=entry.domain,
        entry_id=entry.entry_id,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**entry.data, CONF_STUDENT_MODEL: STUDENT},
        options={**default_options(), CONF_STUDENT_TIMEOUT: 120.0},
        subentries_data=[
            ConfigSubentryData(
                data=subentry.data,
                subentry_id=subentry.subentry_id,
                subentry_type=subentry.subentry_type,
                title=subentry.title,
                unique_id=subentry.unique_id,
            )
            for subentry in entry.subentries.values()
        ],
    )


async def test_a_camera_moves_to_the_other_real_host_when_its_host_is_killed(
    hass: HomeAssistant,
    real_ollama: OllamaServer,
    second_ollama: OllamaServer,
    library: SceneLibrary,
) -> None:
    await two_cameras(hass, library)
    entry = await setup(hass, real_pool_entry(real_ollama.url, second_ollama.url))
    pool = entry.runtime_data.pool
    assert pool is not None
    front, garage = "SUBENTRYFRONT_DOOR", "SUBENTRYGARAGE"
    assert pool.assignment == {front: real_ollama.url, garage: second_ollama.url}
    second_sensor = other_connectivity(hass, second_ollama.url)
    assert hass.states.get(second_sensor).state == STATE_ON
    # Both cameras' first frames were answered by their own real server.
    for subentry_id in (front, garage):
        analysis = entry.runtime_data.cameras[subentry_id].data.analysis
        assert analysis is not None
        assert analysis.observation is not None, analysis

    assert second_ollama.process is not None
    second_ollama.process.kill()
    second_ollama.process.wait()

    garage_camera = entry.runtime_data.cameras[garage]
    analysis = await garage_camera.async_analyse_now()
    await hass.async_block_till_done()
    assert analysis.observation is not None, analysis
    assert garage_camera.last_update_success
    assert pool.assignment == {front: real_ollama.url, garage: real_ollama.url}
    assert hass.states.get(second_sensor).state == STATE_OFF
    assert hass.states.get(CONNECTIVITY).state == STATE_ON
    assert await hass.config_entries.async_unload(entry.entry_id)
