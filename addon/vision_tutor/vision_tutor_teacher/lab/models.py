"""The prompt lab's request and response bodies: pydantic models at the HTTP boundary.

Kept apart from `vision_tutor_teacher.models` (the review queue's) because the lab is a second
product on the same service; the OpenAPI document is built from both.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vision_tutor_teacher.images import jpeg_size
from vision_tutor_teacher.models import OBJECT_SCHEMA, Observation

NAME_MAX: Final = 200
TEXT_CASE_MAX: Final = 2000
PROMPT_MAX: Final = 20_000
KEYWORD_MAX: Final = 100
MIN_WEIGHT: Final = 0.5
MAX_WEIGHT: Final = 1.0
SAFETY_WEIGHT: Final = 1.0
"""Default weight of a case that expects a safety flag: a missed hazard costs the most."""
ROUTINE_WEIGHT: Final = 0.5
SYNTHESIS_MAX: Final = 10


class PromptSource(StrEnum):
    SEED = "seed"
    """The plain starting prompt the add-on ships."""
    TEACHER = "teacher"
    """Written by the teacher in a synthesis round."""
    MANUAL = "manual"
    """Added by a user."""


class PromptStatus(StrEnum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    """The one prompt the integration's student uses."""
    RETIRED = "retired"
    """Was active once; replaced by a promotion or a rollback."""


class Split(StrEnum):
    TRAIN = "train"
    """Cases the teacher may see (as failure modes) and candidates are ranked on."""
    HOLDOUT = "holdout"
    """Cases only the promotion gate sees."""


class JobKind(StrEnum):
    SYNTHESIZE = "synthesize"
    SCORE = "score"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# --- Prompts -------------------------------------------------------------------------------------


class CaseResult(BaseModel):
    """How one prompt did on one validation case."""

    case_id: str
    name: str
    split: Split
    weight: float
    score: float
    """0..1: the methods' weighted mean less the forbidden-keyword penalty; 0 on a failure."""
    methods: dict[str, float | None]
    """Each scoring method's 0..1 result; null where it does not apply (e.g. no reference)."""
    summary: str | None
    """The student's summary (null when its answer could not be read)."""
    flags: list[str]
    latency_ms: float | None
    answer_chars: int
    error: str | None
    """Why the case failed outright: a timeout, a student error, an unreadable answer."""


class PromptCost(BaseModel):
    """What a prompt costs the student, over the cases of its last full run."""

    latency_ms_mean: float | None
    latency_ms_p95: float | None
    answer_chars_mean: float | None
    calls: int


class PromptOut(BaseModel):
    """A prompt version in the registry."""

    version: str
    text: str
    parent: str | None
    """The version this one was derived from (lineage)."""
    source: PromptSource
    status: PromptStatus
    created_at: datetime
    round: int | None
    """The synthesis round (job) that wrote it; null for seed and manual prompts."""
    student_model: str | None
    teacher_model: str | None
    train_score: float | None
    holdout_score: float | None
    """Null until the prompt was a finalist (or active) in a scoring round."""
    scores_by_method: dict[str, dict[str, float | None]]
    """``{"train": {...}, "holdout": {...}, "screening": {...}}``: each split's weighted score
    per method (keyword, forbidden, contract, safety, embedding, judge) and ``score``."""
    per_case: list[CaseResult]
    cost: PromptCost | None
    current: dict[str, bool]
    """Per split: whether the score was measured on the suite as it is now."""


class PromptList(BaseModel):
    prompts: list[PromptOut]
    """Newest first."""


class ActivePrompt(BaseModel):
    """What the integration's student uses."""

    version: str
    text: str
    holdout_score: float | None


class PromptCreate(BaseModel):
    """A manual candidate."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=PROMPT_MAX)
    parent: str | None = Field(default=None, max_length=50)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class SynthesizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=5, ge=1, le=SYNTHESIS_MAX)
    """Candidates to ask the teacher for."""
    notes: str = Field(default="", max_length=4000)
    """Added to the teacher's meta-prompt, e.g. "night frames are often misread"."""


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    versions: list[str] | None = Field(default=None, max_length=50)
    """Null: the active prompt and every candidate not yet scored on the current suite."""


class PromptEvent(BaseModel):
    """The ``prompt`` event's data: the active prompt changed (promotion or rollback)."""

    version: str
    text: str
    status: Literal[PromptStatus.ACTIVE] = PromptStatus.ACTIVE
    previous: str | None
    holdout_score: float | None
    reason: str
    """Why: ``promoted by the gate: ...``, ``promoted manually`` or ``rolled back``."""


class LogEntry(BaseModel):
    """One change of the active prompt."""

    at: datetime
    action: Literal["promote", "rollback"]
    version: str
    previous: str | None
    manual: bool
    detail: str


# --- Jobs ----------------------------------------------------------------------------------------


class JobAccepted(BaseModel):
    job_id: str


class JobEvent(BaseModel):
    """The ``job`` event's data: a lab job's progress."""

    job_id: str
    kind: JobKind
    state: JobState
    progress: float
    """0..1."""
    message: str


class JobOut(JobEvent):
    result: dict[str, Any] | None
    """When done: candidates, rejections, scores, the gate's decision and the calls made."""
    created_at: datetime
    updated_at: datetime


class JobList(BaseModel):
    jobs: list[JobOut]


# --- Task spec and validation suite --------------------------------------------------------------


class TaskSpec(BaseModel):
    """What the student must do: shown to the teacher when it writes prompts and references."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, serialize_by_alias=True)

    text: str = Field(min_length=1, max_length=PROMPT_MAX)
    output_schema: dict[str, Any] = Field(alias="schema", json_schema_extra=OBJECT_SCHEMA)
    """The answer's JSON schema: sent to the student as Ollama's ``format``."""
    user_prompt: str = Field(default="Analyse this camera frame.", min_length=1, max_length=2000)
    """The user message beside a case's image (the integration sends the same)."""

    @field_validator("output_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema with "type": "object"')
        return value


type KeywordGroups = list[list[str]]


def keyword_groups(raw: list[list[str] | str]) -> KeywordGroups:
    """``["mug|cup", ["laptop", "computer"]]`` as ``[["mug", "cup"], ["laptop", "computer"]]``.

    Lower-cased, stripped; empty synonyms and groups are dropped.
    """
    groups: KeywordGroups = []
    for item in raw:
        words = item.split("|") if isinstance(item, str) else item
        group = list(dict.fromkeys(w.strip().lower() for w in words if w.strip()))
        for word in group:
            if len(word) > KEYWORD_MAX:
                raise ValueError(f"keyword longer than {KEYWORD_MAX} characters: {word[:20]}…")
        if group:
            groups.append(group)
    return groups


class ValidationCaseIn(BaseModel):
    """A validation case as the API takes it (also one entry of an imported suite)."""

    # Images travel base64-encoded in JSON; pydantic-core decodes them while parsing.
    model_config = ConfigDict(extra="forbid", val_json_bytes="base64", ser_json_bytes="base64")

    name: str = Field(min_length=1, max_length=NAME_MAX)
    image: bytes | None = Field(
        default=None,
        description="A base64-encoded JPEG frame (or give text)",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": "image/jpeg"},
    )
    text: str | None = Field(default=None, min_length=1, max_length=TEXT_CASE_MAX)
    """A scene description, e.g. "A person is holding a lighter with a visible flame"."""
    expected_keywords: list[list[str] | str] = Field(default_factory=list, max_length=50)
    """Words a good answer contains; each entry a group of synonyms, as a list or "mug|cup"."""
    forbidden_keywords: list[list[str] | str] = Field(default_factory=list, max_length=50)
    """Words a good answer must not contain (a benign desk must not mention fire)."""
    expected_flags: list[str] = Field(default_factory=list, max_length=20)
    """Safety flags a good answer raises; empty for a benign scene (then it must raise none)."""
    weight: float | None = Field(default=None, ge=MIN_WEIGHT, le=MAX_WEIGHT)
    """Null: 1.0 for a case with expected flags, 0.5 otherwise."""
    split: Split | None = None
    """Null: assigned by a hash of the image or text, so it is stable."""
    injection: bool = False
    """A prompt-injection case: text in the scene tries to talk the student out of a hazard.
    Give it expected flags; a prompt that misses them on any such case is never promoted."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("image")
    @classmethod
    def _jpeg(cls, value: bytes | None) -> bytes | None:
        if value is not None:
            jpeg_size(value)  # NotAJpeg (a ValueError) says what is wrong
        return value

    @field_validator("expected_keywords", "forbidden_keywords")
    @classmethod
    def _groups(cls, value: list[list[str] | str]) -> list[list[str] | str]:
        return list(keyword_groups(value))

    @field_validator("expected_flags")
    @classmethod
    def _flags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(f.strip().lower() for f in value if f.strip()))

    @model_validator(mode="after")
    def _one_input(self) -> ValidationCaseIn:
        if (self.image is None) == (self.text is None or not self.text.strip()):
            raise ValueError("give exactly one of image and text")
        return self

    @property
    def groups(self) -> KeywordGroups:
        return [g if isinstance(g, list) else [g] for g in self.expected_keywords]

    @property
    def forbidden_groups(self) -> KeywordGroups:
        return [g if isinstance(g, list) else [g] for g in self.forbidden_keywords]

    @property
    def effective_weight(self) -> float:
        if self.weight is not None:
            return self.weight
        return SAFETY_WEIGHT if self.expected_flags else ROUTINE_WEIGHT


class ValidationCaseOut(BaseModel):
    """A case of the suite."""

    id: str
    name: str
    kind: Literal["image", "text"]
    text: str | None
    image_url: str | None
    """``/api/v1/validation/cases/{id}/image`` for image cases."""
    expected_keywords: KeywordGroups
    forbidden_keywords: KeywordGroups
    expected_flags: list[str]
    weight: float
    split: Split
    split_pinned: bool
    """True when the split was chosen explicitly rather than by hash."""
    injection: bool
    """A prompt-injection case (see `ValidationCaseIn.injection`)."""
    source: Literal["default", "manual", "import", "example"]
    review_id: str | None
    """The teacher review an accepted example came from."""
    reference: Observation | None
    """The teacher's reference answer (fetched once per case and cached)."""
    created_at: datetime


class CaseList(BaseModel):
    cases: list[ValidationCaseOut]
    train: int
    holdout: int


class SuiteDocument(BaseModel):
    """A whole suite as exported and imported (JSON, images base64)."""

    model_config = ConfigDict(extra="forbid", val_json_bytes="base64", ser_json_bytes="base64")

    version: Literal[1] = 1
    task: TaskSpec | None = None
    """Replaces the task spec on import when present."""
    cases: list[ValidationCaseIn] = Field(max_length=5000)

    @model_validator(mode="after")
    def _unique_names(self) -> SuiteDocument:
        seen: set[str] = set()
        for index, case in enumerate(self.cases):
            if case.name in seen:
                raise ValueError(f"cases.{index}.name: {case.name!r} appears twice")
            seen.add(case.name)
        return self


class ImportResult(BaseModel):
    added: int
    replaced: int
    """Cases whose name already existed; they were replaced."""
    cases: int
    """Cases in the suite afterwards."""


# --- Curated examples and fine-tuning ------------------------------------------------------------


class ExampleOut(BaseModel):
    """A teacher verdict with its frame: a candidate validation case."""

    id: str
    """The review's id."""
    camera: str
    camera_name: str = ""
    reason: str
    captured_at: datetime
    verdict: Observation
    agrees_with_student: bool
    student_summary: str | None
    frame_url: str
    case_id: str | None
    """The validation case it was accepted as, if any."""


class ExampleList(BaseModel):
    examples: list[ExampleOut]
    total: int
    """Curated examples in all (the list is the newest ``limit``)."""


class AcceptExample(BaseModel):
    """Optional overrides when accepting an example; the defaults come from the verdict."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    expected_keywords: list[list[str] | str] | None = Field(default=None, max_length=50)
    forbidden_keywords: list[list[str] | str] = Field(default_factory=list, max_length=50)
    weight: float | None = Field(default=None, ge=MIN_WEIGHT, le=MAX_WEIGHT)
    split: Split | None = None

    @field_validator("expected_keywords")
    @classmethod
    def _groups(cls, value: list[list[str] | str] | None) -> list[list[str] | str] | None:
        return None if value is None else list(keyword_groups(value))

    @field_validator("forbidden_keywords")
    @classmethod
    def _forbidden(cls, value: list[list[str] | str]) -> list[list[str] | str]:
        return list(keyword_groups(value))


class FinetuneStatus(BaseModel):
    examples: int
    """Curated, teacher-labelled examples (verdicts whose frames are kept)."""
    ready: bool
    reason: str
    recent_improvements: list[float]
    """Holdout improvement of the last synthesis rounds, newest first."""
    min_examples: int
    epsilon: float
