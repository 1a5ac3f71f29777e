"""The scripted embedding model: deterministic vectors in which paraphrases land close.

A text becomes a bag of hashed features, summed into a fixed-length vector and L2-normalised:

* **concept unigrams** (weight 1.0): lower-cased words with stop words removed, light suffix
  stripping, and synonym folding, so "flames", "burning" and "fire" are one feature, and
  "a man", "someone" and "a person" another. Some concepts also add a broader one at half
  weight ("knife" also counts as "weapon"), so "a man holding a knife" is near "a person with
  a weapon".
* **concept bigrams** (weight 0.3): neighbouring concepts, for a little word order.
* **character trigrams** of each concept (weight 0.15 each): spelling variants and words the
  synonym table does not know still overlap.

Each feature is hashed (BLAKE2b) to an index and a sign; signed hashing keeps collisions from
adding up to a bias. An empty text (or one made only of stop words) has no features, and a zero
vector cannot be normalised, so it embeds as the hashed feature ``<empty>``: a unit vector, the
same for every empty text, and nearly orthogonal to every real text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
import hashlib
import itertools
import math
import re
from typing import Final

import numpy as np

DEFAULT_DIMENSIONS: Final = 768

WEIGHT_UNIGRAM: Final = 1.0
WEIGHT_BIGRAM: Final = 0.3
WEIGHT_TRIGRAM: Final = 0.15
WEIGHT_BROADER: Final = 0.5
EMPTY_FEATURE: Final = "<empty>"

STOP_WORDS: Final = frozenset(
    """
    a an the and or but if then than so of to in on at by for with without from into onto over
    under near next beside behind above below up down out off about around through across
    is are was were be been being am has have had having do does did doing can could will would
    shall should may might must this that these those there here it its it's they them their
    he him his she her hers we us our you your i me my mine some any each every all both few
    more most other such no not only own same too very just also as while where when which who
    whom what how why again still yet one two
    image picture photo frame camera scene view shows show showing seen visible appears appear
    see sees looks look
    """.split()  # noqa: SIM905 - a word list reads better as text
)
"""Function words, plus the words every camera description uses ("the camera shows ...")."""

# Multi-word expressions folded before the text is split into words.
_PHRASES: Final = (
    ("lying on the floor", "fall"),
    ("lying on the ground", "fall"),
    ("on the floor", "floor"),
    ("break-in", "intrusion"),
    ("breaking in", "intrusion"),
    ("broken into", "intrusion"),
    ("on fire", "fire"),
    ("trash can", "bin"),
    ("living room", "lounge"),
    ("front door", "door"),
    ("nothing to report", "allclear"),
    ("all clear", "allclear"),
)

_SYNONYM_GROUPS: Final = (
    ("fire", "fire fires flame flames flaming burning burn burns blaze ablaze"),
    ("smoke", "smoke smoky smokey smoking smouldering smoldering fumes"),
    ("knife", "knife knives blade blades"),
    ("weapon", "weapon weapons gun guns pistol pistols firearm firearms rifle handgun armed"),
    (
        "person",
        "person persons people man men woman women someone somebody individual figure guy lady "
        "adult resident",
    ),
    ("child", "child children kid kids boy girl toddler"),
    ("mug", "mug mugs cup cups"),
    ("car", "car cars vehicle vehicles automobile"),
    ("dog", "dog dogs puppy puppies"),
    ("cat", "cat cats kitten kittens"),
    ("fall", "fall falls fallen fell falling collapsed collapse"),
    ("intrusion", "intrusion intruder intruders burglar burglars trespasser trespassers prowler"),
    ("blood", "blood bloody bleeding"),
    ("sofa", "sofa sofas couch couches settee"),
    ("package", "package packages parcel parcels delivery"),
    ("tv", "tv television televisions telly"),
    ("fridge", "fridge refrigerator"),
    ("stove", "stove stoves hob cooker stovetop"),
    ("bike", "bike bikes bicycle bicycles"),
    ("hold", "hold holds holding held carry carries carrying"),
    ("sleep", "sleep sleeps sleeping asleep nap napping"),
    ("empty", "empty vacant deserted"),
    ("dark", "dark darkness night unlit"),
    ("calm", "calm quiet peaceful normal usual ordinary"),
    ("door", "door doors doorway entrance"),
    ("window", "window windows pane"),
    ("floor", "floor floors ground"),
    ("pan", "pan pans pot pots saucepan skillet"),
)
_SYNONYMS: Final = {word: concept for concept, words in _SYNONYM_GROUPS for word in words.split()}
_BROADER: Final = {"knife": "weapon", "child": "person", "intrusion": "person"}

_WORD: Final = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def _fold_phrases(text: str) -> str:
    for phrase, concept in _PHRASES:
        text = re.sub(rf"\b{re.escape(phrase)}\b", f" {concept} ", text)
    return text


def _stem(word: str) -> str:
    """Strip the commonest English suffixes; crude, but both sides of a comparison get it."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def concept(word: str) -> str:
    """The folded form of one lower-case word: its synonym group, else its stem."""
    if word in _SYNONYMS:
        return _SYNONYMS[word]
    stem = _stem(word)
    return _SYNONYMS.get(stem, stem)


def concepts(text: str) -> list[str]:
    """The content concepts of a text, in order: stop words dropped, synonyms folded."""
    folded = _fold_phrases(text.lower())
    words = (word.replace("'", "") for word in _WORD.findall(folded))
    return [concept(word) for word in words if word not in STOP_WORDS and len(word) > 1]


def features(text: str) -> dict[str, float]:
    """The weighted features of a text (see the module docstring)."""
    found: dict[str, float] = {}

    def add(feature: str, weight: float) -> None:
        found[feature] = found.get(feature, 0.0) + weight

    terms = concepts(text)
    for term in terms:
        add(f"w:{term}", WEIGHT_UNIGRAM)
        if term in _BROADER:
            add(f"w:{_BROADER[term]}", WEIGHT_BROADER)
        padded = f"<{term}>"
        for start in range(len(padded) - 2):
            add(f"c:{padded[start : start + 3]}", WEIGHT_TRIGRAM)
    for first, second in itertools.pairwise(terms):
        add(f"b:{first} {second}", WEIGHT_BIGRAM)
    return found or {EMPTY_FEATURE: 1.0}


@lru_cache(maxsize=65536)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    return number % dimensions, 1.0 if (number >> 63) & 1 else -1.0


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """One L2-normalised vector of ``dimensions`` floats."""
    vector = np.zeros(dimensions, dtype=np.float64)
    for feature, weight in features(text).items():
        index, sign = _slot(feature, dimensions)
        vector[index] += sign * weight
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # every feature cancelled out by collision: fall back to the empty vector
        index, sign = _slot(EMPTY_FEATURE, dimensions)
        vector[index] = sign
        norm = 1.0
    return [float(value) for value in vector / norm]


def embed_texts(texts: Iterable[str], dimensions: int = DEFAULT_DIMENSIONS) -> list[list[float]]:
    """Embed each text."""
    return [embed_text(text, dimensions) for text in texts]


def cosine(first: Sequence[float], second: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    dot = sum(a * b for a, b in zip(first, second, strict=True))
    norms = math.sqrt(sum(a * a for a in first)) * math.sqrt(sum(b * b for b in second))
    return dot / norms if norms else 0.0
