"""Teacher verdicts as the event stream hands them to a camera, without a teacher service.

The round trip through the real service is in test_teacher.py; these are the edge cases of
applying a verdict: a malformed one, one before any analysis, a calm one, and dismissals with
the "dismissal turns the sensor off" option either way.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant

from custom_components.vision_tutor.const import (
    CONF_DISMISSAL_CLEARS,
    DOMAIN,
    EVENT_SAFETY,
    EVENT_TEACHER_REVIEW,
)
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import CAMERA_ENTITY, SceneCamera, make_entry
from .helpers import OBSERVATION, SAFETY, SAFETY_EVENT, coordinator, fire, next_frame, setup


def _verdict(flags: list[str], key: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "reason": "safety",
        "agrees_with_student": not flags,
        "verdict": {
            "summary": "A living room with a sofa; nothing is burning.",
            "observations": ["sofa", "curtains"],
            "safety_flags": flags,
            "confidence": 0.9,
        },
        **extra,
    }


async def _apply(hass: HomeAssistant, entry: MockConfigEntry, verdict: dict[str, Any]) -> None:
    coordinator(entry).async_apply_verdict(verdict)
    await hass.async_block_till_done()


async def _hazard_on(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    for _ in range(5):
        await next_frame(hass, entry)
        if hass.states.get(SAFETY).state == STATE_ON:
            return
    pytest.fail("the safety sensor did not turn on")


@pytest.mark.parametrize(
    ("dismissal_clears", "safety_after", "types"),
    [
        (True, STATE_OFF, ["hazard_detected", "teacher_dismissed", "hazard_cleared"]),
        (False, STATE_ON, ["hazard_detected", "teacher_dismissed"]),
    ],
)
async def test_a_dismissal_clears_the_sensor_only_when_the_option_says_so(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    library: SceneLibrary,
    dismissal_clears: bool,
    safety_after: str,
    types: list[str],
) -> None:
    entry = await setup(
        hass, make_entry(simulator.url, options={CONF_DISMISSAL_CLEARS: dismissal_clears})
    )
    safety_events = async_capture_events(hass, EVENT_SAFETY)
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)
    camera.show(fire(library).id)
    await _hazard_on(hass, entry)

    await _apply(hass, entry, _verdict([]))

    assert hass.states.get(SAFETY).state == safety_after
    assert [event.data["type"] for event in safety_events] == types
    assert hass.states.get(SAFETY_EVENT).attributes["event_type"] == types[-1]
    assert reviews[-1].data == {
        "camera": CAMERA_ENTITY,
        "outcome": "reviewed",
        "review_id": None,
        "reason": "safety",
        "summary": "A living room with a sofa; nothing is burning.",
        "flags": [],
        "confidence": 0.9,
        "agrees_with_student": True,
        # No escalation of this camera has that key: no kept frame to point at.
        "media_content_id": None,
        "snapshot_url": None,
        "media_browser_url": None,
    }
    # Not the frame on display (no matching key): the student's answer stays.
    assert hass.states.get(OBSERVATION).attributes["source"] == "student"


async def test_a_verdict_on_the_frame_on_display_replaces_the_students_answer(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    response = await hass.services.async_call(
        DOMAIN,
        "analyze",
        {"camera": CAMERA_ENTITY, "force_teacher": True},
        blocking=True,
        return_response=True,
    )
    assert response["escalated"] is True
    safety_events = async_capture_events(hass, EVENT_SAFETY)

    await _apply(hass, entry, _verdict([], key=coordinator(entry).data.escalation_id))

    observation = hass.states.get(OBSERVATION)
    assert observation.state == "A living room with a sofa; nothing is burning."
    assert observation.attributes["source"] == "teacher"
    assert observation.attributes["observations"] == ["sofa", "curtains"]
    # A calm frame found calm: nothing to confirm or dismiss.
    assert safety_events == []
    assert hass.states.get(SAFETY).state == STATE_OFF


async def test_a_malformed_verdict_is_ignored_with_a_warning(
    hass: HomeAssistant, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    before = hass.states.get(OBSERVATION)
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)

    await _apply(hass, entry, {"idempotency_key": None, "verdict": {"summary": "no flags"}})

    assert reviews == []
    assert hass.states.get(OBSERVATION) == before
    (warning,) = [r for r in caplog.records if "malformed teacher verdict" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert CAMERA_ENTITY in warning.getMessage()


async def test_a_verdict_before_any_analysis_is_announced_but_changes_no_state(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    camera.broken = True
    entry = await setup(hass, make_entry(simulator.url))
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)

    await _apply(hass, entry, _verdict(["fire"]))

    # A fire the teacher saw on a frame from before a restart still reaches automations.
    assert [(e.data["outcome"], e.data["flags"]) for e in reviews] == [("reviewed", ["fire"])]
    assert hass.states.get(SAFETY).state == STATE_UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "error", "shown"),
    [
        ("shed", None, "not reviewed (shed: the teacher's queue was full)"),
        ("failed", "the teacher timed out", "not reviewed (failed: the teacher timed out)"),
        ("superseded", None, "not reviewed (superseded by a newer review of this camera (r2))"),
    ],
)
async def test_a_review_the_addon_gave_up_on_is_said_and_the_sensor_keeps_its_evidence(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: SceneCamera,
    library: SceneLibrary,
    status: str,
    error: str | None,
    shown: str,
) -> None:
    camera.show(fire(library).id)
    await _hazard_on(hass, entry)
    before = hass.states.get(SAFETY)
    reviews = async_capture_events(hass, EVENT_TEACHER_REVIEW)

    coordinator(entry).async_review_ended(
        {
            "review_id": "r1",
            "idempotency_key": coordinator(entry).data.escalation_id,
            "camera": CAMERA_ENTITY,
            "reason": "safety",
            "priority": 5,
            "status": status,
            "attempts": 1,
            "error": error,
            "superseded_by": "r2" if status == "superseded" else None,
        }
    )
    await hass.async_block_till_done()

    assert [(e.data["outcome"], e.data["review_id"]) for e in reviews] == [(status, "r1")]
    assert hass.states.get(OBSERVATION).attributes["teacher"] == shown
    after = hass.states.get(SAFETY)
    assert after.state == STATE_ON
    assert after.attributes["flags"] == before.attributes["flags"]
