"""Calibration from teacher verdicts: weighting, the isotonic fit, thresholds, buckets, decay."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from datetime import datetime, time
import random

import pytest

from custom_components.vision_tutor.calibration import (
    AUDIT_RATE_SETTLING,
    AUDIT_RATE_THIN,
    LOW_CONFIDENCE_FLOOR,
    MIN_AUDITS,
    MIN_AUDITS_FLOOR,
    SETTLED_AUDITS,
    CameraCalibration,
    Sample,
    Target,
    TargetKind,
    decay,
    fit,
    fit_isotonic,
    time_bucket,
    weighted_auc,
    wilson_interval,
)

NOW = 1_800_000_000.0
DAY = 86400.0


def _truth(x: float) -> float:
    """P(the student is right) at signal x: rising, the shape the tests recover."""
    return 0.3 + 0.65 * x


def _frames(
    count: int, seed: int, truth: Callable[[float], float] = _truth
) -> list[tuple[float, bool]]:
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        x = rng.random()
        frames.append((x, rng.random() < truth(x)))
    return frames


def _sample(
    x: float,
    agreed: bool,
    *,
    weight: float = 1.0,
    audit: bool = False,
    at: float = NOW,
    bucket: str = "all",
    missed: bool = False,
    forced: bool = False,
) -> Sample:
    return Sample(x, None, agreed, missed, forced, weight, at, audit, bucket)  # type: ignore[arg-type]


def _labelled_like_the_policy(
    frames: list[tuple[float, bool]], threshold: float, rate: int, seed: int
) -> list[Sample]:
    """What the policy labels: every frame below the threshold, 1 in `rate` above it."""
    rng = random.Random(seed)
    samples = []
    for x, right in frames:
        if x < threshold:
            samples.append(_sample(x, right))
        elif rng.random() < 1 / rate:
            samples.append(_sample(x, right, weight=rate, audit=True))
    return samples


def test_a_biased_sample_weighted_gives_the_calibration_of_an_unbiased_one() -> None:
    frames = _frames(60_000, seed=1)
    unbiased = fit([_sample(x, right, audit=True) for x, right in frames], NOW)
    biased = _labelled_like_the_policy(frames, threshold=0.5, rate=10, seed=2)
    weighted = fit(biased, NOW)
    unweighted = fit([_sample(s.stated or 0, s.agreed, audit=True) for s in biased], NOW)

    for x in (0.2, 0.5, 0.7, 0.9):
        assert weighted.curve(x) == pytest.approx(unbiased.curve(x), abs=0.05)
    # The estimated share of frames below a threshold is the population's only when weighted.
    assert weighted.share(0.3, 0.0) == pytest.approx(0.3, abs=0.02)
    assert unweighted.share(0.3, 0.0) > 0.5


def test_the_fit_is_monotone_and_recovers_the_truth() -> None:
    frames = _frames(20_000, seed=3)
    curve = fit_isotonic((x, float(right), 1.0) for x, right in frames)
    xs = [i / 100 for i in range(101)]
    values = [curve(x) for x in xs]
    assert values == sorted(values)
    for x in (0.1, 0.5, 0.9):
        assert curve(x) == pytest.approx(_truth(x), abs=0.06)


def test_pool_adjacent_violators_pools_an_inversion() -> None:
    curve = fit_isotonic([(0.1, 1.0, 1.0), (0.2, 0.0, 1.0), (0.3, 1.0, 2.0)])
    # The first two pool into one flat block; between blocks the curve is interpolated.
    assert curve.xs == (0.1, 0.2, 0.3)
    assert curve(0.1) == curve(0.15) == curve(0.2) == pytest.approx(0.5)
    assert curve(0.3) == pytest.approx(1 - 0.005)  # kept off certainty
    assert 0.5 < curve(0.25) < 0.995
    with pytest.raises(ValueError, match="no weighted points"):
        fit_isotonic([])


def test_an_inverted_signal_gives_a_flat_curve_at_the_agreement_rate() -> None:
    """Right answers with the lower signal (as real models' token evidence can be): the
    monotone fit cannot invert it, so it says what it knows, the overall rate."""
    frames = _frames(10_000, seed=4, truth=lambda x: 0.95 - 0.3 * x)
    curve = fit_isotonic((x, float(right), 1.0) for x, right in frames)
    rate = sum(right for _, right in frames) / len(frames)
    assert curve(0.05) == pytest.approx(rate, abs=0.03)
    assert curve(0.95) == pytest.approx(rate, abs=0.03)


def test_the_signal_that_ranks_best_on_the_verdicts_is_used() -> None:
    rng = random.Random(5)
    samples = []
    for _ in range(2000):
        right = rng.random() < 0.8
        stated = round(rng.uniform(0.5, 0.8), 2)  # under-confident, and says nothing
        evidence = rng.uniform(0.9, 1.0) if right else rng.uniform(0.6, 0.95)
        samples.append(Sample(stated, evidence, right, False, False, 1.0, NOW, True))
    chosen = fit(samples, NOW)
    assert chosen.kind == "evidence"
    assert chosen.auc > 0.85
    assert weighted_auc([(0.1, False, 1.0), (0.9, True, 1.0)]) == 1.0
    assert weighted_auc([(0.5, False, 1.0), (0.5, True, 1.0)]) == 0.5


def test_the_current_rule_until_enough_audits() -> None:
    calibration = CameraCalibration(
        target=Target(TargetKind.SHARE, 0.5), fallback_threshold=0.72, base_audit_rate=150
    )
    for x, right in _frames(MIN_AUDITS - 1, seed=6):
        calibration.add(_sample(x, right, weight=150, audit=True))
    for x, right in _frames(100, seed=7):
        calibration.add(_sample(x, right))
    routing = calibration.routing("all", NOW)
    assert not routing.calibrated
    assert (routing.threshold, routing.audit_rate, routing.state) == (0.72, AUDIT_RATE_THIN, "thin")
    assert calibration.probability(0.9, None, "all", NOW) is None

    calibration.add(_sample(0.9, True, weight=150, audit=True))
    routing = calibration.routing("all", NOW)
    assert routing.calibrated
    # In use, but it wants more audits before the user's own rate applies.
    assert (routing.state, routing.audit_rate) == ("settling", AUDIT_RATE_SETTLING)
    assert calibration.probability(0.9, None, "all", NOW) is not None
    for x, right in _frames(SETTLED_AUDITS - MIN_AUDITS, seed=19):
        calibration.add(_sample(x, right, weight=20, audit=True))
    assert (calibration.routing("all", NOW).state, calibration.routing("all", NOW).audit_rate) == (
        "stable",
        150,
    )


def test_fewer_audits_suffice_when_most_frames_are_reviewed_anyway() -> None:
    """An under-confident student: four frames in five are below the threshold, all reviewed;
    the audits only have to speak for the fifth."""
    calibration = CameraCalibration(base_audit_rate=150)
    for x, right in _frames(400, seed=22):
        calibration.add(_sample(x, right))
    for x, right in _frames(MIN_AUDITS_FLOOR - 1, seed=23):
        calibration.add(_sample(x, right, weight=4, audit=True))
    assert not calibration.routing("all", NOW).calibrated
    calibration.add(_sample(0.9, True, weight=4, audit=True))
    assert calibration.routing("all", NOW).calibrated


def test_a_calibration_in_use_stays_in_use_while_its_audits_speak_for_more() -> None:
    """In use, its lower threshold leaves more frames to the audits (heavier weights); that
    must not switch it back to the fixed rule, down to MIN_AUDITS_FLOOR audits."""
    calibration = CameraCalibration(base_audit_rate=150)
    for x, right in _frames(400, seed=24):
        calibration.add(_sample(x, right))
    for x, right in _frames(MIN_AUDITS_FLOOR, seed=25):
        calibration.add(_sample(x, right, weight=4, audit=True))
    assert calibration.routing("all", NOW).calibrated
    for x, right in _frames(5, seed=26):  # audits that stand for many frames each
        calibration.add(_sample(x, right, weight=150, audit=True))
    assert calibration.routing("all", NOW).calibrated
    fresh = CameraCalibration(base_audit_rate=150)
    fresh.load(calibration.as_dict())  # and after a restart
    assert fresh.routing("all", NOW).calibrated
    fresh.in_use.clear()  # a camera that never used one would wait for more audits
    fresh.add(_sample(0.5, True))
    assert not fresh.routing("all", NOW).calibrated


def test_the_least_sure_frames_are_reviewed_even_when_safety_frames_exhaust_the_budget() -> None:
    calibration = CameraCalibration(target=Target(TargetKind.SHARE, 0.15), base_audit_rate=150)
    rng = random.Random(27)
    for x, right in _frames(2000, seed=27):
        forced = rng.random() < 0.3  # a camera on a busy road: safety frames everywhere
        calibration.add(_sample(x, right, audit=not forced, forced=forced))
    routing = calibration.routing("all", NOW)
    current = calibration.fit_for("all", NOW)
    assert current is not None
    assert current.forced_share > 0.15
    below = current.cumulative[bisect_left(current.signals, routing.threshold)]
    assert below / current.cumulative[-1] == pytest.approx(LOW_CONFIDENCE_FLOOR, abs=0.005)


def test_frames_known_only_from_audits_make_the_threshold_cautious() -> None:
    """The same frames, once all reviewed (weight 1), once one in ten audited (weight 10):
    with the uncertain estimate the threshold keeps a margin below the budget."""
    certain = CameraCalibration(target=Target(TargetKind.SHARE, 0.15), base_audit_rate=150)
    uncertain = CameraCalibration(target=Target(TargetKind.SHARE, 0.15), base_audit_rate=150)
    rng = random.Random(28)
    for x, right in _frames(5000, seed=28):
        certain.add(_sample(x, right, audit=True))
        if rng.random() < 0.1:
            uncertain.add(_sample(x, right, weight=10, audit=True))
    sure, unsure = certain.routing("all", NOW), uncertain.routing("all", NOW)
    fit_sure, fit_unsure = certain.fit_for("all", NOW), uncertain.fit_for("all", NOW)
    assert fit_sure is not None
    assert fit_unsure is not None
    # All reviewed: the threshold goes right up to the budget.
    assert 0.148 < fit_sure.share(sure.threshold, 1 / 150) <= 0.15
    # Known from audits: a standard error (about 1.6 points here) is kept in hand.
    assert fit_unsure.share(unsure.threshold, 1 / 150, z=1.0) <= 0.15
    assert fit_unsure.share(unsure.threshold, 1 / 150) < 0.15 - 0.01


def _population(count: int, seed: int) -> CameraCalibration:
    """Every frame labelled once (weight 1), one in twenty forced (safety)."""
    calibration = CameraCalibration(target=Target(TargetKind.SHARE, 0.15), base_audit_rate=150)
    rng = random.Random(seed)
    for x, right in _frames(count, seed):
        forced = rng.random() < 0.05
        calibration.add(_sample(x, right, audit=not forced, forced=forced, missed=not right))
    return calibration


def test_the_threshold_meets_the_teacher_budget() -> None:
    calibration = _population(2000, seed=8)
    current = calibration.fit_for("all", NOW)
    assert current is not None
    routing = calibration.routing("all", NOW)
    audit_p = 1 / routing.audit_rate
    assert current.share(routing.threshold, audit_p) <= 0.15
    # The highest such threshold: a little higher would be over the budget.
    assert current.share(routing.threshold + 0.01, audit_p) > 0.15 - 0.002
    # Held on fresh frames of the same camera: forced 5 % + below the threshold + audits.
    fresh = _frames(20_000, seed=9)
    below = sum(x < routing.threshold for x, _ in fresh) / len(fresh)
    assert 0.05 + 0.95 * (below + (1 - below) * audit_p) == pytest.approx(0.15, abs=0.015)
    # A queue under pressure halves the budget.
    squeezed = calibration.routing("all", NOW, queue_pressure=0.8)
    assert current.share(squeezed.threshold, audit_p) <= 0.075
    assert squeezed.threshold < routing.threshold


def test_a_budget_of_reviews_per_hour_becomes_a_share_of_the_frame_rate() -> None:
    calibration = _population(2000, seed=10)
    calibration.target = Target(TargetKind.REVIEWS_PER_HOUR, 12)
    for minute in range(120):  # 60 frames an hour
        calibration.count_frame(NOW - 7200 + minute * 60)
    assert calibration.frames_per_hour(NOW) == pytest.approx(40, rel=0.3)
    assert calibration.budget_share(NOW) == pytest.approx(12 / calibration.frames_per_hour(NOW))


def test_the_threshold_for_a_maximum_missed_hazard_rate() -> None:
    calibration = _population(2000, seed=11)
    calibration.target = Target(TargetKind.MISS_RATE, 50)  # per 1000 frames
    current = calibration.fit_for("all", NOW)
    assert current is not None
    routing = calibration.routing("all", NOW)
    assert current.miss_rate(routing.threshold, 1 / 150) <= 0.05
    assert current.miss_rate(routing.threshold - 0.02, 1 / 150) > 0.05
    assert calibration.estimated_miss_rate("all", NOW) == pytest.approx(
        1000 * current.miss_rate(routing.threshold, 1 / 150)
    )


def test_day_and_night_buckets() -> None:
    evening = datetime(2026, 12, 2, 20, 30)
    assert time_bucket("off", evening) == "all"
    assert time_bucket("hours", evening) == "night"
    assert time_bucket("hours", evening, day=(time(8), time(22))) == "day"
    assert time_bucket("hours", datetime(2026, 12, 2, 2), day=(time(22), time(6))) == "day"
    assert time_bucket("sun", evening, sun_up=True) == "day"
    assert time_bucket("sun", evening) == "night"  # no sun entity: fixed hours


def test_a_bucket_uses_its_own_calibration_once_it_has_one() -> None:
    calibration = CameraCalibration(base_audit_rate=150)
    for x, right in _frames(400, seed=12):
        calibration.add(_sample(x, right, audit=True, bucket="day"))
    # Nights are worse for this camera; until they have audits, the camera's fit stands.
    assert calibration.fit_for("night", NOW) is calibration.fit_for("all", NOW)
    for x, right in _frames(400, seed=13, truth=lambda x: 0.1 + 0.5 * x):
        calibration.add(_sample(x, right, audit=True, bucket="night"))
    day, night = calibration.fit_for("day", NOW), calibration.fit_for("night", NOW)
    assert day is not None
    assert night is not None
    assert day is not night
    assert night.curve(0.8) < day.curve(0.8) - 0.2


def test_old_samples_decay() -> None:
    assert decay(14 * DAY) == pytest.approx(0.5)
    assert decay(0) == 1.0
    calibration = CameraCalibration(base_audit_rate=150)
    for x, _ in _frames(300, seed=14):
        calibration.add(_sample(x, False, audit=True, at=NOW - 60 * DAY))  # long ago: wrong
    for x, _ in _frames(300, seed=15):
        calibration.add(_sample(x, True, audit=True, at=NOW))  # now: right
    reliability = calibration.reliability(NOW)
    assert reliability.agreement is not None
    assert reliability.agreement > 0.9
    assert reliability.audits == 600
    assert calibration.probability(0.5, None, "all", NOW) == pytest.approx(0.94, abs=0.03)


def test_the_sample_is_bounded() -> None:
    calibration = CameraCalibration(max_samples=100)
    for index in range(250):
        calibration.add(_sample(0.5, True, at=NOW + index))
    assert len(calibration.samples) == 100
    assert calibration.samples[0].at == NOW + 150  # the oldest went first


def test_audits_rise_while_the_audits_disagree_with_the_calibration() -> None:
    calibration = CameraCalibration(target=Target(TargetKind.SHARE, 0.5), base_audit_rate=150)
    for x, right in _frames(400, seed=16):
        calibration.add(_sample(x, right, audit=True, at=NOW - DAY))
    assert calibration.routing("all", NOW).state == "stable"
    for x, _ in _frames(40, seed=17):  # the camera moved: now the student is always wrong
        calibration.add(_sample(max(x, 0.6), False, audit=True))
    routing = calibration.routing("all", NOW)
    assert (routing.state, routing.audit_rate) == ("drifting", AUDIT_RATE_SETTLING)


def test_audits_take_only_a_part_of_a_tight_budget() -> None:
    """Safety frames take 10 % of a 15 % budget: audits may use a quarter of the rest."""
    calibration = CameraCalibration(target=Target(TargetKind.SHARE, 0.15), base_audit_rate=150)
    rng = random.Random(20)
    for x, right in _frames(1000, seed=20):
        forced = rng.random() < 0.10
        calibration.add(_sample(x, right, audit=not forced, forced=forced, at=NOW - DAY))
    for x, _ in _frames(30, seed=21):  # the recent audits disagree: drifting
        calibration.add(_sample(max(x, 0.6), False, audit=True))
    routing = calibration.routing("all", NOW)
    assert routing.state == "drifting"
    current = calibration.fit_for("all", NOW)
    assert current is not None
    forced = current.forced_weight / current.total_weight
    assert 1 / routing.audit_rate <= 0.25 * (0.15 - forced) / (1 - forced) + 1e-9
    assert routing.audit_rate <= 150  # never rarer than the user's own rate
    assert routing.threshold > 0  # room is left for the frames the student is unsure of


def test_reliability_has_a_95_percent_interval() -> None:
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(0.826, abs=0.002)
    assert high == pytest.approx(0.945, abs=0.002)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert CameraCalibration().reliability(NOW).agreement is None


def test_saved_and_loaded_it_routes_the_same() -> None:
    calibration = _population(500, seed=18)
    calibration.count_frame(NOW)
    restored = CameraCalibration(target=calibration.target, base_audit_rate=150)
    restored.load(calibration.as_dict())
    assert restored.routing("all", NOW) == calibration.routing("all", NOW)
    assert restored.frames_per_hour(NOW) == calibration.frames_per_hour(NOW)
    broken = {"samples": [{"a": True}, calibration.samples[0].as_dict()], "frame_hours": {"x": 1}}
    restored.load(broken)
    assert len(restored.samples) == 1
    assert restored.frame_hours == {}


def test_a_target_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        Target(TargetKind.SHARE, 1.5)
    Target(TargetKind.REVIEWS_PER_HOUR, 30)
