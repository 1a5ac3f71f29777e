"""The options file: what the Supervisor writes, what a standalone user writes, what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vision_tutor_teacher.options import Options, OptionsError, load_options, parse_options


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "options.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_supervisors_options_file_is_read_with_defaults_for_the_rest(tmp_path: Path) -> None:
    # What the Supervisor writes for a user who only filled in the required URL.
    supervisor_written = {
        "teacher_url": "http://192.168.1.20:11434/",
        "teacher_model": "gemma4:26b",
        "student_model": "gemma4:e2b",
        "embedding_model": "embeddinggemma",
        "queue_limit": 20,
        "batch_window_ms": 1000,
        "retention_days": 30,
        "frame_disk_cap_mb": 1024,
        "max_image_mb": 8,
        "teacher_timeout_s": 120,
        "teacher_concurrency": 1,
        "max_attempts": 5,
        "agreement_threshold": 0.75,
        "log_level": "info",
    }

    options = load_options(write(tmp_path, supervisor_written))

    assert options.teacher_url == "http://192.168.1.20:11434"  # trailing slash dropped
    assert options.student_url is None
    assert options.max_image_bytes == 8 * 1024 * 1024
    assert options.frame_disk_cap_bytes == 1024 * 1024 * 1024
    assert options.retry_base_s == 2.0  # tuning knobs keep their defaults


def test_a_standalone_file_may_tune_and_may_blank_the_student_url(tmp_path: Path) -> None:
    options = load_options(
        write(
            tmp_path,
            {
                "teacher_url": "https://ollama.example:443",
                "student_url": " ",
                "heartbeat_s": 5,
                "log_level": "debug",
            },
        )
    )
    assert options.student_url is None
    assert options.heartbeat_s == 5
    assert options.log_level == "debug"
    assert Options(teacher_url="http://a:1", student_url="http://b:2/").student_url == "http://b:2"


def test_unknown_options_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = load_options(write(tmp_path, {"teacher_url": "http://t:1", "old_option": 1}))
    assert options.teacher_url == "http://t:1"
    assert "Ignoring unknown options: old_option" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({}, "teacher_url: Field required"),
        ({"teacher_url": "teacher:11434"}, "teacher_url: Value error, must be an http"),
        ({"teacher_url": "http://t:1", "queue_limit": 0}, "queue_limit: Input should be greater"),
        ({"teacher_url": "http://t:1", "log_level": "trace"}, "log_level: Input should be"),
        (
            {"teacher_url": "http://t:1", "agreement_threshold": 2, "max_attempts": 0},
            "max_attempts: Input should be greater than or equal to 1; agreement_threshold",
        ),
        ([1, 2], "options must be a JSON object"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_invalid_options_are_refused_naming_the_field(
    tmp_path: Path, content: object, message: str
) -> None:
    with pytest.raises(OptionsError) as raised:
        load_options(write(tmp_path, content))
    assert message in str(raised.value)


def test_many_errors_are_summarised(tmp_path: Path) -> None:
    bad = dict.fromkeys(Options.model_fields, "x")
    with pytest.raises(OptionsError, match=r"and [0-9]+ more"):
        parse_options(bad)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="cannot read options file"):
        load_options(tmp_path / "missing.json")
