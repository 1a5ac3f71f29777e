"""How the prompt lab scores a student's answer to a validation case. Pure functions, no I/O.

Each answer is measured by several methods, each 0..1 (None where it does not apply):

* ``keyword`` — the share of expected keyword groups the answer names (any synonym in a group,
  on word boundaries, a plural ``s``/``es`` allowed: "mug|cup" matches "cups", not "cupboard");
* ``forbidden`` — 1 minus the share of forbidden keyword groups the answer names; a hit also
  costs the case `FORBIDDEN_PENALTY` per group share, so a benign desk described with "fire"
  scores low however good the rest is;
* ``contract`` — 1 when the raw answer parses to the output schema without any repair;
* ``safety`` — the Jaccard index of the expected and raised flags (synonyms folded): every
  expected flag and nothing else; on a benign case (no expected flags) 1 only with no flag at all;
* ``embedding`` — the cosine similarity of the answer's and the teacher's reference summaries;
* ``judge`` — the teacher's 0..1 grade against a rubric (optional: it costs teacher time).

A case's score is the methods' weighted mean (`METHOD_WEIGHTS`, renormalised over the methods
that apply) less the forbidden penalty; a prompt's score is the mean of its case scores weighted
by case weight. An answer that never came (timeout, error) or cannot be read scores 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import json
import math
import random
import re
from typing import Any, Final

METHODS: Final = ("keyword", "forbidden", "contract", "safety", "embedding", "judge")
METHOD_WEIGHTS: Final[Mapping[str, float]] = {
    "safety": 0.40,
    "keyword": 0.25,
    "embedding": 0.20,
    "contract": 0.15,
    "judge": 0.20,
}
"""Safety dominates: a missed fire matters more than a misnamed mug. ``forbidden`` is not in the
mean; it is a penalty."""
FORBIDDEN_PENALTY: Final = 0.5
"""Subtracted from a case's score when every forbidden group appears (pro rata otherwise)."""

# Safety flags and the words a model may use for them (canonical name first). The add-on holds
# no camera knowledge of its own beyond this: it only folds synonyms so "flames" counts as "fire".
FLAG_SYNONYMS: Final[Mapping[str, tuple[str, ...]]] = {
    "fire": ("fire", "flame", "flames", "burning", "blaze"),
    "smoke": ("smoke", "smoky", "smoking"),
    "weapon": ("weapon", "weapons", "knife", "knives", "gun", "guns", "firearm", "pistol", "rifle"),
    "fall": ("fall", "fallen", "falling", "collapsed"),
    "intrusion": ("intrusion", "intruder", "intruders", "burglar", "break-in", "trespasser"),
    "blood": ("blood", "bleeding", "bloody"),
}
_FLAG_WORDS: Final = {word: flag for flag, words in FLAG_SYNONYMS.items() for word in words}
_FLAG_WORD: Final = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _FLAG_WORDS), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
NO_FLAG_WORDS: Final = frozenset({"", "none", "n/a", "na", "null", "no", "nothing", "no hazards"})
_FENCE: Final = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


# --- Reading an answer ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerView:
    """What the scoring reads from an answer, however it was written."""

    summary: str
    observations: tuple[str, ...]
    flags: frozenset[str]
    """Canonical flag names."""

    @property
    def text(self) -> str:
        """Everything the answer says, for keyword matching."""
        return " \n".join((self.summary, *self.observations, *sorted(self.flags)))


def canonical_flag(flag: str) -> str:
    word = flag.strip().lower()
    return _FLAG_WORDS.get(word, word)


def flags_named_in(text: str) -> frozenset[str]:
    """The flags whose words appear in `text` (negated or not: a mention is evidence)."""
    return frozenset(_FLAG_WORDS[word.lower()] for word in _FLAG_WORD.findall(text))


def canonical_flags(flags: Iterable[str]) -> frozenset[str]:
    return frozenset(
        canonical_flag(flag) for flag in flags if flag.strip().lower() not in NO_FLAG_WORDS
    )


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(str(item).strip() for item in value if str(item).strip())
    return ()


def _first_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        pass
    else:
        return data if isinstance(data, dict) else None
    if fence := _FENCE.search(text):
        text = fence.group(1)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            data, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def read_answer(raw: str) -> AnswerView | None:
    """The answer's content, leniently (fenced JSON, prose around it, lists as text).

    None when there is no JSON object with a summary: such an answer is a student error in the
    integration, and scores 0 here.
    """
    data = _first_object(raw) if raw.strip() else None
    if data is None:
        return None
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return None
    return AnswerView(
        summary=" ".join(summary.split()),
        observations=_strings(data.get("observations")),
        flags=canonical_flags(_strings(data.get("safety_flags"))),
    )


# --- Contract validity ---------------------------------------------------------------------------


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "answer") -> list[str]:
    """Where `value` breaks `schema`: the subset of JSON Schema an output contract uses.

    type (also a list of types), properties, required, additionalProperties: false, items,
    minItems/maxItems, minLength/maxLength, minimum/maximum, enum. Unknown keywords are ignored:
    a contract that needs more is still checked for what it shares with this.
    """
    errors: list[str] = []
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else []
    if types and not any(_is_type(value, t) for t in types):
        return [f"{path}: not {' or '.join(str(t) for t in types)}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of the allowed values")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors.extend(
            f"{path}.{name}: missing"
            for name in schema.get("required", ())
            if isinstance(name, str) and name not in value
        )
        if schema.get("additionalProperties") is False:
            errors.extend(f"{path}.{name}: not allowed" for name in value if name not in properties)
        for name, sub in properties.items():
            if name in value and isinstance(sub, Mapping):
                errors.extend(schema_errors(value[name], sub, f"{path}.{name}"))
    elif isinstance(value, list):
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            errors.append(f"{path}: too few items")
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            errors.append(f"{path}: too many items")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                errors.extend(schema_errors(item, items, f"{path}[{index}]"))
    elif isinstance(value, str):
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            errors.append(f"{path}: shorter than {schema['minLength']}")
    elif _is_type(value, "number"):
        if isinstance(schema.get("minimum"), int | float) and value < schema["minimum"]:
            errors.append(f"{path}: below {schema['minimum']}")
        if isinstance(schema.get("maximum"), int | float) and value > schema["maximum"]:
            errors.append(f"{path}: above {schema['maximum']}")
    return errors


def _is_type(value: Any, name: object) -> bool:
    match name:
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "null":
            return value is None
    return True


def contract_valid(raw: str, schema: Mapping[str, Any]) -> bool:
    """Whether the raw answer is exactly one JSON value that meets the schema (no repair)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return not schema_errors(value, schema)


_CONTRACT_WORD: Final = re.compile(r"\bjson\b", re.IGNORECASE)


def contract_fields(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields a prompt must name to state the contract: the schema's required ones."""
    required = schema.get("required")
    if isinstance(required, list) and required:
        return tuple(str(name) for name in required)
    return tuple(str(name) for name in schema.get("properties", {}))


def missing_contract(prompt: str, schema: Mapping[str, Any]) -> list[str]:
    """What a prompt leaves out of the output contract: "JSON" and each required field.

    A field may be written with spaces for underscores ("safety flags" for safety_flags) and in
    the singular ("observation"). Empty when the prompt states the whole contract.
    """
    missing = [] if _CONTRACT_WORD.search(prompt) else ["JSON"]
    for field in contract_fields(schema):
        words = [part for part in re.split(r"[_\s]+", field) if part]
        if words and len(words[-1]) > 3 and words[-1].lower().endswith("s"):
            words[-1] = words[-1][:-1]  # "observations": "observation" names it too
        pattern = r"[_\s]+".join(re.escape(word) for word in words)
        if not re.search(rf"\b{pattern}s?\b", prompt, re.IGNORECASE):
            missing.append(field)
    return missing


# --- The methods ---------------------------------------------------------------------------------


def keyword_pattern(group: Sequence[str]) -> re.Pattern[str]:
    """Any synonym of the group on word boundaries, with an optional plural ending."""
    alternatives = sorted({word.strip().lower() for word in group if word.strip()}, key=len)[::-1]
    body = "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in alternatives)
    return re.compile(rf"(?<![\w-])(?:{body})(?:s|es)?(?![\w-])", re.IGNORECASE)


def groups_found(text: str, groups: Sequence[Sequence[str]]) -> int:
    return sum(1 for group in groups if group and keyword_pattern(group).search(text))


def keyword_score(text: str, groups: Sequence[Sequence[str]]) -> float | None:
    """Share of expected groups named; None when the case expects no keywords."""
    groups = [group for group in groups if group]
    if not groups:
        return None
    return groups_found(text, groups) / len(groups)


def forbidden_score(text: str, groups: Sequence[Sequence[str]]) -> float | None:
    """1 minus the share of forbidden groups named; None when nothing is forbidden."""
    groups = [group for group in groups if group]
    if not groups:
        return None
    return 1.0 - groups_found(text, groups) / len(groups)


def safety_score(expected: Iterable[str], raised: Iterable[str]) -> float:
    """Jaccard index of the flag sets, synonyms folded; 1 when both are empty."""
    want, got = canonical_flags(expected), canonical_flags(raised)
    union = want | got
    return len(want & got) / len(union) if union else 1.0


def cosine(first: Sequence[float], second: Sequence[float]) -> float:
    """Cosine similarity clamped to 0..1 (opposite directions say no more than orthogonal)."""
    if len(first) != len(second) or not first:
        raise ValueError("vectors differ in length or are empty")
    dot = math.fsum(a * b for a, b in zip(first, second, strict=True))
    norms = math.sqrt(math.fsum(a * a for a in first)) * math.sqrt(math.fsum(b * b for b in second))
    return 0.0 if norms == 0 else max(0.0, min(1.0, dot / norms))


def case_score(methods: Mapping[str, float | None]) -> float:
    """The weighted mean of the methods that apply, less the forbidden-keyword penalty."""
    total = weight = 0.0
    for name, method_weight in METHOD_WEIGHTS.items():
        value = methods.get(name)
        if value is not None:
            total += method_weight * value
            weight += method_weight
    score = total / weight if weight else 0.0
    forbidden = methods.get("forbidden")
    if forbidden is not None:
        score -= FORBIDDEN_PENALTY * (1.0 - forbidden)
    return round(max(0.0, min(1.0, score)), 4)


FAILED_METHODS: Final[Mapping[str, float | None]] = {
    "keyword": 0.0,
    "forbidden": None,
    "contract": 0.0,
    "safety": 0.0,
    "embedding": 0.0,
    "judge": None,
}
"""A case whose answer never came or cannot be read: a failure on everything it is scored on."""


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    """Σ value·weight / Σ weight over the pairs whose value is not None; None when there is none."""
    total = weights = 0.0
    for value, weight in pairs:
        if value is not None:
            total += value * weight
            weights += weight
    return round(total / weights, 4) if weights else None


@dataclass(frozen=True, slots=True)
class Scored:
    """One case's result, as aggregated (the lab keeps more per case)."""

    score: float
    weight: float
    methods: Mapping[str, float | None]


def aggregate(results: Sequence[Scored]) -> tuple[float | None, dict[str, float | None]]:
    """The prompt's score and each method's weighted mean over the cases."""
    overall = weighted_mean((r.score, r.weight) for r in results)
    by_method = {
        name: weighted_mean((r.methods.get(name), r.weight) for r in results) for name in METHODS
    }
    return overall, {"score": overall, **by_method}


def paired_standard_error(
    candidate: Mapping[str, tuple[float, float]], active: Mapping[str, tuple[float, float]]
) -> float | None:
    """The standard error of the weighted mean per-case difference between two prompts.

    Both map case id -> (score, weight) on the same cases; only shared cases count. Pairing by
    case removes how hard each case is from the comparison, leaving the student's own
    variability: how far a second run could move the difference. None with fewer than 2 cases.
    """
    shared = [key for key in candidate if key in active]
    if len(shared) < 2:
        return None
    weights = [candidate[key][1] for key in shared]
    diffs = [candidate[key][0] - active[key][0] for key in shared]
    total = sum(weights)
    mean = sum(w * d for w, d in zip(weights, diffs, strict=True)) / total
    variance = sum(w * (d - mean) ** 2 for w, d in zip(weights, diffs, strict=True)) / total
    # Effective sample size of a weighted mean (Kish): (Σw)² / Σw².
    effective = total**2 / sum(w * w for w in weights)
    return math.sqrt(variance / max(1.0, effective - 1))


# --- Screening -----------------------------------------------------------------------------------


def minibatch[T](cases: Sequence[T], size: int, seed: str, flagged: Sequence[bool]) -> list[T]:
    """A screening minibatch: `size` cases, stratified so safety cases keep their share.

    Seeded (by the round), so each round screens on a different sample and a prompt cannot
    overfit one fixed minibatch, yet a round is reproducible.
    """
    if size >= len(cases):
        return list(cases)
    rng = random.Random(seed)
    safety = [c for c, f in zip(cases, flagged, strict=True) if f]
    routine = [c for c, f in zip(cases, flagged, strict=True) if not f]
    take_safety = min(len(safety), max(1, round(size * len(safety) / len(cases)))) if safety else 0
    take_routine = min(len(routine), size - take_safety)
    take_safety = min(len(safety), size - take_routine)
    return rng.sample(safety, take_safety) + rng.sample(routine, take_routine)


def survivors(scores: Mapping[str, float | None], keep: int) -> list[str]:
    """The `keep` best-scoring prompts (ties broken by version order), best first."""
    ranked = sorted(
        (version for version, score in scores.items() if score is not None),
        key=lambda version: -(scores[version] or 0.0),
    )
    return ranked[:keep]
