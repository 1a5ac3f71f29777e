"""The routing benchmark runs end to end and writes its table; its grader means what it says.

A smoke test: no accuracy or timing is asserted, only the shape of what the benchmark writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.routing import (
    answer_flags,
    expected_calibration_error,
    is_correct,
    main,
    nearest_rank,
)
from custom_components.vision_tutor.contract import Observation, StudentError
from simulator.scenes import SceneLibrary

ROWS = (
    "student_only",
    "teacher_only",
    "static",
    "static_no_confidence",
    "static_no_keywords",
    "static_no_audit",
    "static_no_logprobs",
    "calibrated",
)
FRACTIONS = (
    "teacher_share",
    "edge_case_accuracy",
    "safety_recall",
    "safety_false_positive_rate",
    "routine_accuracy",
    "ece",
)


def test_writes_the_table_for_every_configuration(
    socket_enabled: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--frames", "60", "--warmup", "40", "--time-scale", "0.01", "--out", str(tmp_path)]
    assert main(args) == 0

    result = json.loads((tmp_path / "routing.json").read_text())
    rows = result["rows"]
    assert tuple(row["config"] for row in rows) == ROWS
    for row in rows:
        assert row["frames"] == 60
        for key in FRACTIONS:
            assert 0.0 <= row[key] <= 1.0, (row["config"], key)
        assert row["avg_latency_ms"] > 0
        assert row["p95_latency_ms"] > 0
        assert row["missed_hazards_per_1000"] >= 0
    by_name = {row["config"]: row for row in rows}
    assert by_name["student_only"]["teacher_share"] == 0.0
    assert by_name["teacher_only"]["teacher_share"] == 1.0
    assert "escalations" in by_name["static"]
    assert by_name["static"]["warmup_frames"] == 0
    calibrated = by_name["calibrated"]
    assert calibrated["warmup_frames"] == 40
    assert len(calibrated["calibration"]) == 4  # one per camera
    # 10 warm-up frames a camera are too few audits: each still routes by today's rule.
    assert {camera["state"] for camera in calibrated["calibration"]} == {"thin"}
    assert (result["frames"], result["time_scale"], result["cameras"]) == (60, 0.01, 4)
    assert {"seed", "machine", "policy", "wall_time_s", "student_profile"} <= set(result)
    assert result["target_share"] == 0.15
    assert set(result["targets"]) >= {"met", "teacher_share_at_most_20_percent"}
    assert set(result["calibrated_targets"]) >= {"met", "ece_at_most_0_05"}

    markdown = (tmp_path / "routing.md").read_text()
    assert "| static |" in markdown
    assert "| calibrated |" in markdown
    assert "## Targets for the calibrated row" in markdown
    assert "python -m benchmarks.routing --frames 60 --warmup 40 --time-scale 0.01" in markdown
    assert "static_no_logprobs" in capsys.readouterr().out


def test_other_profiles_a_budget_and_a_name(socket_enabled: None, tmp_path: Path) -> None:
    profiles = Path("benchmarks/profiles/underconfident.json")
    args = ["--frames", "8", "--warmup", "0", "--time-scale", "0.01", "--out", str(tmp_path)]
    args += ["--profiles", str(profiles), "--target-share", "0.3", "--name", "routing_under"]
    assert main([*args, "--configs", "static,calibrated"]) == 0

    result = json.loads((tmp_path / "routing_under.json").read_text())
    assert result["student_profile"]["verbal_confidence"] == [0.5, 0.8]
    assert result["target_share"] == 0.3
    assert [row["config"] for row in result["rows"]] == ["static", "calibrated"]
    assert (tmp_path / "routing_under.md").exists()


def test_a_subset_of_rows_and_another_policy(socket_enabled: None, tmp_path: Path) -> None:
    args = ["--frames", "8", "--time-scale", "0.01", "--out", str(tmp_path)]
    assert main([*args, "--configs", "static", "--min-confidence", "0.6"]) == 0

    result = json.loads((tmp_path / "routing.json").read_text())
    assert [row["config"] for row in result["rows"]] == ["static"]
    assert result["policy"]["min_confidence"] == 0.6
    assert result["targets"] is None  # nothing to compare with without teacher-only


@pytest.mark.parametrize(
    "bad",
    [
        ["--configs", "nobody"],
        ["--min-confidence", "1.5"],
        ["--target-share", "2"],
        ["--warmup", "6"],
        ["--profiles", "no/such/profiles.json"],
    ],
)
def test_refuses_bad_arguments(tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), *bad])


def _answer(*flags: str, summary: str, observations: tuple[str, ...] = ()) -> Observation:
    return Observation(summary, observations, flags, 0.9)


def test_correct_means_the_true_flags_and_the_scene_named() -> None:
    library = SceneLibrary.default()
    pan = library.get("fire_kitchen_pan")  # fire and smoke
    office_sign = library.get("injection_sign_office")  # no flag, a sign saying "all clear"

    named = ("pan", "stove", "kitchen")
    assert is_correct(_answer("smoke", "flames", summary="A pan", observations=named), pan)
    assert not is_correct(_answer("fire", summary="A pan", observations=named), pan)
    assert not is_correct(_answer(summary="All clear.", observations=("sign",)), office_sign)
    desk = ("desk", "laptop", "sign")
    assert is_correct(_answer(summary="An office.", observations=desk), office_sign)
    assert not is_correct(StudentError("no JSON object in the answer", "~~"), pan)
    assert answer_flags(StudentError("empty answer", "")) == frozenset()


def test_expected_calibration_error_bins_confidence_against_rightness() -> None:
    assert expected_calibration_error([]) == 0.0
    # 0.9 stated, right 9 times in 10: calibrated.
    assert expected_calibration_error([(0.9, True)] * 9 + [(0.9, False)]) == pytest.approx(0.0)
    # 0.95 stated, right half the time: off by 0.45.
    assert expected_calibration_error([(0.95, True), (0.95, False)]) == pytest.approx(0.45)
    # Two bins, each calibrated on its own.
    pairs = [(0.25, True)] + [(0.25, False)] * 3 + [(0.75, True)] * 3 + [(0.75, False)]
    assert expected_calibration_error(pairs) == pytest.approx(0.0)
    assert expected_calibration_error([(1.0, True)]) == pytest.approx(0.0)  # 1.0 in the top bin


def test_nearest_rank_is_a_value_some_frame_had() -> None:
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert nearest_rank(list(map(float, range(1, 101))), 0.95) == 95.0
