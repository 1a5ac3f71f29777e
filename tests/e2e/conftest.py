"""Shared settings of the end-to-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")
"""Debian's Chromium, installed by scripts/setup; Playwright downloads no browser."""

CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Quiet, offline and CI-friendly: no sandbox (containers run as root), no updates, no sync."""
