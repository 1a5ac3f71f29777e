"""The change gate on photo-like frames: what it skips, what it lets through, and the re-look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from benchmarks.photo_frames import PERSON_POSITIONS, Person, Room
from custom_components.vision_tutor.frames import decode_thumbnail
from custom_components.vision_tutor.gate import ChangeGate, change_score, gate_threshold

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEFAULT = 0.5
RELOOK = timedelta(minutes=10)


@pytest.fixture(scope="module")
def room() -> Room:
    """A 1080p view: the resolution cameras send most."""
    return Room(1920, 1080, seed=5)


def _gate(room: Room, sensitivity: float = DEFAULT) -> ChangeGate:
    """A gate whose reference is an analysed grab of the empty room."""
    gate = ChangeGate(sensitivity, RELOOK)
    first = decode_thumbnail(room.frame())
    assert gate.check(first, T0).reason == "first"
    gate.analysed(first, T0)
    return gate


def _passes(gate: ChangeGate, jpeg: bytes, seconds: float = 10) -> bool:
    return gate.check(decode_thumbnail(jpeg), T0 + timedelta(seconds=seconds)).analyse


def test_sensor_noise_alone_is_skipped(room: Room) -> None:
    gate = _gate(room)
    decisions = [
        gate.check(decode_thumbnail(room.frame()), T0 + timedelta(seconds=i)) for i in range(6)
    ]
    assert [d.reason for d in decisions] == ["unchanged"] * 6
    assert all(d.score is not None and d.score < gate.threshold for d in decisions)


@pytest.mark.parametrize("flicker", [0.05, -0.05])
def test_flicker_is_skipped(room: Room, flicker: float) -> None:
    gate = _gate(room)
    assert not any(_passes(gate, room.frame(flicker=flicker)) for _ in range(3))


def test_rolling_shutter_banding_is_skipped(room: Room) -> None:
    gate = _gate(room)
    assert not any(_passes(gate, room.frame(banding=0.04, flicker=0.03)) for _ in range(3))


@pytest.mark.parametrize("position", range(PERSON_POSITIONS))
def test_a_person_covering_three_percent_is_analysed(room: Room, position: int) -> None:
    gate = _gate(room)
    decision = gate.check(decode_thumbnail(room.frame(person=Person(0.03, position))), T0)
    assert decision.analyse
    assert decision.reason == "changed"


def test_the_person_becomes_the_reference_once_analysed(room: Room) -> None:
    gate = _gate(room)
    person = decode_thumbnail(room.frame(person=Person(0.03, 1)))
    assert gate.check(person, T0).analyse
    gate.analysed(person, T0)
    # Standing still: skipped; walking away: analysed again.
    assert not _passes(gate, room.frame(person=Person(0.03, 1)))
    assert _passes(gate, room.frame())


def test_a_static_scene_is_looked_at_again_after_the_relook_interval(room: Room) -> None:
    gate = _gate(room)
    frame = decode_thumbnail(room.frame())
    assert gate.check(frame, T0 + RELOOK - timedelta(seconds=1)).reason == "unchanged"
    decision = gate.check(frame, T0 + RELOOK)
    assert (decision.analyse, decision.reason) == (True, "relook")
    gate.analysed(frame, T0 + RELOOK)
    # The clock restarts from that analysis.
    assert not gate.check(frame, T0 + RELOOK + timedelta(minutes=5)).analyse
    assert gate.check(frame, T0 + 2 * RELOOK).reason == "relook"


def test_without_a_relook_interval_a_static_scene_stays_skipped(room: Room) -> None:
    gate = ChangeGate(DEFAULT, None)
    frame = decode_thumbnail(room.frame())
    gate.analysed(frame, T0)
    assert not gate.check(frame, T0 + timedelta(days=2)).analyse


def test_a_frame_that_must_be_analysed_passes_unchanged(room: Room) -> None:
    gate = _gate(room)
    decision = gate.check(decode_thumbnail(room.frame()), T0, must_analyse=True)
    assert (decision.analyse, decision.reason) == (True, "must_analyse")


def test_sensitivity_one_analyses_every_frame_and_zero_only_big_changes(room: Room) -> None:
    every = _gate(room, 1.0)
    assert all(_passes(every, room.frame()) for _ in range(2))

    big_only = _gate(room, 0.0)
    assert not _passes(big_only, room.frame(person=Person(0.01, 1)))
    assert not _passes(big_only, room.frame(flicker=0.05))
    # Another view altogether is a big change, even in dim light.
    assert _passes(big_only, Room(1920, 1080, seed=6).frame(flicker=-0.8))


def test_the_threshold_falls_as_sensitivity_rises() -> None:
    values = [gate_threshold(s / 10) for s in range(11)]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(0.2)
    assert values[5] == pytest.approx(0.02)
    assert values[10] == 0.0
    # Out-of-range values are clamped, not extrapolated.
    assert gate_threshold(-1) == values[0]
    assert gate_threshold(2) == 0.0


def test_a_resolution_change_counts_as_changed() -> None:
    small = np.zeros((90, 160), np.float32)
    assert change_score(small, np.zeros((120, 160), np.float32)) == 1.0


def test_a_change_confined_to_one_cell_scores_fully() -> None:
    """The score is local: one changed 10 x 10 cell is not diluted by the rest of the frame."""
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.2, 0.8, (90, 160)).astype(np.float32)
    current = reference.copy()
    current[40:50, 80:90] += 0.3
    assert change_score(reference, current) == pytest.approx(0.3, abs=0.02)
    assert float(np.mean(np.abs(current - reference))) < 0.003  # what a global mean would see
