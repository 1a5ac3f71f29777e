"""The API's request and response bodies: pydantic models at the HTTP boundary.

Everything the integration sends is validated here before it reaches the queue, and everything
the add-on answers is serialised from these models, so the OpenAPI document (built from the same
models in `vision_tutor_teacher.api.openapi`) cannot drift from what the server does.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IDEMPOTENCY_KEY_MAX: Final = 128


class Reason(StrEnum):
    """Why the integration's routing policy escalated a frame to the teacher."""

    SAFETY = "safety"
    STUDENT_ERROR = "student_error"
    LOW_CONFIDENCE = "low_confidence"
    TEMPORAL = "temporal"
    AUDIT = "audit"


PRIORITY: Final[dict[Reason, int]] = {
    Reason.SAFETY: 5,
    Reason.STUDENT_ERROR: 4,
    Reason.LOW_CONFIDENCE: 3,
    Reason.TEMPORAL: 2,
    Reason.AUDIT: 1,
}
"""Higher is reviewed first and shed last; derived from the reason, never sent by the client."""

REASON_BY_PRIORITY: Final = {priority: reason for reason, priority in PRIORITY.items()}


class ReviewStatus(StrEnum):
    """Where a review is in its life."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    SHED = "shed"
    """Dropped for a higher-priority review while the queue was full."""
    SUPERSEDED = "superseded"
    """Replaced by a newer review of the same camera and reason within the batch window."""
    FAILED = "failed"
    """Dead letter: the teacher failed on it too many times."""


PENDING_STATUSES: Final = (ReviewStatus.QUEUED, ReviewStatus.IN_PROGRESS)


# --- What the integration sends ------------------------------------------------------------------


class Observation(BaseModel):
    """An answer in the observation contract's shape (student's or teacher's).

    Fields beyond the four the add-on reads are kept: the contract belongs to the integration,
    and a richer schema must come back whole.
    """

    model_config = ConfigDict(extra="allow")

    summary: str
    observations: list[str] = Field(default_factory=list)
    safety_flags: list[str]
    confidence: float | None = Field(default=None, ge=0, le=1)
    """None when the model stated none."""


class StudentReport(BaseModel):
    """What the student model made of the frame."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    answer: Observation | None = None
    """The parsed answer; null when the student's output could not be read (student_error)."""
    raw: str = Field(default="", max_length=50_000)
    effective_confidence: float | None = Field(default=None, ge=0, le=1)
    prompt_version: str | None = Field(default=None, max_length=200)


OBJECT_SCHEMA: Final[dict[str, Any]] = {
    "required": ["type"],
    "properties": {"type": {"const": "object"}},
}
"""What the document says of a contract's schema: a JSON schema of an object."""


class ReviewContract(BaseModel):
    """The task, owned by the integration: how the teacher reviews and what it answers in."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, serialize_by_alias=True)

    system_prompt: str = Field(min_length=1, max_length=50_000)
    output_schema: dict[str, Any] = Field(alias="schema", json_schema_extra=OBJECT_SCHEMA)
    """A JSON schema object; sent to the teacher as Ollama's ``format``."""

    @field_validator("output_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema with "type": "object"')
        return value


class ReviewMeta(BaseModel):
    """One escalation without its frame (the ``meta`` part of a multipart request)."""

    model_config = ConfigDict(extra="ignore")

    idempotency_key: str = Field(min_length=1, max_length=IDEMPOTENCY_KEY_MAX)
    camera: str = Field(min_length=1, max_length=255)
    camera_name: str = Field(default="", max_length=255)
    """The camera as its user knows it ("Kitchen"); the pages show it instead of `camera`."""
    reason: Reason
    detail: str = Field(default="", max_length=2000)
    captured_at: datetime
    student: StudentReport
    contract: ReviewContract

    @property
    def priority(self) -> int:
        return PRIORITY[self.reason]


class ReviewRequest(ReviewMeta):
    """One escalation as a JSON body: the frame travels base64-encoded in ``image``."""

    # pydantic-core decodes the base64 while it parses the JSON, several times faster than
    # base64.b64decode on the parsed string: this is the hot path of every submission.
    model_config = ConfigDict(val_json_bytes="base64")

    image: bytes = Field(
        min_length=1,
        description="The frame, a base64-encoded JPEG",
        json_schema_extra={
            "format": "byte",
            "contentEncoding": "base64",
            "contentMediaType": "image/jpeg",
        },
    )


# --- What the add-on answers ---------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error answer: one human-readable message."""

    error: str


class Accepted(BaseModel):
    """202: the review is on disk and queued."""

    id: str
    status: Literal[ReviewStatus.QUEUED] = ReviewStatus.QUEUED
    cursor: int
    """Event sequence number of the ``review`` event announcing it."""


class Agreement(BaseModel):
    """How the teacher's verdict compares with the student's answer."""

    flags: bool
    """The same safety flags (as sets, case-insensitive)."""
    summary_similarity: float | None
    """Cosine similarity of the two summaries' embeddings; null when it could not be measured."""
    basis: Literal["flags_and_summary", "flags_only", "no_student_answer"]
    """What the decision rests on: flags_only when the embedding model failed."""


class Verdict(BaseModel):
    """The teacher's review of one frame (the ``verdict`` event's data)."""

    review_id: str
    idempotency_key: str
    camera: str
    reason: Reason
    verdict: Observation
    agrees_with_student: bool
    agreement: Agreement
    teacher_model: str
    latency_ms: float
    """Wall time of the teacher's answer."""


class ReviewOut(BaseModel):
    """A review as the API shows it."""

    id: str
    idempotency_key: str
    camera: str
    camera_name: str = ""
    """What the integration calls the camera; empty when it did not say."""
    reason: Reason
    priority: int
    detail: str
    status: ReviewStatus
    attempts: int
    last_error: str | None
    superseded_by: str | None
    captured_at: datetime
    created_at: datetime
    updated_at: datetime
    cursor: int
    """Sequence number of the latest event about this review."""
    verdict: Verdict | None


class ReviewPage(BaseModel):
    """Reviews changed after a cursor, oldest change first."""

    reviews: list[ReviewOut]
    cursor: int
    """Pass as ``after`` to get the next page; unchanged when nothing newer exists."""


class ReviewEvent(BaseModel):
    """The ``review`` event's data: a status change."""

    review_id: str
    idempotency_key: str
    camera: str
    reason: Reason
    priority: int
    status: ReviewStatus
    attempts: int
    error: str | None = None
    superseded_by: str | None = None


class Latency(BaseModel):
    p50: float
    p95: float


class Stats(BaseModel):
    """Queue and teacher statistics (also the ``stats`` event's data)."""

    queue_depth: dict[Reason, int]
    """Queued reviews by priority (reason)."""
    queued: int
    in_progress: int
    accepted: int
    processed: int
    shed: int
    superseded: int
    failed: int
    """Dead-lettered after too many teacher failures."""
    refused: int
    """Answered 429: the queue was full of reviews at least as important."""
    teacher_latency_ms: Latency | None
    """Over recent verdicts; null before the first."""
    agreement_rate: float | None
    """Share of verdicts that agreed with the student; null before the first."""


class TeacherHostHealth(BaseModel):
    """One host of the teacher pool."""

    url: str
    model: str
    status: Literal["reachable", "unreachable"]
    """Unreachable also when the host lacks the model, or the model cannot see images."""
    error: str | None
    breaker: Literal["closed", "open", "half_open"]
    in_flight: int
    """Reviews with this host now."""
    concurrency: int
    weight: int
    reviewed: int
    """Verdicts this host gave since the service started."""
    moved: int
    """Reviews that were with this host when it went down, handed back to another host."""
    notes: list[str] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    """``ok`` only when nothing is failing; ``degraded`` with `reasons` otherwise."""
    reasons: list[str]
    """Everything failing now (teacher, circuit breaker, storage, restarting parts)."""
    teacher: Literal["reachable", "unreachable"]
    """Reachable while at least one host of the teacher pool is."""
    teacher_error: str | None
    """Null while a host is reachable; otherwise what is wrong (with each host, in a pool)."""
    breaker: Literal["closed", "open", "half_open"]
    """The teacher's circuit breaker: open while reviews are held because it fails them all
    (in a pool: closed while any host's breaker is closed)."""
    storage: Literal["ok", "low", "failing"]
    """``failing``: writes fail (new reviews get 507); ``low``: less free space than needed."""
    storage_free_bytes: int | None
    storage_needed_bytes: int
    """Free space the data directory needs for a full queue of the largest frames."""
    queue_depth: int | None
    """Null when the database cannot be read."""
    version: str
    database_id: str
    """A random id made with the database: it changes when the database is deleted and
    recreated, and a client's event cursor is only meaningful with the same id."""
    notes: list[str] = Field(
        default_factory=list,
        description="What the teacher's Ollama release does wrong (it still works): a release "
        "that ignores the answer format without thinking, or one without logprobs.",
    )
    teachers: list[TeacherHostHealth] = Field(
        default_factory=list,
        description="Each host of the teacher pool (one unless the options list more).",
    )
