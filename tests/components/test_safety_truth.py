"""What the safety sensor, its events and the observation say is what the models actually said.

The student's answers are dictated to the simulator verbatim (shapes real Ollama vision models
produce), so each test is about one answer shape; everything else is the real pipeline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant

from custom_components.vision_tutor.const import (
    CONF_STUDENT_TIMEOUT,
    EVENT_ESCALATION,
    EVENT_SAFETY,
)
from simulator.server import RunningSimulator

from .conftest import SceneCamera, make_entry
from .helpers import CONFIDENCE, OBSERVATION, SAFETY, SAFETY_EVENT, STUDENT, coordinator, setup


def _answer(summary: str, flags: Any, confidence: float = 0.9, **extra: Any) -> str:
    answer = {"summary": summary, "observations": ["room"], "confidence": confidence, **extra}
    if flags is not None:
        answer["safety_flags"] = flags
    return json.dumps(answer)


FIRE = _answer("Flames rise from a pan on the stove.", ["fire"])
KNIFE = _answer("A person holds a knife in the hallway.", ["weapon"])
CALM = _answer("An empty hallway.", [])


async def _frames(hass: HomeAssistant, entry: MockConfigEntry, *answers: str) -> None:
    """The student answers these, one analysed frame each (past the change gate)."""
    simulator: RunningSimulator = hass.data["test_simulator"]
    simulator.script(STUDENT, *answers)
    for _ in answers:
        await coordinator(entry).async_analyse_now()
        await hass.async_block_till_done()


@pytest.fixture
async def entry(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> MockConfigEntry:
    """A loaded entry analysing only on request (no scan interval), with no teacher.

    (A generous student timeout: a dictated answer must not be lost to a slow first request.)
    """
    hass.data["test_simulator"] = simulator
    options = {CONF_STUDENT_TIMEOUT: 60}
    return await setup(hass, make_entry(simulator.url, interval=0, options=options))


async def test_a_knife_after_a_cleared_fire_alerts_only_weapon(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    events = async_capture_events(hass, EVENT_SAFETY)
    await _frames(hass, entry, FIRE, FIRE)
    assert hass.states.get(SAFETY).attributes["flags"] == ["fire"]
    await _frames(hass, entry, CALM, CALM, CALM)
    assert hass.states.get(SAFETY).state == STATE_OFF

    await _frames(hass, entry, KNIFE, KNIFE)

    safety = hass.states.get(SAFETY)
    assert safety.state == STATE_ON
    assert safety.attributes["flags"] == ["weapon"]
    assert [(e.data["type"], e.data["flags"]) for e in events] == [
        ("hazard_detected", ["fire"]),
        ("hazard_cleared", []),
        ("hazard_detected", ["weapon"]),
    ]
    # The event entity (what the blueprint's alert title is made from) says the same.
    assert hass.states.get(SAFETY_EVENT).attributes["flags"] == ["weapon"]


async def test_a_knife_while_a_fire_is_on_alerts_and_the_fire_drops_out_once_gone(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    events = async_capture_events(hass, EVENT_SAFETY)
    await _frames(hass, entry, FIRE, FIRE, KNIFE, KNIFE)
    # The knife joins the fire that was seen two frames ago: a new hazard, a new alert.
    assert hass.states.get(SAFETY).attributes["flags"] == ["fire", "weapon"]
    assert [(e.data["type"], e.data["flags"]) for e in events][-1] == (
        "hazard_detected",
        ["fire", "weapon"],
    )
    await _frames(hass, entry, KNIFE)
    # Three frames without fire: only what persists now is shown.
    assert hass.states.get(SAFETY).attributes["flags"] == ["weapon"]


async def test_a_negated_hazard_is_not_a_flag_and_the_real_one_still_escalates(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    smoke = _answer("Grey smoke fills the hallway; no flames are visible.", ["smoke"])
    await _frames(hass, entry, smoke, smoke)

    safety = hass.states.get(SAFETY)
    assert safety.state == STATE_ON
    assert safety.attributes["flags"] == ["smoke"]
    assert hass.states.get(OBSERVATION).attributes["safety_flags"] == ["smoke"]
    assert escalations[-1].data["reason"] == "safety"
    assert escalations[-1].data["flags"] == ["smoke"]
    assert escalations[-1].data["detail"] == "safety flag: smoke; negated, not flagged: fire"


async def test_a_hazard_named_only_in_the_words_escalates_as_a_keyword_not_a_flag(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    await _frames(hass, entry, _answer("Blood on the kitchen floor.", []))
    assert escalations[-1].data["detail"] == "safety keyword in prose: blood"
    assert escalations[-1].data["flags"] == ["blood"]


DRAFT = _answer("A kitchen with a stove.", [])
INCOMPLETE = {
    "no safety_flags, confident": (
        _answer("A kitchen with a stove.", None, 0.9),
        "answer has no safety_flags",
        STATE_OFF,
    ),
    "a hazard only in prose after the JSON": (
        f"{_answer('A kitchen with a stove.', [])}\nUpdate: the pan on the stove is on fire!",
        "outside the JSON answer names a hazard",
        STATE_ON,
    ),
    "a benign draft before the real answer": (
        f"<think>First guess: {DRAFT}. Wait, there are flames.</think>\n{FIRE}",
        "disagree about safety flags",
        STATE_ON,
    ),
}


@pytest.mark.parametrize(
    ("text", "reason", "safety_after_two"), INCOMPLETE.values(), ids=INCOMPLETE
)
async def test_an_incomplete_answer_is_a_student_error_never_all_clear(
    hass: HomeAssistant, entry: MockConfigEntry, text: str, reason: str, safety_after_two: str
) -> None:
    escalations = async_capture_events(hass, EVENT_ESCALATION)
    await _frames(hass, entry, text)

    observation = hass.states.get(OBSERVATION)
    assert observation.state == "Student error: the answer could not be read"
    assert reason in observation.attributes["student_error"]
    assert observation.attributes["escalation_reason"] == "student_error"
    assert escalations[-1].data["reason"] == "student_error"
    assert hass.states.get(CONFIDENCE).state == "unknown"

    await _frames(hass, entry, text)
    # Where the answer names a fire anyway, that is evidence: two such frames turn it on.
    safety = hass.states.get(SAFETY)
    assert safety.state == safety_after_two
    assert safety.attributes["flags"] == (["fire"] if safety_after_two == STATE_ON else [])


async def test_a_teacher_answer_shows_the_teachers_confidences_and_keeps_the_students(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    await _frames(hass, entry, _answer("Maybe smoke in the hallway.", [], confidence=0.47))
    state = coordinator(entry).data
    assert hass.states.get(OBSERVATION).attributes["confidence"] == 0.47

    coordinator(entry).async_apply_verdict(
        {
            "idempotency_key": state.escalation_id,
            "review_id": "r1",
            "reason": "low_confidence",
            "agrees_with_student": True,
            "verdict": {
                "summary": "An empty hallway.",
                "observations": ["hallway"],
                "safety_flags": [],
                "confidence": 0.92,
            },
        }
    )
    await hass.async_block_till_done()

    attributes = hass.states.get(OBSERVATION).attributes
    assert attributes["source"] == "teacher"
    assert attributes["confidence"] == 0.92
    assert attributes["effective_confidence"] == 0.92
    assert attributes["student_confidence"] == 0.47
    assert attributes["student_effective_confidence"] == 0.47
    assert attributes["teacher"] == "reviewed"
    assert hass.states.get(CONFIDENCE).state == "92.0"


async def test_the_safety_sensor_says_why_it_is_not_on_yet_and_why_it_stays_on(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A flagged first frame is "watching: 1 of 2", clean frames after a hazard "clearing"."""
    await _frames(hass, entry, FIRE)
    safety = hass.states.get(SAFETY)
    assert safety.state == STATE_OFF
    assert safety.attributes["window"] == {"phase": "watching", "frames": 1, "needed": 2}
    assert hass.states.get(OBSERVATION).attributes["escalation_reason"] == "safety"

    await _frames(hass, entry, FIRE)
    assert hass.states.get(SAFETY).state == STATE_ON
    assert hass.states.get(SAFETY).attributes["window"] is None

    await _frames(hass, entry, CALM, CALM)
    safety = hass.states.get(SAFETY)
    assert safety.state == STATE_ON
    assert safety.attributes["window"] == {"phase": "clearing", "frames": 2, "needed": 3}

    await _frames(hass, entry, CALM)
    assert hass.states.get(SAFETY).state == STATE_OFF
    assert hass.states.get(SAFETY).attributes["window"] is None
