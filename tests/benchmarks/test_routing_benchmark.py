"""The routing benchmark runs end to end and writes its table; its grader means what it says.

A smoke test: no accuracy or timing is asserted, only the shape of what the benchmark writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.routing import answer_flags, is_correct, main, nearest_rank
from custom_components.vision_tutor.contract import Observation, StudentError
from simulator.scenes import SceneLibrary

ROWS = (
    "student_only",
    "teacher_only",
    "orchestrated",
    "orchestrated_no_confidence",
    "orchestrated_no_keywords",
    "orchestrated_no_audit",
    "orchestrated_no_logprobs",
)
FRACTIONS = (
    "teacher_share",
    "edge_case_accuracy",
    "safety_recall",
    "safety_false_positive_rate",
    "routine_accuracy",
)


def test_writes_the_table_for_every_configuration(
    socket_enabled: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--frames", "60", "--time-scale", "0.01", "--out", str(tmp_path)]) == 0

    result = json.loads((tmp_path / "routing.json").read_text())
    rows = result["rows"]
    assert tuple(row["config"] for row in rows) == ROWS
    for row in rows:
        assert row["frames"] == 60
        for key in FRACTIONS:
            assert 0.0 <= row[key] <= 1.0, (row["config"], key)
        assert row["avg_latency_ms"] > 0
        assert row["p95_latency_ms"] > 0
    by_name = {row["config"]: row for row in rows}
    assert by_name["student_only"]["teacher_share"] == 0.0
    assert by_name["teacher_only"]["teacher_share"] == 1.0
    assert "escalations" in by_name["orchestrated"]
    assert (result["frames"], result["time_scale"], result["cameras"]) == (60, 0.01, 4)
    assert {"seed", "machine", "policy", "wall_time_s"} <= set(result)
    assert set(result["targets"]) >= {"met", "teacher_share_at_most_20_percent"}

    markdown = (tmp_path / "routing.md").read_text()
    assert "| orchestrated |" in markdown
    assert "python -m benchmarks.routing --frames 60 --time-scale 0.01" in markdown
    assert "orchestrated_no_logprobs" in capsys.readouterr().out


def test_a_subset_of_rows_and_another_policy(socket_enabled: None, tmp_path: Path) -> None:
    args = ["--frames", "8", "--time-scale", "0.01", "--out", str(tmp_path)]
    assert main([*args, "--configs", "orchestrated", "--min-confidence", "0.6"]) == 0

    result = json.loads((tmp_path / "routing.json").read_text())
    assert [row["config"] for row in result["rows"]] == ["orchestrated"]
    assert result["policy"]["min_confidence"] == 0.6
    assert result["targets"] is None  # nothing to compare with without teacher-only


@pytest.mark.parametrize("bad", [["--configs", "nobody"], ["--min-confidence", "1.5"]])
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


def test_nearest_rank_is_a_value_some_frame_had() -> None:
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert nearest_rank(list(map(float, range(1, 101))), 0.95) == 95.0
