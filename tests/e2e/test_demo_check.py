"""`scripts/demo --check`: the README's first command, headless, as a newcomer's machine runs it."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess

ROOT = Path(__file__).parents[2]


def test_demo_check_reports_a_safety_escalation_with_the_teachers_verdict(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "demo"
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--check", "--dir", str(folder), "--timeout", "180"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Vision Tutor demo check: OK" in output
    # The escalation, and the teacher's verdict as the entities show it.
    assert re.search(r"escalated: safety - ", output), output
    assert "source=teacher, escalation_reason=safety" in output
    assert re.search(r"binary_sensor\.\w+_safety: on, .*confirmed_by_teacher=True", output)
    assert "dashboard resource /vision_tutor/vision-tutor-card.js?v=" in output
    assert re.search(r"automation '.+ safety alert' \(blueprint\): last triggered 20", output)
    # Everything it started was stopped, in order.
    for name in ("Home Assistant", "the teacher service", "the simulator"):
        assert f"Stopping {name}" in output
    assert not any(line.startswith("error") for line in result.stdout.splitlines()), result.stdout
