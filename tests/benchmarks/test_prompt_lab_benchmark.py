"""The prompt lab benchmark runs end to end through the add-on's API and writes its table.

A smoke test of the shape of what it writes; the committed results are the measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.prompt_lab import main, scene_cases
from simulator.scenes import SceneLibrary
from vision_tutor_teacher.lab.scoring import METHODS


def test_scene_cases_carry_ground_truth_and_forbid_only_unmentioned_hazards() -> None:
    cases = {case["name"]: case for case in scene_cases(SceneLibrary.default(), width=256)}
    assert len(cases) == 43
    desk = cases["scene desk_laptop_mug"]
    assert desk["expected_flags"] == []
    assert "mug|cup" in desk["expected_keywords"]
    assert "fire|flame|burning|blaze" in desk["forbidden_keywords"]
    fireplace = cases["scene fireplace_contained"]
    assert fireplace["expected_flags"] == []
    assert "fire|flame|burning|blaze" not in fireplace["forbidden_keywords"]  # it is a fire
    assert "fire" in cases["scene fire_kitchen_pan"]["expected_flags"]


def test_writes_the_comparison_and_the_rounds(
    socket_enabled: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rounds", "1", "--count", "3", "--final-runs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0

    result = json.loads((tmp_path / "prompt_lab.json").read_text())
    assert {"seed_holdout", "promoted_holdout", "rounds", "student_calls", "teacher_calls"} <= set(
        result
    )
    assert set(result["per_method"]) == set(METHODS)
    assert result["rounds"] == 1
    assert 0 < result["seed_holdout"] <= 1
    assert 0 < result["promoted_holdout"] <= 1
    assert result["student_calls"] > 100
    assert result["teacher_calls"] >= 87  # one reference per case, then synthesis
    assert result["suite"]["cases"] == 87
    (round_one,) = result["round_details"]
    assert round_one["state"] == "done"
    assert len(result["seed_holdout_runs"]) == 1

    markdown = (tmp_path / "prompt_lab.md").read_text()
    assert "| **score** |" in markdown
    assert "| safety |" in markdown
    assert "python -m benchmarks.prompt_lab --rounds 1 --count 3 --final-runs 1" in markdown
    assert "seed holdout" in capsys.readouterr().out


def test_refuses_nonsense_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])
    with pytest.raises(SystemExit):
        main(["--time-scale", "2"])
