"""The pool benchmark runs end to end on a tiny scale and writes its table.

A smoke test: no throughput is asserted (that is timing), only the shape of what it writes, that
the failover run kept every accepted review (that is not timing: nothing may be lost), and that
the exit status says whether the targets were met.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.pool import _hosts, main, speedups, targets


def test_writes_throughput_per_host_count_and_the_failover(
    socket_enabled: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--hosts", "1,2", "--time-scale", "0.05", "--reviews", "6", "--cameras", "2",
        "--frames-per-camera", "3", "--out", str(tmp_path),
    ]  # fmt: skip
    code = main(argv)

    result = json.loads((tmp_path / "pool.json").read_text())
    for part in ("teacher", "student"):
        assert set(result[part]) == {"1", "2"}
        for row in result[part].values():
            assert row["reviews_per_s"] > 0
            assert row["p95_ms"] > 0
    assert [result["teacher"][n]["reviews"] for n in ("1", "2")] == [6, 6]
    assert [result["student"][n]["frames"] for n in ("1", "2")] == [6, 6]
    # Both hosts got work, and each student host had one of the two cameras.
    assert all(n > 0 for n in result["teacher"]["2"]["reviewed_by_host"].values())
    assert result["student"]["2"]["cameras_by_host"] == {"host 1": 1, "host 2": 1}
    failover = result["failover"]
    assert failover["hosts"] == 2
    assert failover["accepted"] == 6
    assert (failover["completed"], failover["lost"], failover["duplicated"]) == (6, 0, 0)
    assert failover["dead_lettered"] == 0
    assert failover["killed_host_status_after"] == "unreachable"
    assert "scripted simulator models" in result["models"]
    assert code == (0 if all(result["targets"].values()) else 1)

    markdown = (tmp_path / "pool.md").read_text()
    assert "scripted models with scaled latency" in markdown
    assert "python -m benchmarks.pool --hosts 1,2 --time-scale 0.05" in markdown
    assert "| 2 |" in markdown
    assert "Failover" in capsys.readouterr().out


def test_speedups_and_targets_are_against_one_host() -> None:
    rows = {"1": {"reviews_per_s": 2.0}, "2": {"reviews_per_s": 3.5}, "4": {"reviews_per_s": 7.0}}
    assert speedups(rows) == {"1": 1.0, "2": 1.75, "4": 3.5}
    failover = {"accepted": 10, "completed": 10, "lost": 0, "duplicated": 0}
    met = targets({"teacher": rows, "student": rows, "failover": failover})
    assert met == {
        "teacher_2_hosts_at_least_1.8x": False,
        "teacher_4_hosts_at_least_3.4x": True,
        "student_2_hosts_at_least_1.8x": False,
        "student_4_hosts_at_least_3.4x": True,
        "failover_every_accepted_review_completed_once": True,
    }
    assert not targets({"teacher": rows, "student": rows, "failover": {**failover, "lost": 1}})[
        "failover_every_accepted_review_completed_once"
    ]


def test_host_counts_are_parsed_and_checked() -> None:
    assert _hosts("4,1,2,2") == [1, 2, 4]
    with pytest.raises(Exception, match="numbers like 1,2,4"):
        _hosts("one")
    with pytest.raises(Exception, match="at least 1"):
        _hosts("0,2")
