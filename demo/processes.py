"""The demo's background programs: the simulator, the teacher service and Home Assistant.

Each runs in its own session (a Ctrl-C in the terminal reaches only the demo, which then stops
them in order), writes to a log file in the demo's folder, and announces readiness with a line
the demo waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import signal
import time

STOP_TIMEOUT = 30.0
"""Seconds a program gets to stop after SIGTERM before it is killed."""


class ServiceFailed(RuntimeError):
    """A program exited or did not get ready; the message ends with its last log lines."""


@dataclass
class Service:
    """One running program and its log."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def tail(self, lines: int = 15) -> str:
        """The end of the log, for error messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def last_line(self) -> str:
        tail = self.tail(1).strip()
        # Log lines start with a timestamp and a level: keep what they say.
        return re.sub(r"^\d{4}-\d\d-\d\d[ T][\d:.,]+ +\w+ +", "", tail)[:90]

    def failure(self, what: str) -> ServiceFailed:
        return ServiceFailed(f"{self.name} {what}; the end of {self.log}:\n{self.tail()}")

    async def wait_for_line(self, pattern: str, within: float) -> re.Match[str]:
        """Wait until the log has a line matching `pattern`; fail if the program exits."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while True:
            try:
                text = self.log.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            if match := regex.search(text):
                return match
            if not self.running:
                raise self.failure(f"exited with status {self.process.returncode}")
            if time.monotonic() > deadline:
                raise self.failure(f"did not get ready within {within:.0f} s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if not self.running:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            await self.process.wait()


async def start(name: str, argv: Sequence[str], log: Path, *, cwd: Path | None = None) -> Service:
    """Start a program in a new session, its output (both streams) appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Service(name, process, log)
