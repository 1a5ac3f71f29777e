"""Model profiles: which models the simulator serves and how each one behaves.

The profiles live in a small JSON file (``profiles.json`` beside this module by default) that a
user can copy and edit, then pass with ``python -m simulator --profiles FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import json
from pathlib import Path
from typing import Any, Literal

DEFAULT_PROFILES = Path(__file__).with_name("profiles.json")
DEFAULT_LOGPROB_AUC = 0.90
"""How well the mean token logprob tells right answers from wrong ones (ROC AUC) by default."""

type Role = Literal["student", "teacher", "embedding"]
type NonVisionImages = Literal["ollama", "drop", "reject"]
type Capability = Literal["completion", "vision", "thinking", "embedding", "tools"]


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault injection for one model; rates are probabilities per request."""

    error_rate: float = 0.0
    """Answer HTTP 500 with an Ollama error body instead of a completion."""
    stall_s: float = 0.0
    """Extra seconds (real, not time-scaled) before the first byte: for timeout tests."""
    garbage_rate: float = 0.0
    """Answer with text that is not JSON and not the contract, even when `format` was given."""
    midstream_error_rate: float = 0.0
    """In a streamed answer, send an `{"error": ...}` line after the first chunks and stop."""


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """One served model."""

    name: str
    role: Role
    capabilities: tuple[Capability, ...]
    family: str = "gemma4"
    parameter_size: str = ""
    quantization_level: str = "Q4_K_M"
    size_bytes: int = 0
    context_length: int = 32768
    latency_ms: float = 100.0
    """Median wall time of one answer (or one embedding call) at time scale 1."""
    latency_jitter: float = 0.15
    """Relative spread of the latency (log-normal sigma)."""
    thinking_latency_ms: float = 0.0
    """Extra time when thinking is on (Ollama's default for thinking models)."""
    load_ms: float = 0.0
    """Time to load the model when it is not in memory (reported as load_duration)."""
    accuracy: dict[str, float] = field(default_factory=dict)
    """Probability of a correct answer by scene kind ("routine", "edge") for a reference prompt."""
    prompt_sensitivity: float = 0.0
    """How far prompt quality moves accuracy (see simulator/README.md)."""
    verbal_confidence: tuple[float, float] = (0.85, 1.0)
    """Range of the confidence the model states, whether it is right or not."""
    calibrated: bool = False
    """A calibrated model states lower confidence when it is wrong."""
    logprob_auc: float = DEFAULT_LOGPROB_AUC
    """The ROC AUC of the mean token logprob between its right and wrong answers, 0.5 (no
    signal) to 0.95. The default keeps the simulator's original mixture (about 0.90)."""
    dimensions: int = 0
    """Embedding vector length (embedding models only)."""
    faults: Faults = field(default_factory=Faults)

    def with_faults(self, faults: Faults) -> ModelProfile:
        """Return a copy with other fault injection settings."""
        return replace(self, faults=faults)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the server needs besides the scene library."""

    models: dict[str, ModelProfile]
    seed: int = 0
    time_scale: float = 1.0
    """Multiplies every simulated duration; 0.01 makes tests fast."""
    num_parallel: int = 1
    """Requests served at once, like OLLAMA_NUM_PARALLEL."""
    max_queue: int = 512
    """Requests waiting for a slot before 503, like OLLAMA_MAX_QUEUE."""
    version: str = "0.24.0"
    """What ``/api/version`` answers: a release that serves gemma4 with ``format`` and
    ``think: false`` correctly (0.21.1 or later), and logprobs (0.12.11 or later)."""
    format_dropped_without_thinking: bool = False
    """Emulate Ollama 0.20.0 to 0.21.0: a thinking model asked for ``format`` with
    ``think: false`` ignores the format and answers free text."""
    non_vision_images: NonVisionImages = "ollama"
    """Images sent to a model without vision: as Ollama 0.24 does ("ollama": a runner error for
    gemma3/gemma4-like architectures, silently dropped for others), always "drop" them
    silently, or "reject" with 400 to catch misconfiguration."""
    not_pulled: frozenset[str] = frozenset()
    """Served models that start absent: 404 until ``/api/pull`` fetches them."""

    def model(self, name: str) -> ModelProfile | None:
        """Find a model by name, accepting a missing ``:latest`` tag as Ollama does."""
        if name in self.models:
            return self.models[name]
        if ":" not in name:
            return self.models.get(f"{name}:latest")
        if name.endswith(":latest"):
            return self.models.get(name.removesuffix(":latest"))
        return None


def _profile(name: str, raw: dict[str, Any]) -> ModelProfile:
    raw = dict(raw)
    faults = Faults(**raw.pop("faults", {}))
    confidence = tuple(raw.pop("verbal_confidence", (0.85, 1.0)))
    if len(confidence) != 2:
        raise ValueError(f"model {name!r}: verbal_confidence must be [low, high]")
    auc = float(raw.pop("logprob_auc", DEFAULT_LOGPROB_AUC))
    if not 0.5 <= auc <= 0.95:
        raise ValueError(f"model {name!r}: logprob_auc must be between 0.5 and 0.95")
    return ModelProfile(
        name=name,
        capabilities=tuple(raw.pop("capabilities")),
        verbal_confidence=(float(confidence[0]), float(confidence[1])),
        logprob_auc=auc,
        faults=faults,
        **raw,
    )


def load_config(path: Path | None = None, **overrides: Any) -> SimulatorConfig:
    """Read a profiles file; keyword overrides (seed, time_scale, ...) win over the file."""
    try:
        raw: dict[str, Any] = json.loads((path or DEFAULT_PROFILES).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f"cannot read simulator profiles {path or DEFAULT_PROFILES}: {err}"
        ) from err
    try:
        models = {name: _profile(name, spec) for name, spec in raw.pop("models").items()}
        settings = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
        if "not_pulled" in settings:
            settings["not_pulled"] = frozenset(settings["not_pulled"])
        return SimulatorConfig(models=models, **settings)
    except (KeyError, TypeError) as err:
        raise ValueError(f"invalid simulator profiles: {err}") from err
