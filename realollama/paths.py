"""Where the real Ollama and its test models live: the project's cache folder."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess

REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The cache `scripts/setup` uses (VISION_TUTOR_CACHE, else XDG's, else ~/.cache)."""
    if explicit := os.environ.get("VISION_TUTOR_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "vision-tutor"


def build_binary() -> Path:
    """The pinned Ollama binary, built by `scripts/ollama-build` when it is not yet cached."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "ollama-build")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def models_dir() -> Path:
    """OLLAMA_MODELS of the test servers: the cache's, or VISION_TUTOR_OLLAMA_MODELS."""
    if explicit := os.environ.get("VISION_TUTOR_OLLAMA_MODELS"):
        return Path(explicit)
    return cache_dir() / "ollama" / "models"
