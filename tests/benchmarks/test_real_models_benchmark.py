"""The real-model benchmark's arithmetic (the benchmark itself runs on the real server, by hand)."""

from __future__ import annotations

from benchmarks.real_models import FEW_SHOT_PROMPT, default_cases, roc_auc


def test_roc_auc_is_the_chance_a_right_answer_outranks_a_wrong_one() -> None:
    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9], [True, True, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert roc_auc([0.9, 0.4, 0.6, 0.1], [True, True, False, False]) == 0.75


def test_roc_auc_is_undefined_without_both_kinds_of_answer() -> None:
    assert roc_auc([0.9, 0.8], [True, True]) is None
    assert roc_auc([], []) is None


def test_the_worked_examples_are_not_validation_cases() -> None:
    texts = [case["text"] for case in default_cases()]
    assert texts
    assert not any(text in FEW_SHOT_PROMPT for text in texts)
