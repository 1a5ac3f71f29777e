"""The observation contract: the JSON schema the student answers in, and a forgiving parser.

Pure logic, no Home Assistant imports. Small models break contracts in a handful of recurring
ways (fenced JSON, prose around it, a separate ``CONFIDENCE: 0.8`` line, confidence as "85%" or
"high", missing fields). Those are repaired; what cannot be repaired becomes a `StudentError`,
which the routing policy escalates. Nothing here ever turns an unreadable answer into "safe".
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import re
from typing import Any, Final

SUMMARY_MAX_CHARS: Final = 200

SAFETY_FLAGS: Final = ("fire", "smoke", "weapon", "fall", "intrusion", "blood")

# Words a model may use for a flag; matched on word boundaries.
FLAG_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "fire": ("fire", "flame", "flames", "burning", "blaze"),
    "smoke": ("smoke", "smoky", "smoking"),
    "weapon": ("weapon", "weapons", "knife", "knives", "gun", "guns", "firearm", "pistol", "rifle"),
    "fall": ("fall", "fallen", "falling", "collapsed"),
    "intrusion": ("intrusion", "intruder", "intruders", "burglar", "break-in", "trespasser"),
    "blood": ("blood", "bleeding", "bloody"),
}

OBSERVATION_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": SUMMARY_MAX_CHARS},
        "observations": {"type": "array", "items": {"type": "string"}},
        "safety_flags": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["summary", "observations", "safety_flags", "confidence"],
}

# Verbal confidence words, mapped to the middle of the band people mean by them.
_VERBAL_CONFIDENCE: Final = {
    "very high": 0.95,
    "high": 0.85,
    "medium": 0.6,
    "moderate": 0.6,
    "low": 0.3,
    "very low": 0.1,
}
# What models write in safety_flags when they mean "no flags".
_NO_FLAG_WORDS: Final = frozenset({"", "none", "n/a", "na", "null", "no", "no hazards", "nothing"})
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_CONFIDENCE_LINE = re.compile(
    r"confidence\W{0,3}\s*(?P<value>very high|very low|high|medium|moderate|low|\d+(?:\.\d+)?\s*%?)",
    re.IGNORECASE,
)
_FLAG_WORDS: Final = {
    synonym: flag for flag, synonyms in FLAG_SYNONYMS.items() for synonym in synonyms
}


@dataclass(frozen=True, slots=True)
class Observation:
    """A parsed answer in the contract's shape."""

    summary: str
    observations: tuple[str, ...]
    safety_flags: tuple[str, ...]
    confidence: float | None
    """The model's own confidence in 0..1; None when it gave none (routing treats it as low)."""
    repairs: tuple[str, ...] = ()
    """What had to be fixed to read the answer; empty when it met the contract as sent."""

    @property
    def valid_as_sent(self) -> bool:
        """Whether the answer parsed to the schema without any repair."""
        return not self.repairs


@dataclass(frozen=True, slots=True)
class StudentError:
    """An answer that could not be read: never "safe", always escalated."""

    reason: str
    raw: str


def normalise_flag(flag: str) -> str:
    """The canonical name of a safety flag ("flames" -> "fire"); unknown flags pass lowercased."""
    word = flag.strip().lower()
    return _FLAG_WORDS.get(word, word)


def parse_confidence(value: object) -> float | None:
    """Read 0.8, 80, "0.8", "80%" or "high" as a confidence in 0..1; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = " ".join(value.lower().split())
        if text in _VERBAL_CONFIDENCE:
            return _VERBAL_CONFIDENCE[text]
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        if percent:
            number /= 100
    else:
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    if number > 1:
        # "85" means 85 %; anything past 100 is not a confidence at all.
        number = number / 100 if number <= 100 else -1
    return number if 0 <= number <= 1 else None


def parse_observation(text: str) -> Observation | StudentError:
    """Parse a student's answer, repairing the ways small models usually break the contract."""
    if not text or not text.strip():
        return StudentError("empty answer", text)
    repairs: list[str] = []
    found = _find_json_object(text, repairs)
    if found is None:
        return StudentError("no JSON object in the answer", text[:2000])
    data, rest = found
    return _observation_from(data, rest, repairs, text)


def _find_json_object(text: str, repairs: list[str]) -> tuple[dict[str, Any], str] | None:
    """The first JSON object in the text, and the text around it (where a confidence line hides)."""
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        pass
    else:
        return (data, "") if isinstance(data, dict) else None
    if fence := _FENCE.search(text):
        repairs.append("fenced")
        candidate, rest = fence.group(1), text[: fence.start()] + text[fence.end() :]
    else:
        candidate, rest = text, ""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", candidate):
        try:
            data, end = decoder.raw_decode(candidate, match.start())
        except ValueError:
            continue
        if isinstance(data, dict):
            if candidate[: match.start()].strip() or candidate[end:].strip():
                repairs.append("surrounding text")
            return data, rest + candidate[: match.start()] + candidate[end:]
    return None


def _observation_from(
    data: dict[str, Any], rest: str, repairs: list[str], raw: str
) -> Observation | StudentError:
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return StudentError("answer has no summary", raw[:2000])
    summary = " ".join(summary.split())
    if len(summary) > SUMMARY_MAX_CHARS:
        repairs.append("summary truncated")
        summary = summary[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"

    observations = _strings(data.get("observations"), "observations", repairs)
    flags = _strings(data.get("safety_flags"), "safety_flags", repairs)
    canonical = tuple(
        dict.fromkeys(
            normalise_flag(flag) for flag in flags if flag.strip().lower() not in _NO_FLAG_WORDS
        )
    )
    if canonical != flags:
        repairs.append("flags normalised")

    stated = data.get("confidence")
    confidence = parse_confidence(stated)
    if "confidence" in data and not _is_unit_number(stated):
        repairs.append("confidence not a number in 0..1")
    if confidence is None:
        if line := _CONFIDENCE_LINE.search(rest):
            confidence = parse_confidence(line.group("value"))
            repairs.append("confidence from text")
        else:
            repairs.append("confidence missing")
    return Observation(summary, observations, canonical, confidence, tuple(repairs))


def _is_unit_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _strings(value: object, field: str, repairs: list[str]) -> tuple[str, ...]:
    """A list of strings from a list, a comma-separated string, or nothing."""
    if value is None:
        repairs.append(f"{field} missing")
        return ()
    if isinstance(value, str):
        repairs.append(f"{field} as text")
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        items = tuple(str(item).strip() for item in value if str(item).strip())
        if any(not isinstance(item, str) for item in value):
            repairs.append(f"{field} not strings")
        return items
    repairs.append(f"{field} unreadable")
    return ()
