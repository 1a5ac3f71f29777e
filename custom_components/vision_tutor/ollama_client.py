"""Reach an Ollama host the way the rest of the integration does, and know what it can do.

Which Ollama release serves the student matters: logprobs (the confidence signal the routing
policy prefers) exist from 0.12.11, and some releases ignore the answer's JSON schema when
thinking is turned off. What a model can do comes from `/api/show`: a model without `vision`
never sees the camera frame (Ollama drops the image without an error).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Final

import ollama

from homeassistant.util.ssl import get_default_context

type Version = tuple[int, int, int]

LOGPROBS_SINCE: Final[Version] = (0, 12, 11)
"""The first Ollama release that returns token logprobs."""
FORMAT_DROPPED_FROM: Final[Version] = (0, 20, 0)
FORMAT_FIXED_GEMMA4: Final[Version] = (0, 21, 1)
"""gemma4 with `format` and `think: false` answers free text on 0.20.0 to 0.21.0."""
FORMAT_FIXED_THINKING: Final[Version] = (0, 31, 2)
"""The same for other thinking models with a built-in parser, fixed later."""

_VERSION: Final = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def create_client(url: str) -> ollama.AsyncClient:
    """Create a client; the SSL context comes from Home Assistant so no file is read in the loop."""
    return ollama.AsyncClient(host=url, verify=get_default_context())


def parse_version(text: object) -> Version | None:
    """ "0.21.1", "v0.12.11-rc2" or "0.5" as a comparable triple; None when it is not a version."""
    match = _VERSION.match(str(text or "").strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def version_text(version: Version | None) -> str:
    """A version for people: "0.21.1", or "unknown"."""
    return ".".join(str(part) for part in version) if version else "unknown"


async def async_server_version(client: ollama.AsyncClient) -> Version | None:
    """The server's release from `/api/version`; None when it does not say.

    The official client has no call for it, so this uses the client's own HTTP connection
    (the same base URL, headers and TLS settings as every other call). An error status is an
    `ollama.ResponseError`, as the client's calls raise.
    """
    response = await client._client.get("/api/version")
    if response.status_code == 404:  # a proxy, or an Ollama-like server without the route
        return None
    if response.is_error:
        raise ollama.ResponseError(response.text, response.status_code)
    try:
        body = response.json()
    except ValueError:
        return None
    return parse_version(body.get("version")) if isinstance(body, dict) else None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What `/api/show` says a model can do."""

    name: str
    capabilities: frozenset[str]
    family: str = ""

    @property
    def vision(self) -> bool:
        """Whether the model reads images (else Ollama drops them and it answers blind)."""
        return "vision" in self.capabilities

    @property
    def gemma4(self) -> bool:
        return self.family == "gemma4" or self.name.startswith("gemma4")


async def async_model_info(client: ollama.AsyncClient, name: str) -> ModelInfo:
    """The model's capabilities and family (servers before 0.6.4 report no capabilities)."""
    shown = await client.show(name)
    family = (shown.details.family if shown.details else None) or ""
    return ModelInfo(name, frozenset(shown.capabilities or ()), family)


def serves_logprobs(version: Version | None) -> bool:
    """Whether the server returns logprobs; an unknown release is given the benefit of doubt."""
    return version is None or version >= LOGPROBS_SINCE


def drops_format_without_thinking(version: Version | None, model: ModelInfo) -> bool:
    """Whether this release ignores `format` for this model when `think` is false.

    gemma4 is affected from 0.20.0 until 0.21.1; other models that think (and so have a
    built-in parser) until 0.31.2. Ollama does not report the parser, so "thinking" among the
    capabilities stands for it.
    """
    if version is None or version < FORMAT_DROPPED_FROM:
        return False
    if model.gemma4:
        return version < FORMAT_FIXED_GEMMA4
    return "thinking" in model.capabilities and version < FORMAT_FIXED_THINKING
