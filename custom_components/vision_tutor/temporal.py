"""The temporal window: one camera's recent frames decide when the safety sensor turns on and off.

Pure logic, no Home Assistant imports. A single flagged frame from a small model is weak
evidence, so the sensor turns on when flags persist (k of the last n analysed frames) or at once
when the teacher confirms a hazard; it turns off only after a run of clean frames. A frame the
student could not read is neither flagged nor clean: it never counts towards "all clear".

The sensor's flags are the hazards that persist *now*, not the window's history:

- turning on, the flags seen in at least k of the frames since the sensor last cleared (or,
  when no single flag has k frames, e.g. fire in one frame and smoke in the next, the flags of
  those frames): a hazard after a cleared one replaces it, old frames never leak into it;
- while on, a flag stays shown until it has been absent from `clean_to_clear` readable frames
  in a row (the same hysteresis that clears the sensor), a flag joins once it has k frames, and
  a flag the teacher confirmed joins at once;
- the window keeps its full history (`recent_flags`) for the temporal-change signal.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """How much evidence turns the safety sensor on and off."""

    size: int = 5
    """Frames kept in the window (n)."""
    flagged_to_trigger: int = 2
    """Flagged frames in the window that turn the sensor on (k)."""
    clean_to_clear: int = 3
    """Consecutive clean frames that turn it off again."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("the window needs at least one frame")
        if not 1 <= self.flagged_to_trigger <= self.size:
            raise ValueError(
                f"flagged frames to trigger must be between 1 and the window size ({self.size})"
            )
        if self.clean_to_clear < 1:
            raise ValueError("at least one clean frame must clear the sensor")


@dataclass(frozen=True, slots=True)
class SafetyState:
    """What the safety binary_sensor shows."""

    on: bool
    flags: tuple[str, ...]
    since: datetime | None
    confirmed_by_teacher: bool
    progress: WindowProgress | None = None
    """How far the window is on its way to the other state; None when it is not on its way."""


@dataclass(frozen=True, slots=True)
class WindowProgress:
    """The k-of-n evidence on its way: why a flagged frame does not (yet) turn the sensor on,
    or why it stays on while frames are clean. Changes only with an analysed frame that moves
    the evidence, so it is no stream of attribute changes."""

    phase: Literal["watching", "clearing"]
    """watching: off, with flagged frames short of the trigger; clearing: on, with clean frames
    in a row short of what clears it."""
    frames: int
    needed: int


@dataclass(slots=True)
class SafetyWindow:
    """The recent frames of one camera and the safety state they add up to."""

    config: WindowConfig = field(default_factory=WindowConfig)
    _frames: deque[frozenset[str] | None] = field(init=False)
    """The last n frames: the history the temporal-change signal compares with."""
    _evidence: deque[frozenset[str] | None] = field(init=False)
    """The last n frames since the sensor last cleared: what turns it on and names its flags."""
    _clean_run: int = field(default=0, init=False)
    _absent: dict[str, int] = field(default_factory=dict, init=False)
    """Readable frames in a row without each shown flag."""
    _teacher_flags: frozenset[str] = field(default=frozenset(), init=False)
    _state: SafetyState = field(
        default_factory=lambda: SafetyState(False, (), None, False), init=False
    )

    def __post_init__(self) -> None:
        self._frames = deque(maxlen=self.config.size)
        self._evidence = deque(maxlen=self.config.size)

    @property
    def state(self) -> SafetyState:
        """The current safety state."""
        return self._state

    @property
    def recent_flags(self) -> frozenset[str]:
        """Every flag seen in the window: a flag outside this set is a temporal change."""
        return frozenset().union(*(frame for frame in self._frames if frame))

    def is_new(self, flags: frozenset[str] | tuple[str, ...]) -> bool:
        """Whether any of these flags is absent from the window (the temporal-change signal)."""
        return bool(frozenset(flags) - self.recent_flags)

    def add_frame(
        self, flags: frozenset[str] | tuple[str, ...] | None, at: datetime
    ) -> SafetyState:
        """Record an analysed frame; None is a frame the student could not read."""
        self._add_frame(flags, at)
        return self._with_progress()

    def _with_progress(self) -> SafetyState:
        """The state with how far the evidence has got towards the other state."""
        progress = None
        if self._state.on and self._clean_run:
            progress = WindowProgress("clearing", self._clean_run, self.config.clean_to_clear)
        elif not self._state.on and (flagged := sum(1 for frame in self._evidence if frame)):
            progress = WindowProgress("watching", flagged, self.config.flagged_to_trigger)
        self._state = replace(self._state, progress=progress)
        return self._state

    def _add_frame(self, flags: frozenset[str] | tuple[str, ...] | None, at: datetime) -> None:
        frame = None if flags is None else frozenset(flags)
        self._frames.append(frame)
        self._evidence.append(frame)
        if frame is None or frame:
            self._clean_run = 0
        else:
            self._clean_run += 1

        if self._state.on:
            if self._clean_run >= self.config.clean_to_clear:
                self._clear()
                return
            if frame is not None:
                for flag in {*self._absent, *frame}:
                    self._absent[flag] = 0 if flag in frame else self._absent.get(flag, 0) + 1
            self._show(self._current_flags(frame), self._state.since)
            return

        if sum(1 for frame in self._evidence if frame) >= self.config.flagged_to_trigger:
            flags_now = self._persistent_flags() or tuple(
                dict.fromkeys(flag for frame in self._evidence if frame for flag in sorted(frame))
            )
            self._absent = self._absence_since_clear()
            self._show(flags_now, at)

    def teacher_confirmed(self, flags: tuple[str, ...], at: datetime) -> SafetyState:
        """The teacher saw the hazard: on at once with its flags, whatever the window says."""
        since = self._state.since if self._state.on else at
        self._teacher_flags = self._teacher_flags | frozenset(flags)
        for flag in flags:
            self._absent[flag] = 0
        self._clean_run = 0
        self._show(tuple(dict.fromkeys((*self._state.flags, *flags))), since)
        return self._with_progress()

    def teacher_dismissed(self) -> SafetyState:
        """The teacher saw no hazard where the student did: clear, and forget the flagged frames."""
        self._frames = deque(
            (frozenset() if frame else frame for frame in self._frames), maxlen=self.config.size
        )
        self._clear()
        return self._with_progress()

    def _clear(self) -> None:
        self._state = SafetyState(False, (), None, False)
        self._evidence.clear()
        self._absent.clear()
        self._teacher_flags = frozenset()

    def _show(self, flags: tuple[str, ...], since: datetime | None) -> None:
        self._teacher_flags &= frozenset(flags)
        self._state = SafetyState(True, flags, since, bool(self._teacher_flags))

    def _current_flags(self, frame: frozenset[str] | None) -> tuple[str, ...]:
        """While on: the shown flags still fresh, then those that have reached k frames."""
        fresh = {f for f, run in self._absent.items() if run < self.config.clean_to_clear}
        kept = tuple(flag for flag in self._state.flags if flag in fresh)
        joined = tuple(f for f in self._persistent_flags() if f in fresh and f not in kept)
        flags_now = (*kept, *joined)
        if flags_now:
            return flags_now
        # Every shown flag has gone, but the sensor has not cleared: the latest evidence.
        latest = next((f for f in reversed(self._evidence) if f), frame or frozenset())
        for flag in latest:
            self._absent[flag] = 0
        return tuple(sorted(latest))

    def _absence_since_clear(self) -> dict[str, int]:
        """For each flag since the last clear, the readable frames since it was last seen."""
        absent: dict[str, int] = {}
        for frame in self._evidence:
            if frame is None:
                continue
            for flag in {*absent, *frame}:
                absent[flag] = 0 if flag in frame else absent.get(flag, 0) + 1
        return absent

    def _persistent_flags(self) -> tuple[str, ...]:
        """The flags in at least k of the frames since the last clear, most frequent first."""
        counts = Counter(flag for frame in self._evidence if frame for flag in sorted(frame))
        return tuple(
            flag for flag, count in counts.most_common() if count >= self.config.flagged_to_trigger
        )
