"""Routine, safety, low-confidence and student-error frames, as entities and bus events show them."""

from __future__ import annotations

import asyncio

import ollama
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant

from custom_components.vision_tutor.const import (
    CONF_MIN_CONFIDENCE,
    CONF_STUDENT_TIMEOUT,
    EVENT_ESCALATION,
    EVENT_SAFETY,
)
from custom_components.vision_tutor.contract import StudentError
from custom_components.vision_tutor.pipeline import StudentClient
from custom_components.vision_tutor.prompts import STUDENT_SYSTEM_PROMPT
from simulator.profiles import Faults
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator

from .conftest import CAMERA_ENTITY, SceneCamera, make_entry
from .helpers import (
    CONFIDENCE,
    ESCALATIONS_PER_HOUR,
    OBSERVATION,
    SAFETY,
    SAFETY_EVENT,
    STUDENT,
    chat_requests,
    fire,
    next_frame,
    routine,
    setup,
)

STUDENT_ERROR_STATE = "Student error: the answer could not be read"


def _flagged(hass: HomeAssistant) -> bool:
    """Whether the latest analysed frame was a flagged one (a flag or a safety keyword)."""
    attributes = hass.states.get(OBSERVATION).attributes
    return bool(attributes["safety_flags"]) or attributes["escalation_reason"] == "safety"


async def test_routine_scenes_stay_calm(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    safety_events = async_capture_events(hass, EVENT_SAFETY)

    for index in (1, 2):
        camera.show(routine(library, index).id)
        await next_frame(hass, entry)
        observation = hass.states.get(OBSERVATION)
        assert observation.state
        assert not observation.state.startswith("Student error")
        assert observation.attributes["safety_flags"] == []
        assert observation.attributes["escalated"] is False
        assert observation.attributes["escalation_reason"] is None
        assert observation.attributes["escalation_detail"].startswith("no signal: confidence")
        assert observation.attributes["teacher_unavailable"] is False
        assert observation.attributes["student_error"] is None
        assert hass.states.get(SAFETY).state == STATE_OFF

    assert escalations == []
    assert safety_events == []
    assert hass.states.get(SAFETY_EVENT).state == STATE_UNKNOWN
    assert hass.states.get(ESCALATIONS_PER_HOUR).state == "0"


async def test_a_hazard_turns_safety_on_after_k_flagged_frames_and_off_after_clean_ones(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    """k = 2 flagged frames of 5 turn the sensor on; 3 clean frames in a row turn it off."""
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    safety_events = async_capture_events(hass, EVENT_SAFETY)
    camera.show(fire(library).id)

    flagged = 0
    for _ in range(5):
        await next_frame(hass, entry)
        flagged += _flagged(hass)
        assert hass.states.get(SAFETY).state == (STATE_ON if flagged >= 2 else STATE_OFF)
        if flagged >= 2:
            break
    assert flagged == 2, "the student saw the fire in two of five frames"

    escalation = escalations[-1].data
    assert escalation["camera"] == CAMERA_ENTITY
    assert escalation["reason"] == "safety"
    assert escalation["priority"] == 5
    assert escalation["detail"].startswith(("safety flag: ", "safety keyword in prose: "))
    assert escalation["flags"]
    assert set(escalation["flags"]) <= {"fire", "smoke"}
    assert 0 <= escalation["confidence"] <= 1
    assert escalation["teacher"] == "unavailable"

    safety = hass.states.get(SAFETY)
    assert safety.attributes["flags"]
    assert set(safety.attributes["flags"]) <= {"fire", "smoke"}
    assert safety.attributes["confirmed_by_teacher"] is False
    assert safety.attributes["since"] is not None
    assert [event.data["type"] for event in safety_events] == ["hazard_detected"]
    detected = safety_events[0].data
    assert detected["camera"] == CAMERA_ENTITY
    assert detected["flags"] == safety.attributes["flags"]
    assert 0 <= detected["confidence"] <= 1
    event_state = hass.states.get(SAFETY_EVENT)
    assert event_state.attributes["event_type"] == "hazard_detected"
    assert event_state.attributes["flags"] == safety.attributes["flags"]
    assert event_state.attributes["confidence"] == detected["confidence"]
    hazard_fired_at = event_state.state

    camera.show(routine(library).id)
    clean_run = 0
    for _ in range(6):
        await next_frame(hass, entry)
        clean_run = 0 if _flagged(hass) else clean_run + 1
        assert hass.states.get(SAFETY).state == (STATE_OFF if clean_run >= 3 else STATE_ON)
        if clean_run >= 3:
            break
    assert clean_run == 3

    assert [event.data["type"] for event in safety_events] == ["hazard_detected", "hazard_cleared"]
    assert safety_events[1].data["flags"] == []
    event_state = hass.states.get(SAFETY_EVENT)
    assert event_state.attributes["event_type"] == "hazard_cleared"
    assert event_state.state != hazard_fired_at
    cleared = hass.states.get(SAFETY)
    assert cleared.attributes == {**cleared.attributes, "flags": [], "since": None}


async def test_escalations_per_hour_counts_escalations(
    hass: HomeAssistant, entry: MockConfigEntry, camera: SceneCamera, library: SceneLibrary
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    camera.show(fire(library).id)
    for _ in range(3):
        await next_frame(hass, entry)

    assert len(escalations) == 3
    assert hass.states.get(ESCALATIONS_PER_HOUR).state == "3"


def _assert_student_error(
    hass: HomeAssistant, escalations: list[Event], reason_part: str, *, safety: str = STATE_OFF
) -> None:
    """The frame shows as an error (never calm), escalates as student_error, safety unchanged."""
    observation = hass.states.get(OBSERVATION)
    assert observation.state == STUDENT_ERROR_STATE
    attributes = observation.attributes
    assert reason_part in attributes["student_error"]
    assert attributes["escalated"] is True
    assert attributes["escalation_reason"] == "student_error"
    assert attributes["escalation_detail"] == attributes["student_error"]
    assert attributes["safety_flags"] == []
    assert attributes["confidence"] is None
    assert attributes["effective_confidence"] is None
    assert attributes["teacher_unavailable"] is True
    assert hass.states.get(CONFIDENCE).state == STATE_UNKNOWN
    assert hass.states.get(SAFETY).state == safety

    event = escalations[-1].data
    assert event["camera"] == CAMERA_ENTITY
    assert event["reason"] == "student_error"
    assert event["priority"] == 4
    assert reason_part in event["detail"]
    assert event["flags"] == []
    assert event["confidence"] is None
    assert event["teacher"] == "unavailable"


async def test_an_answer_that_is_not_the_contract_is_a_student_error(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    simulator.set_faults(STUDENT, Faults(garbage_rate=1.0))
    camera.show(routine(library, 1).id)

    await next_frame(hass, entry)
    _assert_student_error(hass, escalations, "no JSON object in the answer")

    # An unreadable frame is analysed again even though the scene has not changed.
    before = chat_requests(simulator.stats)
    await next_frame(hass, entry)
    assert chat_requests(simulator.stats) == before + 1
    assert len(escalations) == 2


async def test_unreadable_answers_never_clear_a_hazard(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    safety_events = async_capture_events(hass, EVENT_SAFETY)
    camera.show(fire(library).id)
    for _ in range(5):
        await next_frame(hass, entry)
        if hass.states.get(SAFETY).state == STATE_ON:
            break
    assert hass.states.get(SAFETY).state == STATE_ON
    flags = hass.states.get(SAFETY).attributes["flags"]

    simulator.set_faults(STUDENT, Faults(garbage_rate=1.0))
    camera.show(routine(library).id)
    for _ in range(4):
        await next_frame(hass, entry)
        _assert_student_error(hass, escalations, "no JSON object", safety=STATE_ON)
    assert hass.states.get(SAFETY).attributes["flags"] == flags
    assert [event.data["type"] for event in safety_events] == ["hazard_detected"]


async def test_a_student_slower_than_the_timeout_is_a_student_error(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    entry = await setup(hass, make_entry(simulator.url, options={CONF_STUDENT_TIMEOUT: 0.2}))
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    simulator.set_faults(STUDENT, Faults(stall_s=2.0))
    camera.show(routine(library, 1).id)

    await next_frame(hass, entry)
    _assert_student_error(hass, escalations, "did not answer within 0.2 s")


async def test_a_server_error_is_a_student_error(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    simulator.set_faults(STUDENT, Faults(error_rate=1.0))
    camera.show(routine(library, 1).id)

    await next_frame(hass, entry)
    _assert_student_error(hass, escalations, "answered 500: model runner has unexpectedly stopped")
    assert simulator.stats.errors_injected == 1


async def test_a_busy_server_is_a_student_error(
    hass: HomeAssistant, socket_enabled: None, camera: SceneCamera, library: SceneLibrary
) -> None:
    """Ollama answers 503 at once when a model must be loaded and its scheduler is full."""
    async with run_simulator(time_scale=0.01, seed=1234, num_parallel=1, max_queue=0) as busy:
        entry = await setup(hass, make_entry(busy.url))
        escalations = async_capture_events(hass, EVENT_ESCALATION)
        client = ollama.AsyncClient(host=busy.url)
        # The student was unloaded (keep_alive 0), someone else's long request holds the only
        # slot, and another model's first request is already waiting in the scheduler.
        await client.generate(model="gemma4:e2b", keep_alive=0)
        busy.set_faults("gemma4:26b", Faults(stall_s=0.5))
        other = asyncio.ensure_future(
            client.chat(
                model="gemma4:26b", messages=[{"role": "user", "content": "hello"}], think=False
            )
        )
        for _ in range(500):
            if busy.stats.running:
                break
            await asyncio.sleep(0.01)
        assert busy.stats.running == 1
        waiting = asyncio.ensure_future(client.embed(model="embeddinggemma", input="x"))
        for _ in range(500):
            if busy.stats.queued:
                break
            await asyncio.sleep(0.01)
        assert busy.stats.queued == 1

        camera.show(routine(library, 1).id)
        await next_frame(hass, entry)
        _assert_student_error(hass, escalations, "answered 503: server busy")
        assert busy.stats.rejected_busy == 1
        await other
        await waiting
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_low_confidence_answer_escalates_with_its_reason(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    """With the threshold at 0.99, an ordinary answer (the student says 0.8-0.95) is unsure."""
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    await setup(hass, make_entry(simulator.url, options={CONF_MIN_CONFIDENCE: 0.99}))

    observation = hass.states.get(OBSERVATION)
    assert not observation.state.startswith("Student error")
    attributes = observation.attributes
    assert attributes["effective_confidence"] < 0.99
    assert attributes["escalated"] is True
    assert attributes["escalation_reason"] == "low_confidence"
    detail = attributes["escalation_detail"]
    assert detail.startswith(f"low confidence: {attributes['effective_confidence']:.2f} < 0.99")
    assert attributes["safety_flags"] == []
    assert hass.states.get(SAFETY).state == STATE_OFF
    assert float(hass.states.get(CONFIDENCE).state) == pytest.approx(
        attributes["effective_confidence"] * 100, abs=0.05
    )

    assert len(escalations) == 1
    event = escalations[0].data
    assert event["reason"] == "low_confidence"
    assert event["priority"] == 3
    assert event["detail"] == detail
    assert event["flags"] == []
    assert event["confidence"] == attributes["effective_confidence"]
    assert event["teacher"] == "unavailable"


async def test_an_answer_cut_off_by_the_token_cap_is_a_student_error(
    simulator: RunningSimulator, library: SceneLibrary
) -> None:
    """Ollama stops at num_predict with done_reason "length": half an answer is never read."""
    client = ollama.AsyncClient(host=simulator.url)
    student = StudentClient(
        client, "gemma4:e2b", timeout=30.0, semaphore=asyncio.Semaphore(1), max_tokens=4
    )
    answer = await student.ask(library.jpeg(routine(library).id), STUDENT_SYSTEM_PROMPT)
    assert isinstance(answer, StudentError)
    assert answer.reason == "the student's answer was cut off at 4 tokens"

    whole = StudentClient(client, "gemma4:e2b", timeout=30.0, semaphore=asyncio.Semaphore(1))
    assert not isinstance(
        await whole.ask(library.jpeg(routine(library).id), STUDENT_SYSTEM_PROMPT), StudentError
    )
