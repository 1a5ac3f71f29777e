"""The observation contract: the JSON schema the student answers in, and a forgiving parser.

Pure logic, no Home Assistant imports. Small models break contracts in a handful of recurring
ways. What can be repaired is; what cannot becomes a `StudentError`, which the routing policy
escalates. Nothing here ever turns an unreadable or incomplete answer into "safe".

The rules, in the order `parse_observation` applies them (each is tested in
tests/unit/test_contract.py with the shape it names):

1. **Empty** answer (nothing but whitespace): student error.
2. **Plain JSON**: the whole answer is one JSON object; no repair.
3. **Fenced** JSON (a ```json fence): the fence's content is read; repair "fenced".
4. **Objects among prose**: every complete top-level JSON object in the text is found; the
   *contract objects* are those with at least one of the four contract keys (other objects,
   e.g. a bounding box a model adds, are ignored). None: student error "no JSON object".
5. **Leaked reasoning / drafts**: with more than one contract object, the **last** complete one
   is the answer (a model that thinks aloud writes drafts before its answer); repair
   "last of N objects". If the objects **disagree about the safety flags** (as canonical sets)
   the answer is a student error: which one the model meant cannot be known, and picking the
   benign one would read a hazard as "all clear".
6. **Text around the object** (prose before or after, a ``CONFIDENCE: 0.8`` line): repair
   "surrounding text"; the text is kept as `Observation.outside_text`, where the routing policy
   looks for hazard words too. A hazard named (not negated, see `hazard_mentions`) in that text
   but missing from the object's ``safety_flags`` is a student error: the answer contradicts
   itself, and the flags are not the safe reading to pick.
7. **summary** missing, empty or not a string: student error. Over 200 characters: truncated
   (repair "summary truncated"); whitespace is collapsed.
8. **safety_flags** strictly: missing, null, or not a list (a string, a number, an object)
   is a student error, never "no hazard"; a list with an item that is not a string is a student
   error too. Safety is never inferred from absence. Items are normalised to canonical flag
   names ("flames" -> "fire", deduplicated); "none", "n/a", "no hazards" and the like are
   dropped as meaning "no flag" (repair "flags normalised").
9. **observations**: missing (repair "observations missing"), a comma-separated string (repair
   "observations as text"), non-string items (stringified, repair "observations not strings").
10. **confidence**: a number in 0..1 as sent; "85%", 85, "0.85", "high" are read (repair
    "confidence not a number in 0..1"); absent or unreadable, a ``CONFIDENCE: 0.8`` line in the
    surrounding text is used (repair "confidence from text"); otherwise None (repair
    "confidence missing"), which the routing policy treats as low confidence.

A student error carries `StudentError.evidence`: the hazards (canonical flags) that the answer
names anyway, in any of its objects or its prose, so that an unreadable answer about a fire is
still evidence of a fire.
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


_CONTRACT_KEYS: Final = frozenset({"summary", "observations", "safety_flags", "confidence"})

# Negation: a hazard word inside a negated phrase is not a hazard ("no flames are visible").
# Before the word: a cue, then at most _MAX_FILLERS of these filler words ("no sign of a weapon",
# "not on fire", "free of smoke", "I don't see any fire", "nobody has fallen").
_NEGATION_CUES: Final = frozenset(
    {
        "no", "not", "without", "never", "nothing", "none", "nor", "neither", "zero", "free",
        "absence", "absent", "lack", "lacks", "lacking", "nobody", "cannot", "isnt", "arent",
        "wasnt", "werent", "dont", "doesnt", "didnt", "cant", "wont", "hasnt", "havent",
    }
)  # fmt: skip
_NEGATION_FILLERS: Final = frozenset(
    {
        "a", "an", "the", "any", "of", "or", "and", "nor", "other", "such", "as", "like", "sign",
        "signs", "evidence", "indication", "indications", "trace", "traces", "hint", "visible",
        "apparent", "evident", "obvious", "active", "open", "immediate", "kind", "sort", "type",
        "smell", "presence", "is", "are", "was", "were", "be", "been", "has", "have", "had",
        "there", "here", "on", "to", "appear", "appears", "seem", "seems", "see", "seen",
        "detect", "detected", "spot", "observe", "observed", "one", "person", "anyone",
        "hazard", "hazards", "danger", "dangers", "risk", "present", "currently", "visibly",
    }
)  # fmt: skip
_MAX_FILLERS: Final = 6
# After the word: "fire is not visible", "flames are absent", "smoke: none".
_POST_FILLERS: Final = frozenset(
    {"is", "are", "was", "were", "appears", "appear", "seems", "seem", "to", "be", "currently"}
)
_POST_CUES: Final = frozenset({"absent", "nowhere", "none"})
_POST_NOT: Final = frozenset({"not", "isnt", "arent", "wasnt", "werent", "never"})
_PRESENCE: Final = frozenset(
    {
        "visible", "present", "seen", "detected", "observed", "apparent", "evident", "there",
        "shown", "showing", "happening", "occurring", "detectable", "found", "involved",
    }
)  # fmt: skip
# A negation does not reach across these.
_CLAUSE_BREAK = re.compile(r"[.;:!?,()\[\]{}\n]|\b(?:but|however|although|though|except|yet)\b")
_WORD = re.compile(r"[a-z0-9]+(?:['\u2019][a-z]+)?")
DEFAULT_HAZARD_PATTERN: Final = re.compile(
    r"(?<![\w-])(?:"
    + "|".join(re.escape(w) for w in sorted(_FLAG_WORDS, key=len, reverse=True))
    + r")(?![\w-])",
    re.IGNORECASE,
)
"""The contract's own hazard words (every flag and synonym), on word boundaries."""


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
    outside_text: str = ""
    """Text of the answer outside its JSON object (prose, reasoning): evidence for routing."""

    @property
    def valid_as_sent(self) -> bool:
        """Whether the answer parsed to the schema without any repair."""
        return not self.repairs


@dataclass(frozen=True, slots=True)
class StudentError:
    """An answer that could not be read: never "safe", always escalated."""

    reason: str
    raw: str
    evidence: tuple[str, ...] = ()
    """Hazards (canonical flags) the answer names anyway: still evidence of a hazard."""


@dataclass(frozen=True, slots=True)
class HazardMentions:
    """Hazard words in a text, split by whether a negation covers them."""

    asserted: tuple[str, ...]
    """Canonical flags named outright ("flames near the curtains")."""
    negated: tuple[str, ...]
    """Canonical flags named only inside a negated phrase ("no flames are visible")."""


def normalise_flag(flag: str) -> str:
    """The canonical name of a safety flag ("flames" -> "fire"); unknown flags pass lowercased."""
    word = flag.strip().lower()
    return _FLAG_WORDS.get(word, word)


def hazard_mentions(text: str, pattern: re.Pattern[str] = DEFAULT_HAZARD_PATTERN) -> HazardMentions:
    """The hazard words `pattern` finds in `text`, as flags, asserted or negated.

    A flag is asserted when at least one of its mentions is not negated: "no smoke, but the
    pan is on fire" asserts fire. A negation covers a mention when, within the same clause
    (punctuation and "but"/"however" end it), a negation cue comes before it with only filler
    words in between ("no visible flames", "not on fire", "without smoke", "no sign of a
    weapon", "free of smoke", "nobody has fallen", "no smoke or fire"), or a negated presence
    comes after it ("fire is not visible", "flames are absent").
    """
    asserted: dict[str, None] = {}
    negated: dict[str, None] = {}
    for match in pattern.finditer(text):
        flag = normalise_flag(match.group(0))
        if _is_negated(text, match.start(), match.end()):
            negated[flag] = None
        else:
            asserted[flag] = None
    return HazardMentions(tuple(asserted), tuple(flag for flag in negated if flag not in asserted))


def _words(text: str) -> list[str]:
    return [w.replace("'", "").replace("\u2019", "") for w in _WORD.findall(text.lower())]


def _is_negated(text: str, start: int, end: int) -> bool:
    before = text[:start]
    if breaks := list(_CLAUSE_BREAK.finditer(before.lower())):
        before = before[breaks[-1].end() :]
    after = text[end:]
    if brk := _CLAUSE_BREAK.search(after.lower()):
        after = after[: brk.start()]
    words = _words(before)
    for fillers, word in enumerate(reversed(words)):
        if word in _NEGATION_CUES:
            return True
        if fillers >= _MAX_FILLERS or (word not in _NEGATION_FILLERS and word not in _FLAG_WORDS):
            break
    following = _words(after)
    for index, word in enumerate(following[:5]):
        if word in _POST_CUES:
            return True
        if word in _POST_NOT:
            return any(w in _PRESENCE for w in following[index + 1 : index + 3])
        if word not in _POST_FILLERS:
            break
    return False


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
    """Parse a student's answer by the rules in the module docstring."""
    if not text or not text.strip():
        return StudentError("empty answer", text)
    raw = text[:2000]
    repairs: list[str] = []
    candidate, outside = _unfence(text, repairs)
    objects, prose = _contract_objects(candidate)
    outside = f"{outside}\n{prose}".strip()
    if not objects:
        return StudentError("no JSON object in the answer", raw, _evidence(text))
    flag_sets = [_flag_set(obj) for obj in objects]
    if len(objects) > 1:
        readable = {flags for flags in flag_sets if flags is not None}
        if len(readable) > 1 or (readable and None in flag_sets):
            shown = " vs ".join(
                "[" + ", ".join(sorted(flags)) + "]" if flags is not None else "unreadable"
                for flags in flag_sets
            )
            return StudentError(
                f"the answer has {len(objects)} JSON objects that disagree about safety flags "
                f"({shown})",
                raw,
                _evidence(text, *(f for f in flag_sets if f)),
            )
        repairs.append(f"last of {len(objects)} objects")
    elif outside:
        repairs.append("surrounding text")
    data = objects[-1]
    result = _observation_from(data, outside, repairs, raw)
    if isinstance(result, StudentError):
        return StudentError(result.reason, raw, _evidence(text))
    unflagged = [
        flag for flag in hazard_mentions(outside).asserted if flag not in result.safety_flags
    ]
    if unflagged:
        return StudentError(
            "the text outside the JSON answer names a hazard its safety_flags do not: "
            + ", ".join(unflagged),
            raw,
            _evidence(text, frozenset(result.safety_flags)),
        )
    return result


def _evidence(text: str, *flag_sets: frozenset[str]) -> tuple[str, ...]:
    """Every hazard an unreadable answer names: its objects' flags and its non-negated words."""
    flags: dict[str, None] = {}
    for flag_set in flag_sets:
        flags.update(dict.fromkeys(sorted(f for f in flag_set if f in SAFETY_FLAGS)))
    flags.update(dict.fromkeys(hazard_mentions(text).asserted))
    return tuple(flags)


def _flag_set(data: dict[str, Any]) -> frozenset[str] | None:
    """An object's canonical flags; None when its safety_flags break the strict rule 8."""
    flags = data.get("safety_flags")
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        return None
    return frozenset(
        normalise_flag(flag) for flag in flags if flag.strip().lower() not in _NO_FLAG_WORDS
    )


def _unfence(text: str, repairs: list[str]) -> tuple[str, str]:
    """The text to look for objects in, and the text outside a fence (rule 3)."""
    if fence := _FENCE.search(text):
        repairs.append("fenced")
        return fence.group(1), text[: fence.start()] + "\n" + text[fence.end() :]
    return text, ""


def _contract_objects(text: str) -> tuple[list[dict[str, Any]], str]:
    """Every complete top-level contract object in the text (rule 4), and the prose around them."""
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        pass
    else:
        if isinstance(data, dict) and _CONTRACT_KEYS & data.keys():
            return [data], ""
        return [], stripped
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    prose: list[str] = []
    position = 0
    index = text.find("{")
    while index != -1:
        try:
            data, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        if isinstance(data, dict) and _CONTRACT_KEYS & data.keys():
            objects.append(data)
            prose.append(text[position:index])
            position = end
        index = text.find("{", end)
    prose.append(text[position:])
    return objects, "\n".join(part.strip() for part in prose if part.strip())


def _observation_from(
    data: dict[str, Any], rest: str, repairs: list[str], raw: str
) -> Observation | StudentError:
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return StudentError("answer has no summary", raw)
    summary = " ".join(summary.split())
    if len(summary) > SUMMARY_MAX_CHARS:
        repairs.append("summary truncated")
        summary = summary[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"

    if "safety_flags" not in data or data["safety_flags"] is None:
        return StudentError("answer has no safety_flags: its safety is unknown", raw)
    flags = data["safety_flags"]
    if not isinstance(flags, list):
        return StudentError(
            f"safety_flags is a {type(flags).__name__}, not a list: its safety is unknown", raw
        )
    if not all(isinstance(flag, str) for flag in flags):
        return StudentError("safety_flags has items that are not strings", raw)
    stripped_flags = tuple(flag.strip() for flag in flags if flag.strip())
    canonical = tuple(
        dict.fromkeys(
            normalise_flag(flag)
            for flag in stripped_flags
            if flag.strip().lower() not in _NO_FLAG_WORDS
        )
    )
    if canonical != stripped_flags:
        repairs.append("flags normalised")
    observations = _strings(data.get("observations"), "observations", repairs)

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
    return Observation(summary, observations, canonical, confidence, tuple(repairs), rest)


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
