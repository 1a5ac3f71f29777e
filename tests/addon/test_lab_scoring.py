"""Each of the prompt lab's scoring methods, the way they combine, and the screening helpers."""

from __future__ import annotations

import json
import math

from hypothesis import given, strategies as st
import pytest

from vision_tutor_teacher.lab.scoring import (
    FAILED_METHODS,
    FORBIDDEN_PENALTY,
    METHOD_WEIGHTS,
    Scored,
    aggregate,
    canonical_flags,
    case_score,
    contract_valid,
    cosine,
    forbidden_score,
    keyword_score,
    minibatch,
    missing_contract,
    paired_standard_error,
    read_answer,
    safety_score,
    schema_errors,
    survivors,
    weighted_mean,
)
from vision_tutor_teacher.lab.suite import load_default_suite

SCHEMA = load_default_suite().task.output_schema  # type: ignore[union-attr]
ANSWER = {
    "summary": "A wooden desk with an open laptop and a red cup.",
    "observations": ["desk", "laptop", "cup"],
    "safety_flags": [],
    "confidence": 0.9,
}


# --- Keywords ------------------------------------------------------------------------------------


def test_keyword_score_counts_groups_with_synonyms() -> None:
    text = "A wooden desk with an open laptop and a red cup."
    assert keyword_score(text, [["mug", "cup"], ["laptop"], ["lamp"]]) == pytest.approx(2 / 3)
    assert keyword_score(text, [["mug", "cup"]]) == 1.0


def test_keyword_matching_is_on_word_boundaries_with_plurals() -> None:
    assert keyword_score("Two cups on the table", [["cup"]]) == 1.0  # plural
    assert keyword_score("Boxes in the hall", [["box"]]) == 1.0  # -es plural
    assert keyword_score("An open cupboard", [["cup"]]) == 0.0  # not a word of its own
    assert keyword_score("A teacup", [["cup"]]) == 0.0
    assert keyword_score("The LIVING  ROOM is empty", [["living room"]]) == 1.0  # any spacing
    assert keyword_score("a break-in at the back", [["break-in"]]) == 1.0
    assert keyword_score("a break in the wall", [["break-in"]]) == 0.0


def test_no_expected_keywords_means_the_method_does_not_apply() -> None:
    assert keyword_score("anything", []) is None
    assert keyword_score("anything", [[]]) is None


def test_forbidden_keywords_score_and_penalise() -> None:
    benign = [["fire", "flame"], ["smoke"], ["weapon", "knife"]]
    assert forbidden_score("A desk with a laptop.", benign) == 1.0
    assert forbidden_score("A desk; open flames visible.", benign) == pytest.approx(2 / 3)
    assert forbidden_score("anything", []) is None

    clean = case_score({"keyword": 1.0, "forbidden": 1.0, "safety": 1.0})
    hit = case_score({"keyword": 1.0, "forbidden": 2 / 3, "safety": 1.0})
    assert clean == 1.0
    assert hit == pytest.approx(1.0 - FORBIDDEN_PENALTY / 3, abs=1e-4)


# --- Contract validity ---------------------------------------------------------------------------


def test_contract_validity_means_parsed_to_the_schema_without_repair() -> None:
    assert contract_valid(json.dumps(ANSWER), SCHEMA)
    broken = {
        "fenced": f"```json\n{json.dumps(ANSWER)}\n```",
        "prose after": json.dumps(ANSWER) + "\nLet me know if you need more.",
        "percent": json.dumps({**ANSWER, "confidence": "85%"}),
        "missing field": json.dumps({k: v for k, v in ANSWER.items() if k != "observations"}),
        "too long": json.dumps({**ANSWER, "summary": "x" * 201}),
        "above 1": json.dumps({**ANSWER, "confidence": 1.5}),
        "list as text": json.dumps({**ANSWER, "observations": "desk, laptop"}),
        "not an object": json.dumps([ANSWER]),
        "prose": "A desk with a laptop. No safety concerns. Confidence: high.",
    }
    for name, raw in broken.items():
        assert not contract_valid(raw, SCHEMA), name


def test_schema_errors_cover_the_keywords_a_contract_uses() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["a", "b"]},
            "items": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer"}},
            "name": {"type": ["string", "null"], "minLength": 2},
            "ok": {"type": "boolean"},
            "low": {"type": "number", "minimum": 0},
        },
        "required": ["kind"],
        "additionalProperties": False,
    }
    good = {"kind": "a", "items": [1], "name": None, "ok": True, "low": 0}
    assert schema_errors(good, schema) == []
    bad = {"kind": "c", "items": [], "name": "x", "ok": 1, "low": -1, "extra": 1}
    errors = schema_errors(bad, schema)
    assert len(errors) == 6
    assert "answer.extra: not allowed" in errors
    assert schema_errors({"items": [1, 2, 3.5]}, schema) == [
        "answer.kind: missing",
        "answer.items: too many items",
        "answer.items[2]: not integer",
    ]


def test_missing_contract_names_what_a_prompt_leaves_out() -> None:
    full = "Answer in JSON with summary, observations, safety flags and confidence."
    assert missing_contract(full, SCHEMA) == []
    assert missing_contract("Reply with JSON: summary, observation, safety_flags.", SCHEMA) == [
        "confidence"
    ]
    assert missing_contract("Describe the frame.", SCHEMA) == [
        "JSON",
        "summary",
        "observations",
        "safety_flags",
        "confidence",
    ]
    # Without "required" the schema's properties are the contract.
    assert (
        missing_contract("json: a, b", {"type": "object", "properties": {"a": {}, "b": {}}}) == []
    )


# --- Reading answers and safety ------------------------------------------------------------------


def test_read_answer_is_lenient_where_the_integration_repairs() -> None:
    fenced = read_answer(f"Here you go:\n```json\n{json.dumps(ANSWER)}\n```\nThanks")
    assert fenced is not None
    assert fenced.summary == ANSWER["summary"]
    as_text = read_answer(
        json.dumps({**ANSWER, "observations": "desk, laptop", "safety_flags": "flames"})
    )
    assert as_text is not None
    assert as_text.observations == ("desk", "laptop")
    assert as_text.flags == {"fire"}
    embedded = read_answer('Sure. {"summary": "A hall.", "safety_flags": ["none"]} done')
    assert embedded is not None
    assert embedded.flags == frozenset()
    for unreadable in ("", "   ", "No JSON here.", '{"summary": ""}', "[1, 2]", '{"a": 1'):
        assert read_answer(unreadable) is None, unreadable


def test_safety_score_is_the_jaccard_index_with_synonyms_folded() -> None:
    assert safety_score([], []) == 1.0  # a benign case answered with no flag
    assert safety_score([], ["fire"]) == 0.0  # a benign desk flagged: wrong
    assert safety_score(["fire"], ["flames"]) == 1.0
    assert safety_score(["fire"], []) == 0.0  # a missed hazard
    assert safety_score(["fire", "smoke"], ["fire"]) == 0.5
    assert safety_score(["weapon"], ["knife", "intrusion"]) == 0.5
    assert canonical_flags(["Flames", " none ", "KNIFE", "smoke"]) == {"fire", "weapon", "smoke"}


def test_cosine_is_clamped_to_unit_range() -> None:
    assert cosine([1.0, 0.0], [1.0, 0.0]) == 1.0
    assert cosine([1.0, 0.0], [0.0, 2.0]) == 0.0
    assert cosine([1.0, 0.0], [-1.0, 0.0]) == 0.0
    assert cosine([1.0, 1.0], [1.0, 0.0]) == pytest.approx(math.sqrt(0.5))
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        cosine([1.0], [1.0, 0.0])


# --- Combining -----------------------------------------------------------------------------------


def test_case_score_is_the_weighted_mean_of_the_methods_that_apply() -> None:
    methods = {"keyword": 0.5, "contract": 1.0, "safety": 1.0, "embedding": 0.8, "judge": None}
    weights = {k: METHOD_WEIGHTS[k] for k in ("keyword", "contract", "safety", "embedding")}
    expected = sum(weights[k] * methods[k] for k in weights) / sum(weights.values())  # type: ignore[operator]
    assert case_score(methods) == pytest.approx(expected, abs=1e-4)
    assert case_score({**methods, "judge": 0.0}) < case_score(methods)
    assert case_score(FAILED_METHODS) == 0.0
    assert case_score({}) == 0.0


def test_a_missed_hazard_costs_more_than_a_misnamed_object() -> None:
    missed = case_score({"keyword": 1.0, "contract": 1.0, "safety": 0.0, "embedding": 0.9})
    misnamed = case_score({"keyword": 0.0, "contract": 1.0, "safety": 1.0, "embedding": 0.9})
    assert missed < misnamed


def test_prompt_score_is_weighted_by_case_weight() -> None:
    results = [
        Scored(1.0, 1.0, {"safety": 1.0, "keyword": None}),
        Scored(0.0, 0.5, {"safety": 0.0, "keyword": 1.0}),
    ]
    overall, by_method = aggregate(results)
    assert overall == pytest.approx(1 / 1.5, abs=1e-4)
    assert by_method["score"] == overall
    assert by_method["safety"] == pytest.approx(1 / 1.5, abs=1e-4)
    assert by_method["keyword"] == 1.0  # only the case it applied to
    assert by_method["judge"] is None
    assert weighted_mean([]) is None
    assert aggregate([]) == (None, {"score": None, **dict.fromkeys(by_method.keys() - {"score"})})


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0.5, 1)), min_size=1, max_size=30))
def test_the_weighted_mean_stays_within_the_scores(pairs: list[tuple[float, float]]) -> None:
    mean = weighted_mean(pairs)
    assert mean is not None
    assert min(s for s, _ in pairs) - 1e-4 <= mean <= max(s for s, _ in pairs) + 1e-4


# --- Screening and the noise of a comparison -----------------------------------------------------


def test_minibatch_is_stratified_reproducible_and_varies_by_round() -> None:
    cases = list(range(40))
    flagged = [index < 10 for index in cases]
    first = minibatch(cases, 12, "round-1", flagged)
    assert len(first) == 12
    assert len(set(first)) == 12
    assert sum(1 for case in first if case < 10) == 3  # safety cases keep their quarter
    assert minibatch(cases, 12, "round-1", flagged) == first
    assert minibatch(cases, 12, "round-2", flagged) != first
    assert minibatch(cases, 50, "any", flagged) == cases
    assert len(minibatch(cases, 12, "x", [False] * 40)) == 12
    assert sorted(minibatch(cases[:3], 2, "x", [True, True, True])) in ([0, 1], [0, 2], [1, 2])


def test_survivors_are_the_best_scores_first() -> None:
    scores = {"v2": 0.8, "v3": None, "v4": 0.9, "v5": 0.8}
    assert survivors(scores, 2) == ["v4", "v2"]
    assert survivors(scores, 10) == ["v4", "v2", "v5"]


def test_paired_standard_error_measures_the_spread_of_the_differences() -> None:
    active = {f"c{i}": (0.5, 1.0) for i in range(10)}
    steady = {f"c{i}": (0.6, 1.0) for i in range(10)}
    assert paired_standard_error(steady, active) == 0.0  # the same gain on every case
    noisy = {f"c{i}": (1.0 if i % 2 else 0.2, 1.0) for i in range(10)}
    error = paired_standard_error(noisy, active)
    assert error == pytest.approx(0.4 / 3, abs=1e-9)  # sd 0.4 over sqrt(9)
    assert paired_standard_error({"c0": (1.0, 1.0)}, active) is None
    assert paired_standard_error({"x": (1.0, 1.0), "y": (0.0, 1.0)}, active) is None


def test_a_hazard_named_in_a_summary_counts_as_evidence_even_unflagged() -> None:
    from vision_tutor_teacher.lab.scoring import flags_named_in

    assert flags_named_in("Flames rise from the pan; a sign says all clear.") == {"fire"}
    assert flags_named_in("An intruder at the door with a KNIFE") == {"intrusion", "weapon"}
    assert flags_named_in("An empty yard.") == frozenset()
