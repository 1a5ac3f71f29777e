"""The temporal window: one camera's recent frames decide when the safety sensor turns on and off.

Pure logic, no Home Assistant imports. A single flagged frame from a small model is weak
evidence, so the sensor turns on when flags persist (k of the last n analysed frames) or at once
when the teacher confirms a hazard; it turns off only after a run of clean frames. A frame the
student could not read is neither flagged nor clean: it never counts towards "all clear".
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime


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


@dataclass(slots=True)
class SafetyWindow:
    """The recent frames of one camera and the safety state they add up to."""

    config: WindowConfig = field(default_factory=WindowConfig)
    _frames: deque[frozenset[str] | None] = field(init=False)
    _clean_run: int = field(default=0, init=False)
    _state: SafetyState = field(
        default_factory=lambda: SafetyState(False, (), None, False), init=False
    )

    def __post_init__(self) -> None:
        self._frames = deque(maxlen=self.config.size)

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
        frame = None if flags is None else frozenset(flags)
        self._frames.append(frame)
        if frame is None or frame:
            self._clean_run = 0
        else:
            self._clean_run += 1

        if self._state.on:
            if self._clean_run >= self.config.clean_to_clear:
                self._state = SafetyState(False, (), None, False)
            elif frame:
                flags_now = tuple(dict.fromkeys((*self._state.flags, *sorted(frame))))
                self._state = SafetyState(
                    True, flags_now, self._state.since, self._state.confirmed_by_teacher
                )
            return self._state

        persistent = self._persistent_flags()
        if persistent:
            self._state = SafetyState(True, persistent, at, False)
        return self._state

    def teacher_confirmed(self, flags: tuple[str, ...], at: datetime) -> SafetyState:
        """The teacher saw the hazard: on at once, whatever the window says."""
        since = self._state.since if self._state.on else at
        merged = tuple(dict.fromkeys((*self._state.flags, *flags)))
        self._clean_run = 0
        self._state = SafetyState(True, merged, since, True)
        return self._state

    def teacher_dismissed(self) -> SafetyState:
        """The teacher saw no hazard where the student did: clear, and forget the flagged frames."""
        self._frames = deque(
            (frozenset() if frame else frame for frame in self._frames), maxlen=self.config.size
        )
        self._state = SafetyState(False, (), None, False)
        return self._state

    def _persistent_flags(self) -> tuple[str, ...]:
        """Every flag in the window, most frequent first, once k of its frames are flagged."""
        counts = Counter(flag for frame in self._frames if frame for flag in frame)
        flagged_frames = sum(1 for frame in self._frames if frame)
        if flagged_frames < self.config.flagged_to_trigger:
            return ()
        return tuple(flag for flag, _ in counts.most_common())
