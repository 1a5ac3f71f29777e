"""What the teacher's Ollama release and model can do, and pulling the model at start.

- A teacher model without ``vision`` is refused: Ollama would drop every frame without an error
  and the teacher would review pictures it never saw (`Teacher.probe` reports it, so the
  reviewers hold the queue instead).
- Releases that ignore ``format`` when ``think`` is false (gemma4 on 0.20.0 to 0.21.0; other
  thinking models until 0.31.2), and releases without logprobs (before 0.12.11), are health
  notes: the service works, less well.
- A teacher model that is not pulled is pulled when the service starts, with its progress in
  the log.

The integration checks the student the same way (its own copy: the two ship separately).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
import re
from typing import Final

import ollama

type Version = tuple[int, int, int]

LOGPROBS_SINCE: Final[Version] = (0, 12, 11)
FORMAT_DROPPED_FROM: Final[Version] = (0, 20, 0)
FORMAT_FIXED_GEMMA4: Final[Version] = (0, 21, 1)
FORMAT_FIXED_THINKING: Final[Version] = (0, 31, 2)
PULL_LOG_STEP: Final = 0.1
"""The pull's progress is logged every tenth of the model."""

_VERSION: Final = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_LOGGER = logging.getLogger(__name__)


def parse_version(text: object) -> Version | None:
    match = _VERSION.match(str(text or "").strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def version_text(version: Version) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    capabilities: frozenset[str]
    family: str = ""

    @property
    def vision(self) -> bool:
        return "vision" in self.capabilities

    @property
    def gemma4(self) -> bool:
        return self.family == "gemma4" or self.name.startswith("gemma4")


async def server_version(client: ollama.AsyncClient) -> Version | None:
    """`/api/version` through the client's own connection (the client has no call for it)."""
    response = await client._client.get("/api/version")
    if response.status_code == 404:
        return None
    if response.is_error:
        raise ollama.ResponseError(response.text, response.status_code)
    try:
        body = response.json()
    except ValueError:
        return None
    return parse_version(body.get("version")) if isinstance(body, dict) else None


async def model_info(client: ollama.AsyncClient, name: str) -> ModelInfo:
    shown = await client.show(name)
    family = (shown.details.family if shown.details else None) or ""
    return ModelInfo(name, frozenset(shown.capabilities or ()), family)


def blind_model_error(model: ModelInfo, url: str) -> str | None:
    """Why the model cannot review frames, or None."""
    if model.vision:
        return None
    return (
        f"the teacher model {model.name!r} at {url} cannot see images (Ollama does not list "
        "vision among its capabilities, and would drop every frame): choose a vision model"
    )


def release_notes(version: Version | None, model: ModelInfo, url: str) -> list[str]:
    """Health notes about what this Ollama release does wrong for the model."""
    if version is None:
        return []
    notes = []
    fixed_in = FORMAT_FIXED_GEMMA4 if model.gemma4 else FORMAT_FIXED_THINKING
    thinking = model.gemma4 or "thinking" in model.capabilities
    if thinking and FORMAT_DROPPED_FROM <= version < fixed_in:
        notes.append(
            f"Ollama {version_text(version)} at {url} ignores the JSON format for "
            f"{model.name!r} when thinking is off, so answers may break the contract and use up "
            f"attempts: update Ollama to {version_text(fixed_in)} or later"
        )
    if version < LOGPROBS_SINCE:
        notes.append(
            f"Ollama {version_text(version)} at {url} returns no logprobs (they arrived in "
            f"{version_text(LOGPROBS_SINCE)}): effective confidence falls back to the confidence "
            "the model states"
        )
    return notes


async def pull_if_missing(
    client: ollama.AsyncClient, model: str, log: Callable[[str], None] = _LOGGER.info
) -> bool:
    """Pull `model` unless the server has it; progress goes to `log`. True when it pulled."""
    listing = await client.list()
    if any(_same_model(model, entry.model or "") for entry in listing.models):
        return False
    log(f"Pulling the teacher model {model} (it is not on the server yet)")
    totals: dict[str, tuple[int, int]] = {}
    logged = -1.0
    async for part in await client.pull(model, stream=True):
        if part.digest and part.total:
            totals[part.digest] = (part.completed or 0, part.total)
            done = sum(completed for completed, _ in totals.values())
            fraction = done / sum(total for _, total in totals.values())
            if fraction >= logged + PULL_LOG_STEP or fraction >= 1.0 > logged:
                logged = fraction
                log(f"Pulling {model}: {fraction:.0%} of {_gigabytes(totals)}")
        elif part.status:
            log(f"Pulling {model}: {part.status}")
    return True


def _gigabytes(totals: dict[str, tuple[int, int]]) -> str:
    return f"{sum(total for _, total in totals.values()) / 1e9:.1f} GB"


def _same_model(wanted: str, available: str) -> bool:
    def tagged(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return tagged(wanted) == tagged(available)
