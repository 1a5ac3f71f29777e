"""A camera's calibration in Home Assistant: verdicts teach it, its sensors, the calibrated
confidence, the missed-hazards repair, and the samples surviving a restart.

No teacher service runs here (nothing listens at its address, so escalations wait in the
outbox); verdicts are handed to the camera as the event stream would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import patch

from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from custom_components.vision_tutor.calibration import MIN_AUDITS, Sample, Target, TargetKind
from custom_components.vision_tutor.const import (
    CONF_MAX_MISS_RATE,
    CONF_TARGET,
    CONF_TEACHER_BUDGET,
    DOMAIN,
)
from custom_components.vision_tutor.reliability import CameraReliability
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator

from .conftest import ENTRY_ID, SUBENTRY_ID, SceneCamera, make_entry
from .helpers import (
    CONFIDENCE,
    OBSERVATION,
    coordinator,
    fast_teacher_retries,  # noqa: F401  (autouse fixture)
    fire,
    routine,
    setup,
)

RELIABILITY = "sensor.front_door_student_reliability"
MISSED = "sensor.front_door_estimated_missed_hazards_per_day"
NOBODY = ("http://127.0.0.1:9", "token")
"""A teacher service nobody runs: the entry has a teacher, its escalations wait."""


async def _analyse(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Analyse the camera's frame now, past the change gate."""
    await coordinator(entry).async_analyse_now()
    await hass.async_block_till_done()


def _reliability(entry: MockConfigEntry) -> CameraReliability:
    reliability = coordinator(entry).reliability
    assert reliability is not None
    return reliability


def _audits(
    reliability: CameraReliability, count: int, *, every_wrong: int = 0, missed: bool = False
) -> None:
    """`count` audited frames, evidence spread over 0.8-1.0; every `every_wrong`-th the
    teacher disagreed with (a missed hazard when `missed`)."""
    now = dt_util.utcnow().timestamp()
    for index in range(count):
        wrong = bool(every_wrong) and index % every_wrong == every_wrong // 2
        reliability.calibration.add(
            Sample(
                stated=None,
                evidence=0.8 + 0.2 * index / count,
                agreed=not wrong,
                missed_hazard=wrong and missed,
                forced=False,
                weight=150.0,
                at=now,
                audit=True,
            )
        )


async def _entry(hass: HomeAssistant, url: str, **options: Any) -> MockConfigEntry:
    return await setup(hass, make_entry(url, teacher=NOBODY, options=options or None))


def _verdict(key: str | None, *, agrees: bool, flags: list[str]) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "reason": "safety",
        "agrees_with_student": agrees,
        "verdict": {
            "summary": "A pan on the stove.",
            "observations": ["pan", "stove"],
            "safety_flags": flags,
            "confidence": 0.9,
        },
    }


async def test_a_verdict_on_an_escalated_frame_becomes_a_sample(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera, library: SceneLibrary
) -> None:
    entry = await _entry(hass, simulator.url)
    reliability = _reliability(entry)
    before = len(reliability.calibration.samples)
    camera.show(fire(library).id)
    await _analyse(hass, entry)
    state = coordinator(entry).data
    assert state.escalated

    coordinator(entry).async_apply_verdict(_verdict(state.escalation_id, agrees=True, flags=[]))
    coordinator(entry).async_apply_verdict(_verdict(state.escalation_id, agrees=True, flags=[]))
    await hass.async_block_till_done()

    samples = reliability.calibration.samples[before:]
    assert len(samples) == 1  # the same verdict again teaches nothing twice
    assert (samples[0].agreed, samples[0].forced, samples[0].weight) == (True, True, 1.0)
    # A verdict on a frame this camera never sent is no sample.
    coordinator(entry).async_apply_verdict(_verdict("someone-else", agrees=False, flags=[]))
    assert len(reliability.calibration.samples) == before + 1


async def test_reliability_sensors_and_the_calibrated_confidence(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera, library: SceneLibrary
) -> None:
    entry = await _entry(hass, simulator.url)
    reliability = _reliability(entry)
    camera.show(routine(library).id)
    # Before any audit: no agreement to show, and the confidence is today's rule.
    assert hass.states.get(RELIABILITY).state == "unknown"
    assert hass.states.get(MISSED).state == "unknown"
    assert hass.states.get(CONFIDENCE).attributes["calibrated"] is False

    _audits(reliability, 400, every_wrong=10)
    camera.show(routine(library, 1).id)
    await _analyse(hass, entry)

    agreement = hass.states.get(RELIABILITY)
    assert float(agreement.state) == 90.0
    assert agreement.attributes["audits"] == 400
    assert agreement.attributes["interval_low"] < 90 < agreement.attributes["interval_high"]
    assert agreement.attributes["calibrated"] is True
    assert float(hass.states.get(MISSED).state) == 0.0  # no audit found a missed hazard

    confidence = hass.states.get(CONFIDENCE)
    observation = hass.states.get(OBSERVATION)
    assert confidence.attributes["calibrated"] is True
    assert confidence.attributes["stated"] == observation.attributes["student_confidence"]
    assert confidence.attributes["token_based"] is not None
    # The student agrees with the teacher on nine audits in ten, whatever its evidence says.
    assert 80 <= float(confidence.state) <= 95
    assert observation.attributes["confidence_calibrated"] is True


async def test_without_a_teacher_there_is_no_calibration(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    entry = await setup(hass, make_entry(simulator.url))
    assert coordinator(entry).reliability is None
    assert hass.states.get(RELIABILITY) is None
    assert hass.states.get(CONFIDENCE).attributes["calibrated"] is False


async def test_the_samples_survive_a_restart(
    hass: HomeAssistant,
    simulator: RunningSimulator,
    camera: SceneCamera,
    hass_storage: dict[str, Any],
) -> None:
    entry = await _entry(hass, simulator.url)
    _audits(_reliability(entry), MIN_AUDITS + 10, every_wrong=4)
    await _analyse(hass, entry)
    shown = hass.states.get(RELIABILITY).state

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    key = f"{DOMAIN}.{ENTRY_ID}.{SUBENTRY_ID}.calibration"
    assert len(hass_storage[key]["data"]["samples"]) == MIN_AUDITS + 10
    restored = _reliability(entry)
    assert sum(s.audit for s in restored.calibration.samples) == MIN_AUDITS + 10
    assert hass.states.get(RELIABILITY).state == shown == "75.0"


async def test_a_repair_while_the_estimated_miss_rate_is_above_the_limit(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera, library: SceneLibrary
) -> None:
    entry = await _entry(hass, simulator.url, **{CONF_MAX_MISS_RATE: 1.0})
    reliability = _reliability(entry)
    issues = ir.async_get(hass)
    issue_id = f"missed_hazards_{ENTRY_ID}_{SUBENTRY_ID}"
    camera.show(fire(library).id)

    async def verdict() -> None:
        await _analyse(hass, entry)
        key = coordinator(entry).data.escalation_id
        coordinator(entry).async_apply_verdict(_verdict(key, agrees=True, flags=["fire"]))
        await hass.async_block_till_done()

    # One audit in five found a hazard the student missed, even at its highest evidence.
    _audits(reliability, 200, every_wrong=5, missed=True)
    with patch("custom_components.vision_tutor.reliability.REPAIR_AFTER", timedelta(hours=1)):
        await verdict()
        assert issues.async_get_issue(DOMAIN, issue_id) is None  # not for a moment's estimate
    with patch("custom_components.vision_tutor.reliability.REPAIR_AFTER", timedelta(0)):
        await verdict()
        issue = issues.async_get_issue(DOMAIN, issue_id)
        assert issue is not None
        assert issue.translation_key == "missed_hazards"
        assert issue.translation_placeholders["camera"] == "camera.front_door"
        assert float(issue.translation_placeholders["rate"]) > 1.0
        assert float(hass.states.get(MISSED).state) > 0

        # Later audits find the student reliable: the estimate falls, the repair goes.
        reliability.calibration.samples.clear()
        _audits(reliability, 200)
        await verdict()
        assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_a_camera_holds_its_own_target_or_the_hubs(
    hass: HomeAssistant, simulator: RunningSimulator, camera: SceneCamera
) -> None:
    hub = {CONF_TEACHER_BUDGET: 20.0, CONF_MAX_MISS_RATE: 3.0}
    own = {CONF_TARGET: "miss_rate", CONF_TEACHER_BUDGET: None, CONF_MAX_MISS_RATE: 0.5}
    entry = await setup(hass, make_entry(simulator.url, teacher=NOBODY, options=hub, overrides=own))
    settings = _reliability(entry).settings
    assert settings.target == Target(TargetKind.MISS_RATE, 0.5)
    assert settings.max_miss_rate == 0.5
    assert await hass.config_entries.async_unload(entry.entry_id)

    other = await setup(
        hass, make_entry(simulator.url, teacher=NOBODY, options=hub, overrides={CONF_TARGET: None})
    )
    assert _reliability(other).settings.target == Target(TargetKind.SHARE, 0.2)
    assert _reliability(other).settings.max_miss_rate == 3.0
