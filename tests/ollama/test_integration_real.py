"""The integration against a real Ollama: model discovery in the config flow, and a camera's frames
through the real student (the generated gemma4-architecture model: the real gemma4 renderer and
parser, `think: false` with a `format` schema, logprobs, and the real image path).

The student's weights are random, so what it says is not a judgement of the scene; what these
tests check is that everything around it works on the real server: the request the integration
sends is accepted, the answer is read, the policy decides, and the entities say so.
"""

from __future__ import annotations

from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.vision_tutor.const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_TIMEOUT,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    DOMAIN,
    EVENT_ESCALATION,
    TEACHER_MODE_NONE,
)
from custom_components.vision_tutor.flow_helpers import default_options
from realollama.models import EMBED, STUDENT, TEACHER, TEXT
from realollama.server import OllamaServer
from tests.components.conftest import SUBENTRY_ID, SceneCamera, camera_subentry, make_entry
from tests.components.test_config_flow import select_options

OBSERVATION = "sensor.front_door_observation"


async def test_the_config_flow_lists_the_real_servers_vision_models(
    hass: HomeAssistant, real_ollama: OllamaServer
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_URL: real_ollama.url}
    )
    assert result["step_id"] == "model", result
    # Read from each model's /api/show: the vision models are offered (with VISION_TUTOR_OLLAMA_URL
    # a server may have more), the text-only and embedding models are left out.
    offered = select_options(result, CONF_STUDENT_MODEL)
    assert {STUDENT, TEACHER} <= set(offered)
    assert not {TEXT, EMBED} & set(offered)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_STUDENT_MODEL: STUDENT}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TEACHER_MODE: TEACHER_MODE_NONE}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].data[CONF_STUDENT_MODEL] == STUDENT
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


def real_entry(url: str) -> MockConfigEntry:
    entry = make_entry(url)
    # The real student, with a timeout a loaded 2-core test machine meets.
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=entry.entry_id,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**entry.data, CONF_STUDENT_MODEL: STUDENT},
        options={**default_options(), CONF_STUDENT_TIMEOUT: 120.0},
        subentries_data=[camera_subentry()],
    )


async def test_a_camera_frame_goes_through_the_real_student(
    hass: HomeAssistant, real_ollama: OllamaServer, camera: SceneCamera
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    entry = real_entry(real_ollama.url)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    state = hass.states.get(OBSERVATION)
    assert state is not None
    assert state.state != STATE_UNAVAILABLE
    attributes = state.attributes
    assert attributes["model"] == STUDENT
    assert attributes["source"] == "student"
    # `format` held on the real server with think off: the answer was read as the contract, so
    # the observation is the student's own words, not a student error.
    analysis = entry.runtime_data.cameras[SUBENTRY_ID].data.analysis
    assert analysis is not None
    assert analysis.observation is not None, analysis.result
    assert state.state == analysis.observation.summary
    # Real token logprobs arrived and shaped the effective confidence (never above the stated).
    assert 0 <= attributes["effective_confidence"] <= attributes["confidence"] <= 1
    # Whatever the random student said, the policy said why it decided what it did.
    assert analysis.decision.detail
    for event in escalations:
        assert event.data["reason"]
    assert await hass.config_entries.async_unload(entry.entry_id)
