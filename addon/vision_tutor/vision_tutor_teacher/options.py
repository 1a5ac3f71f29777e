"""The add-on's options: ``/data/options.json`` as the Supervisor writes it, or a standalone file.

The Supervisor validates the user's options against ``config.yaml``'s schema before it starts the
container and writes them to ``/data/options.json``; standalone users write the same JSON by hand.
Both go through `load_options`, so a typo fails at start with a message naming the field instead
of somewhere deep in the queue. Unknown keys are logged and ignored: an option removed in a newer
version must not stop an upgraded add-on from starting.

A few tuning knobs (retry backoff, probe and heartbeat intervals) are not in ``config.yaml``: they
have sensible defaults, and only standalone users and tests set them.

**The teacher pool.** ``teacher_url``, ``teacher_model`` and ``teacher_concurrency`` describe one
teacher host, the simple default (and what every options file before the pool said). ``teachers``
lists more hosts (URL, and optionally model, weight and concurrency); `Options.teacher_hosts` is
the pool both make together: the ``teacher_url`` host first (it also serves the prompt lab's
teacher calls), then the others. With only ``teachers`` set, its first host takes the place of
``teacher_url``.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_OPTIONS_FILE: Final = Path("/data/options.json")
MEGABYTE: Final = 1024 * 1024
WORKING_SPACE_BYTES: Final = 16 * MEGABYTE
"""Room for the write-ahead log, the lab's jobs and the statistics between checkpoints."""
DATABASE_BYTES: Final = 64 * MEGABYTE
"""Reviews without frames, events and the validation suite, after retention (a generous bound)."""


class OptionsError(Exception):
    """The options file is missing, unreadable or invalid; the message says which field."""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value.rstrip("/")


class TeacherHostOption(BaseModel):
    """One more teacher host of the pool, as ``teachers`` lists it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str
    model: str | None = Field(default=None, min_length=1)
    """The teacher model on this host; ``teacher_model`` when left out."""
    weight: int = Field(default=1, ge=1, le=100)
    """Which host goes first when several are equally free (a faster GPU: a higher weight)."""
    concurrency: int | None = Field(default=None, ge=1, le=64)
    """Reviews this host takes at once; ``teacher_concurrency`` when left out."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


@dataclass(frozen=True, slots=True)
class TeacherHost:
    """One host of the teacher pool, with every default filled in."""

    url: str
    model: str
    weight: int
    concurrency: int


class Options(BaseModel):
    """Everything the service can be configured with."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The models (config.yaml exposes these).
    teacher_url: str
    """The Ollama server with the teacher and the embedding model."""
    teacher_model: str = Field(default="gemma4:26b", min_length=1)
    student_url: str | None = None
    """The student's Ollama server, for the prompt lab's scoring runs."""
    student_model: str = Field(default="gemma4:e2b", min_length=1)
    embedding_model: str = Field(default="embeddinggemma", min_length=1)

    # The queue.
    queue_limit: int = Field(default=20, ge=1, le=10_000)
    """Queued reviews at most; beyond it lower priorities are shed, or the new one refused."""
    batch_window_ms: int = Field(default=1000, ge=0, le=600_000)
    """A newer review of the same camera and reason within this window supersedes a queued one."""
    retention_days: int = Field(default=30, ge=1, le=3650)
    frame_disk_cap_mb: int = Field(default=1024, ge=1)
    max_image_mb: int = Field(default=8, ge=1, le=64)

    # The teacher.
    teacher_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    teacher_concurrency: int = Field(default=1, ge=1, le=64)
    teachers: list[TeacherHostOption] = []
    """More teacher hosts: the pool is the ``teacher_url`` host and these (see the module)."""
    max_attempts: int = Field(default=5, ge=1, le=100)
    """Teacher failures on one review before it is dead-lettered (status failed)."""
    agreement_threshold: float = Field(default=0.75, ge=0, le=1)
    """Summary embedding cosine at or above which the summaries count as agreeing."""

    # The prompt lab.
    lab_min_holdout: float = Field(default=0.85, ge=0, le=1)
    """A candidate is promoted only with at least this holdout score (and lab_margin more than
    the active prompt's)."""
    lab_margin: float = Field(default=0.02, ge=0, le=1)
    lab_llm_judge: bool = False
    """Also have the teacher grade every answer (costs one teacher call per case and prompt)."""
    lab_student_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """A slower answer to a validation case scores as a failure; the run goes on."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Tuning knobs, not in config.yaml.
    retry_base_s: float = Field(default=2.0, gt=0)
    """First retry delay after a teacher failure; doubles per attempt."""
    retry_max_s: float = Field(default=300.0, gt=0)
    probe_interval_s: float = Field(default=30.0, gt=0)
    """How often the teacher's reachability is checked; faster while it is down."""
    teacher_max_tokens: int = Field(default=1024, ge=16, le=32768)
    """The longest review answer asked for (Ollama's num_predict): a contract answer takes a few
    hundred tokens at most; a model that loops would otherwise write until its context is full."""
    embedding_timeout_s: float = Field(default=30.0, gt=0)
    stats_interval_s: float = Field(default=2.0, gt=0)
    """At most one ``stats`` event per interval, and only when something changed."""
    heartbeat_s: float = Field(default=15.0, gt=0)
    """A comment on an idle event stream this often, so proxies keep it open."""
    retention_interval_s: float = Field(default=3600.0, gt=0)
    breaker_failures: int = Field(default=3, ge=2, le=100)
    """Failed attempts in a row, across at least two reviews, that open the circuit breaker."""
    breaker_first_probe_s: float = Field(default=5.0, gt=0)
    """How long an open breaker waits before probing with a real review; doubles per failure."""
    breaker_max_probe_s: float = Field(default=300.0, gt=0)
    storage_retry_s: float = Field(default=1.0, gt=0)
    """How soon work that failed to write is tried again."""
    storage_check_s: float = Field(default=10.0, gt=0)
    """How often the data directory's free space (and, after a failure, writing) is checked."""
    restart_first_s: float = Field(default=0.5, gt=0)
    """A failed background part restarts after this long, doubling up to restart_max_s."""
    restart_max_s: float = Field(default=30.0, gt=0)
    restart_stable_s: float = Field(default=10.0, gt=0)
    """A restarted part that runs this long without failing counts as healthy again."""
    lab_concurrency: int = Field(default=2, ge=1, le=32)
    """Student calls at once while scoring (Ollama queues beyond its OLLAMA_NUM_PARALLEL)."""
    lab_minibatch: int = Field(default=12, ge=2, le=1000)
    """Train cases each candidate is screened on before the survivors see the whole train set."""
    lab_holdout_share: float = Field(default=0.3, gt=0, lt=1)
    """Share of cases the hash assigns to the holdout split."""
    lab_gate_sigmas: float = Field(default=1.0, ge=0, le=10)
    """The gate also wants the gain over the active prompt to exceed this many standard errors
    of the paired per-case differences (0 turns that off)."""
    lab_dedup_similarity: float = Field(default=0.95, gt=0, le=1)
    """Candidates at least this similar (embedding cosine) to another prompt are dropped."""
    finetune_min_examples: int = Field(default=100, ge=1)
    finetune_epsilon: float = Field(default=0.01, ge=0, le=1)
    finetune_rounds: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="before")
    @classmethod
    def _teacher_url_from_pool(cls, raw: object) -> object:
        """Only ``teachers`` given: its first host is the one ``teacher_url`` names."""
        if not isinstance(raw, dict) or raw.get("teacher_url"):
            return raw
        hosts = raw.get("teachers")
        if not isinstance(hosts, list | tuple) or not hosts or not isinstance(hosts[0], dict):
            return raw
        first = hosts[0]
        filled = {**raw, "teacher_url": first.get("url")}
        if first.get("model"):
            filled.setdefault("teacher_model", first["model"])
        return filled

    @field_validator("teacher_url")
    @classmethod
    def _teacher_url(cls, value: str) -> str:
        return _http_url(value)

    @property
    def teacher_hosts(self) -> tuple[TeacherHost, ...]:
        """The teacher pool: the ``teacher_url`` host first, then ``teachers`` (a host listed
        twice, same URL and model, counts once; its ``teachers`` entry sets weight and
        concurrency)."""
        listed = [
            TeacherHost(
                host.url,
                host.model or self.teacher_model,
                host.weight,
                host.concurrency or self.teacher_concurrency,
            )
            for host in self.teachers
        ]
        first = next(
            (
                host
                for host in listed
                if (host.url, host.model) == (self.teacher_url, self.teacher_model)
            ),
            TeacherHost(self.teacher_url, self.teacher_model, 1, self.teacher_concurrency),
        )
        pool = [first]
        for host in listed:
            if all((host.url, host.model) != (seen.url, seen.model) for seen in pool):
                pool.append(host)
        return tuple(pool)

    @field_validator("student_url")
    @classmethod
    def _student_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _http_url(value)

    @property
    def max_image_bytes(self) -> int:
        return self.max_image_mb * MEGABYTE

    @property
    def frame_disk_cap_bytes(self) -> int:
        return self.frame_disk_cap_mb * MEGABYTE

    @property
    def free_space_needed_bytes(self) -> int:
        """Free space the data directory needs to take a full queue of the largest frames
        (stored once, and once more in the write-ahead log before a checkpoint)."""
        return 2 * self.queue_limit * self.max_image_bytes + WORKING_SPACE_BYTES

    @property
    def data_dir_size_bytes(self) -> int:
        """What the data directory should have in all: kept frames, a full queue, working space."""
        return self.frame_disk_cap_bytes + self.free_space_needed_bytes + DATABASE_BYTES


def summarise_validation_error(err: ValidationError, limit: int = 8) -> str:
    """Pydantic's errors as one line: ``field.path: message; ...`` (at most `limit` of them)."""
    parts = []
    for error in err.errors()[:limit]:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    more = len(err.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_options(raw: object) -> Options:
    """Validate already-decoded options; unknown keys are logged and ignored."""
    if not isinstance(raw, dict):
        raise OptionsError("options must be a JSON object")
    if unknown := sorted(set(raw) - set(Options.model_fields)):
        _LOGGER.warning("Ignoring unknown options: %s", ", ".join(unknown))
    try:
        return Options.model_validate(raw)
    except ValidationError as err:
        raise OptionsError(f"invalid options: {summarise_validation_error(err)}") from err


def load_options(path: Path = DEFAULT_OPTIONS_FILE) -> Options:
    """Read and validate an options file (blocking: call it before the event loop runs)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise OptionsError(f"cannot read options file {path}: {err.strerror or err}") from err
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise OptionsError(f"options file {path} is not valid JSON: {err}") from err
    return parse_options(raw)
