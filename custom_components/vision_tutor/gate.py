"""The change gate: is a grabbed frame different enough from the last analysed one? Pure numpy.

A person at normal distance covers 1-6 % of a frame; a mean over the whole frame dilutes that
below sensor noise. The gate looks locally instead:

1. Both greyscale thumbnails (`frames.decode_thumbnail`, 160 px wide) are compared after the
   global brightness change is taken out: a gain (the ratio of the mean brightness, for flicker
   and auto-exposure) and then each row's median difference, over the row's cell-wide
   segments (rolling-shutter banding, which shifts whole rows).
2. The remaining absolute difference is averaged in cells of 10 x 10 thumbnail pixels (about
   120 x 120 pixels of a 1080p frame), and the score is the largest cell's average.
3. The frame is analysed when the score is above the threshold that the sensitivity option maps
   onto (`gate_threshold`).

Independently of the score, a frame is analysed when there is no reference yet, when the caller
must analyse it (motion, an action, a hazard being watched), and when the last analysis is
older than the re-look interval: a hazard the gate missed is looked at again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

CELL: Final = 10
"""Side of a gate cell, in thumbnail pixels."""
THRESHOLD_AT_ZERO: Final = 0.2
"""Sensitivity 0: only big changes (a large object close up, another view) count."""
THRESHOLD_AT_ONE: Final = 0.002
"""Where the mapping ends; at sensitivity 1 itself every frame is analysed."""

type GateReason = Literal["first", "must_analyse", "changed", "relook", "unchanged"]


def gate_threshold(sensitivity: float) -> float:
    """The largest-cell change above which a frame counts as changed.

    Geometric between 0.2 (sensitivity 0) and 0.002 (towards 1): 0.5, the default, is 0.02,
    a 2 % average change in one cell. Sensitivity 1 (or more) analyses every frame: 0.0 is
    returned and `ChangeGate` skips the comparison altogether.
    """
    sensitivity = min(max(sensitivity, 0.0), 1.0)
    if sensitivity >= 1.0:
        return 0.0
    return float(THRESHOLD_AT_ZERO * (THRESHOLD_AT_ONE / THRESHOLD_AT_ZERO) ** sensitivity)


def change_score(reference: NDArray[np.float32], current: NDArray[np.float32]) -> float:
    """The largest cell's mean absolute change, global gain and row shifts removed (0..1).

    Thumbnails of different shapes (the camera changed resolution) score 1.0: changed.
    """
    if reference.shape != current.shape:
        return 1.0
    # In the reference's units: a dim frame's differences are not shrunk by its dimness.
    gain = max(float(current.mean()), 1e-3) / max(float(reference.mean()), 1e-3)
    difference = current / np.float32(gain) - reference
    rows, columns = difference.shape
    # Cells that do not fit whole at the bottom or right edge are widened into their neighbour.
    row_cells, column_cells = max(1, rows // CELL), max(1, columns // CELL)
    row_edges, column_edges = _edges(rows, row_cells), _edges(columns, column_cells)
    widths = np.diff(column_edges, append=columns)
    # A row's shift is the median of its cell-wide segments' means: as robust to a person
    # covering part of the row as the median of its pixels, at a tenth of the cost (the
    # pixels' median was half of a skipped frame's cost after the decode).
    segments = np.add.reduceat(difference, column_edges, axis=1) / widths
    difference -= np.median(segments, axis=1, keepdims=True)
    magnitude = np.abs(difference)
    sums = np.add.reduceat(np.add.reduceat(magnitude, row_edges, axis=0), column_edges, axis=1)
    counts = np.outer(np.diff(row_edges, append=rows), widths)
    return float((sums / counts).max())


def _edges(length: int, cells: int) -> NDArray[np.intp]:
    return np.arange(cells, dtype=np.intp) * (length // cells)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether to analyse a frame, why, and the change score when one was computed."""

    analyse: bool
    reason: GateReason
    score: float | None = None


class ChangeGate:
    """One camera's gate: the last analysed frame's thumbnail and when it was analysed."""

    def __init__(self, sensitivity: float, relook: timedelta | None) -> None:
        self.sensitivity = sensitivity
        self.threshold = gate_threshold(sensitivity)
        self.relook = relook
        """Analyse at least this often whatever the score; None: only on change."""
        self._reference: NDArray[np.float32] | None = None
        self._analysed_at: datetime | None = None

    def check(
        self, thumbnail: NDArray[np.float32], now: datetime, *, must_analyse: bool = False
    ) -> GateDecision:
        """The decision for a frame grabbed at `now` (nothing is recorded: see `analysed`)."""
        if self._reference is None or self._analysed_at is None:
            return GateDecision(True, "first")
        if must_analyse:
            return GateDecision(True, "must_analyse")
        if self.sensitivity >= 1.0:
            return GateDecision(True, "changed")
        score = change_score(self._reference, thumbnail)
        if score > self.threshold:
            return GateDecision(True, "changed", score)
        if self.relook is not None and now - self._analysed_at >= self.relook:
            return GateDecision(True, "relook", score)
        return GateDecision(False, "unchanged", score)

    def analysed(self, thumbnail: NDArray[np.float32] | None, now: datetime) -> None:
        """A frame was analysed: it is the reference from now on (None keeps the old one)."""
        if thumbnail is not None:
            self._reference = thumbnail
        self._analysed_at = now
