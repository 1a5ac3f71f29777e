"""Parsing the student's answer: repairs what small models break, never invents "safe"."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.vision_tutor.contract import (
    OBSERVATION_SCHEMA,
    Observation,
    StudentError,
    hazard_mentions,
    normalise_flag,
    parse_confidence,
    parse_observation,
)

VALID = {
    "summary": "Open flame near the curtains",
    "observations": ["curtains", "candle"],
    "safety_flags": ["fire"],
    "confidence": 0.9,
}


def _parsed(text: str) -> Observation:
    result = parse_observation(text)
    assert isinstance(result, Observation), result
    return result


def test_an_answer_that_meets_the_contract_needs_no_repair() -> None:
    result = _parsed(json.dumps(VALID))
    assert result == Observation(
        "Open flame near the curtains", ("curtains", "candle"), ("fire",), 0.9
    )
    assert result.valid_as_sent


def test_schema_requires_every_contract_field() -> None:
    assert set(OBSERVATION_SCHEMA["required"]) == set(VALID)


@pytest.mark.parametrize(
    ("text", "repair"),
    [
        (f"```json\n{json.dumps(VALID)}\n```", "fenced"),
        (f"Here is my analysis:\n{json.dumps(VALID)}\nLet me know!", "surrounding text"),
        (f"```\n{json.dumps(VALID)}\n```\nHope that helps.", "fenced"),
    ],
)
def test_json_wrapped_in_fences_or_prose_is_repaired(text: str, repair: str) -> None:
    result = _parsed(text)
    assert result.safety_flags == ("fire",)
    assert result.confidence == 0.9
    assert repair in result.repairs
    assert not result.valid_as_sent


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("CONFIDENCE: 0.8", 0.8),
        ("Confidence - 85%", 0.85),
        ("confidence: high", 0.85),
        ("Confidence: very low", 0.1),
        ("CONFIDENCE: 72", 0.72),
    ],
)
def test_confidence_on_its_own_line_is_read(line: str, expected: float) -> None:
    answer = {key: value for key, value in VALID.items() if key != "confidence"}
    result = _parsed(f"{json.dumps(answer)}\n{line}")
    assert result.confidence == pytest.approx(expected)
    assert "confidence from text" in result.repairs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.8, 0.8),
        (1, 1.0),
        (85, 0.85),
        ("85%", 0.85),
        ("0.4", 0.4),
        ("High", 0.85),
        ("medium", 0.6),
        ("low", 0.3),
        (250, None),
        (-0.2, None),
        ("sure", None),
        (True, None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_confidence_values(value: object, expected: float | None) -> None:
    assert parse_confidence(value) == (pytest.approx(expected) if expected is not None else None)


def test_missing_fields_are_repaired_and_missing_confidence_stays_unknown() -> None:
    result = _parsed('{"summary": "A hallway", "safety_flags": []}')
    assert result.observations == ()
    assert result.safety_flags == ()
    assert result.confidence is None
    assert {"observations missing", "confidence missing"} <= set(result.repairs)


def test_flag_synonyms_fold_to_the_contract_names() -> None:
    result = _parsed(
        json.dumps(VALID | {"safety_flags": ["Flames", "knife", "fire", "INTRUDER", "none"]})
    )
    assert result.safety_flags == ("fire", "weapon", "intrusion")
    assert normalise_flag(" Bleeding ") == "blood"
    assert normalise_flag("flood") == "flood"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (None, "no safety_flags"),
        ("smoke, fire", "safety_flags is a str"),
        ("none", "safety_flags is a str"),
        (0, "safety_flags is a int"),
        ({"fire": True}, "safety_flags is a dict"),
        (["fire", 1], "not strings"),
    ],
)
def test_missing_or_wrongly_typed_safety_flags_are_a_student_error(
    flags: object, reason: str
) -> None:
    answer = VALID | {"safety_flags": flags, "confidence": 0.9}
    if flags is None:
        del answer["safety_flags"]
    result = parse_observation(json.dumps(answer))
    assert isinstance(result, StudentError)
    assert reason in result.reason
    # The summary still says "flame": the error keeps it as evidence.
    assert "fire" in result.evidence


def test_no_safety_flags_key_with_high_confidence_is_not_safe() -> None:
    result = parse_observation('{"summary": "A hallway", "observations": [], "confidence": 0.9}')
    assert isinstance(result, StudentError)
    assert result.evidence == ()


def test_a_hazard_in_prose_after_the_object_is_a_student_error() -> None:
    answer = {
        "summary": "A kitchen",
        "observations": ["pan"],
        "safety_flags": [],
        "confidence": 0.9,
    }
    result = parse_observation(f"{json.dumps(answer)}\nNote: the pan on the stove is on fire.")
    assert isinstance(result, StudentError)
    assert "outside the JSON answer" in result.reason
    assert result.evidence == ("fire",)


def test_prose_outside_the_object_that_agrees_with_the_flags_is_kept() -> None:
    result = _parsed(f"{json.dumps(VALID)}\nThe fire is spreading to the curtains.")
    assert result.safety_flags == ("fire",)
    assert "fire is spreading" in result.outside_text
    assert "surrounding text" in result.repairs


def test_a_negated_hazard_in_prose_outside_the_object_is_no_contradiction() -> None:
    answer = {"summary": "A kitchen", "observations": [], "safety_flags": [], "confidence": 0.9}
    result = _parsed(f"{json.dumps(answer)}\nNo smoke or flames are visible.")
    assert result.safety_flags == ()


def test_leaked_reasoning_with_a_benign_draft_before_the_answer_is_a_student_error() -> None:
    draft = {"summary": "A kitchen", "observations": [], "safety_flags": [], "confidence": 0.9}
    text = (
        f"Thinking... first draft: {json.dumps(draft)} wait, there are flames at the back. "
        f"Final answer: {json.dumps(VALID)}"
    )
    result = parse_observation(text)
    assert isinstance(result, StudentError)
    assert "disagree about safety flags" in result.reason
    assert result.evidence == ("fire",)


def test_of_several_objects_that_agree_the_last_complete_one_is_the_answer() -> None:
    draft = VALID | {"summary": "Draft: a flame", "confidence": 0.5}
    text = f'Draft {json.dumps(draft)} then {json.dumps(VALID)} and an unfinished {{"summary"'
    result = _parsed(text)
    assert result.summary == "Open flame near the curtains"
    assert result.confidence == 0.9
    assert "last of 2 objects" in result.repairs


def test_objects_that_are_not_contract_objects_are_ignored() -> None:
    result = _parsed(f'{{"box": [1, 2, 3, 4]}} {json.dumps(VALID)}')
    assert result.safety_flags == ("fire",)


def test_an_overlong_summary_is_cut_to_the_contract_length() -> None:
    result = _parsed(json.dumps(VALID | {"summary": "word " * 100}))
    assert len(result.summary) <= 200
    assert "summary truncated" in result.repairs


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "All clear, nothing to report.",
        "[1, 2, 3]",
        '{"observations": ["fire"]}',
        '{"summary": "A hallway"}',
        '{"summary": "A hallway", "safety_flags": null}',
        '{"summary": ""}',
        '{"summary": 42, "safety_flags": []}',
        '{"summary": "unterminated',
    ],
)
def test_unreadable_answers_become_student_errors(text: str) -> None:
    assert isinstance(parse_observation(text), StudentError)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_garbage_never_raises_and_never_reads_as_confidently_safe(text: str) -> None:
    result = parse_observation(text)
    if isinstance(result, Observation):
        # Only text that really carried a JSON object with a summary can parse.
        assert "{" in text
        assert result.summary


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["summary", "observations", "safety_flags", "confidence", "extra"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=True),
            st.text(max_size=30),
            st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=4),
        ),
    ),
    st.sampled_from(["{}", "```json\n{}\n```", "Answer: {} Thanks", "{}\nCONFIDENCE: high"]),
)
def test_any_json_object_in_any_wrapper_parses_or_errors_cleanly(
    answer: dict[str, object], wrapper: str
) -> None:
    result = parse_observation(wrapper.replace("{}", json.dumps(answer)))
    if isinstance(result, Observation):
        assert isinstance(answer.get("summary"), str)
        assert result.confidence is None or 0 <= result.confidence <= 1
        assert all(isinstance(flag, str) and flag for flag in result.safety_flags)
    else:
        assert result.reason


@pytest.mark.parametrize(
    ("text", "asserted", "negated"),
    [
        ("Smoke near the ceiling; no flames are visible.", ("smoke",), ("fire",)),
        ("The kitchen is not on fire.", (), ("fire",)),
        ("A quiet room without smoke.", (), ("smoke",)),
        ("There is no sign of a weapon.", (), ("weapon",)),
        ("No smoke or fire visible.", (), ("smoke", "fire")),
        ("I don't see any blood.", (), ("blood",)),
        ("Nobody has fallen.", (), ("fall",)),
        ("The room is free of smoke.", (), ("smoke",)),
        ("Flames are not visible in the frame.", (), ("fire",)),
        ("No smoke, but the pan is on fire.", ("fire",), ("smoke",)),
        ("No one noticed the fire in the bin.", ("fire",), ()),
        ("A man holds a knife.", ("weapon",), ()),
        ("The fire is not contained.", ("fire",), ()),
        ("No people. A knife on the floor.", ("weapon",), ()),
    ],
)
def test_hazard_words_in_negated_phrases_are_told_apart(
    text: str, asserted: tuple[str, ...], negated: tuple[str, ...]
) -> None:
    mentions = hazard_mentions(text)
    assert mentions.asserted == asserted
    assert mentions.negated == negated
