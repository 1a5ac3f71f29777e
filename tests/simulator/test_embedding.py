"""The scripted embedding model: deterministic, normalised, paraphrases close."""

from __future__ import annotations

import math

import pytest

from simulator.embedding import (
    DEFAULT_DIMENSIONS,
    concepts,
    cosine,
    embed_text,
    embed_texts,
)

PARAPHRASES = [
    ("A fire is burning on the stove", "Flames rising from the stove"),
    ("A man is holding a knife in the hallway", "Someone holds a blade in the hallway"),
    (
        "An elderly woman has fallen on the kitchen floor",
        "A person lying on the floor in the kitchen",
    ),
    ("A dog sleeping on the sofa", "A puppy asleep on the couch"),
    ("Smoke fills the garage", "The garage is full of smoke"),
    ("A red car parked in the driveway", "A red vehicle parked on the driveway"),
    ("A mug of coffee on the desk", "A cup of coffee on a desk"),
    ("An intruder at the back door at night", "A burglar by the back door at night"),
    ("A kitten on the windowsill", "The camera shows a cat sitting on a windowsill"),
]
UNRELATED = [
    ("A dog sleeping on the sofa", "Smoke fills the garage"),
    ("A fire is burning on the stove", "A red car parked in the driveway"),
    ("A man is holding a knife", "A cup of coffee on a desk"),
    ("Package left at the front door", "A cat sleeping on the bed"),
    ("An empty hallway by day", "A baby asleep in a crib"),
    ("A person mowing the lawn", "Blood on the bathroom floor"),
]


@pytest.mark.parametrize(("first", "second"), PARAPHRASES)
def test_paraphrases_are_close(first: str, second: str) -> None:
    assert cosine(embed_text(first), embed_text(second)) > 0.6


@pytest.mark.parametrize(("first", "second"), UNRELATED)
def test_unrelated_sentences_are_far(first: str, second: str) -> None:
    assert cosine(embed_text(first), embed_text(second)) < 0.3


def test_paraphrases_beat_unrelated_on_average() -> None:
    close = [cosine(embed_text(a), embed_text(b)) for a, b in PARAPHRASES]
    far = [cosine(embed_text(a), embed_text(b)) for a, b in UNRELATED]
    assert min(close) > max(far) + 0.3


def test_vectors_are_unit_length_and_deterministic() -> None:
    vector = embed_text("A fire in the kitchen")
    assert len(vector) == DEFAULT_DIMENSIONS
    assert math.fsum(v * v for v in vector) == pytest.approx(1.0)
    assert vector == embed_text("A fire in the kitchen")


@pytest.mark.parametrize("text", ["", "   ", "the and of"])
def test_empty_text_has_a_defined_unit_vector(text: str) -> None:
    vector = embed_text(text)
    assert math.fsum(v * v for v in vector) == pytest.approx(1.0)
    assert vector == embed_text("")
    assert abs(cosine(vector, embed_text("A fire in the kitchen"))) < 0.2


def test_dimensions_are_configurable() -> None:
    vectors = embed_texts(["one cat", "two dogs"], dimensions=64)
    assert [len(v) for v in vectors] == [64, 64]


def test_concepts_fold_synonyms_and_drop_stop_words() -> None:
    assert concepts("The camera shows flames and a puppy on the couch") == [
        "fire",
        "dog",
        "sofa",
    ]
    assert concepts("someone lying on the floor") == ["person", "fall"]


def test_cosine_of_zero_vector_is_zero() -> None:
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
