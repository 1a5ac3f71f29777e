"""The frame benchmark runs end to end and writes exactly the keys the issue asks for.

A smoke test on tiny settings: no timing is asserted, only the shape of what is written and the
outcomes that do not depend on the machine's speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.frames import main

KEYS = {
    "prep_ms_median_1080p",
    "bound_ms_median_1080p",
    "prep_ms_median_4k",
    "bound_ms_median_4k",
    "skipped_frame_ms_median_1080p",
    "skipped_frame_bound_ms_median_1080p",
    "loop_lag_ms",
    "gate",
    "recorder_rows_per_skipped_frame",
}
GATE_KEYS = {
    "static_noise_skip_rate",
    "flicker_skip_rate",
    "person_1pct_pass_rate",
    "person_3pct_pass_rate",
    "person_6pct_pass_rate",
}


def test_writes_the_frame_numbers_and_the_table(
    socket_enabled: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--out", str(tmp_path), "--seconds", "2", "--cameras", "2"]
    assert main([*argv, "--frames", "1", "--skips", "2", "--grabs", "2"]) == 0

    result = json.loads((tmp_path / "frames.json").read_text())
    assert set(result) == KEYS
    assert set(result["gate"]) == GATE_KEYS
    assert all(0.0 <= rate <= 1.0 for rate in result["gate"].values())
    assert set(result["loop_lag_ms"]) == {"cameras_2"}
    assert set(result["loop_lag_ms"]["cameras_2"]) == {"p50", "p99", "max"}
    for key in KEYS - {"loop_lag_ms", "gate", "recorder_rows_per_skipped_frame"}:
        assert result[key] > 0, key
    # Static rooms: the cameras skip their frames, and skipped frames write no rows.
    assert result["recorder_rows_per_skipped_frame"] == 0.0

    markdown = (tmp_path / "frames.md").read_text()
    assert "| 1080p |" in markdown
    assert "| 4k |" in markdown
    assert "python -m benchmarks.frames --out" in markdown
    assert '"details"' in capsys.readouterr().out
