"""What the demo says while it works: steps, a spinner with elapsed seconds, and live results.

A terminal gets a spinner redrawn in place; a log file or CI (no TTY) gets a line every few
seconds instead, so the output is never silent and never a wall of carriage returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
import sys
import time
from typing import TextIO

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PLAIN_INTERVAL = 5.0
"""Seconds between progress lines without a terminal."""


class Console:
    """Writes the demo's progress to a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None, *, started: float | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.started = time.monotonic() if started is None else started
        self._status_width = 0

    def line(self, text: str = "") -> None:
        """One line of output, clearing a spinner first."""
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, text: str) -> None:
        """A step of the start-up, with the time since the demo began."""
        self.line(f"[{time.monotonic() - self.started:5.1f}s] {text}")

    def error(self, text: str) -> None:
        self.line(f"error: {text}")

    def _clear(self) -> None:
        if self.tty and self._status_width:
            self.stream.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0

    def _status(self, text: str) -> None:
        self._clear()
        self.stream.write(text)
        self.stream.flush()
        self._status_width = len(text)

    @contextlib.asynccontextmanager
    async def waiting(
        self, what: str, detail: Callable[[], str] | None = None
    ) -> AsyncIterator[None]:
        """Show that `what` is under way until the block ends: a spinner, or periodic lines.

        `detail` may add what is known so far (e.g. the last line of a log).
        """
        began = time.monotonic()

        async def spin() -> None:
            frame = 0
            last_plain = began
            while True:
                elapsed = time.monotonic() - began
                extra = detail() if detail else ""
                if self.tty:
                    text = f"  {SPINNER[frame % len(SPINNER)]} {what} ({elapsed:.0f}s)"
                    if extra:
                        text += f" - {extra}"
                    self._status(text[:160])
                    frame += 1
                elif time.monotonic() - last_plain >= PLAIN_INTERVAL:
                    last_plain = time.monotonic()
                    self.line(f"  ... {what} ({elapsed:.0f}s)" + (f" - {extra}" if extra else ""))
                await asyncio.sleep(0.1 if self.tty else 0.5)

        task = asyncio.create_task(spin())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._clear()
