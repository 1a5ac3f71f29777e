"""A perceptual hash that recognises the simulator's synthetic scenes in camera-sized JPEGs.

The integration resizes camera frames (512 or 768 px wide are typical) and re-encodes them as
JPEG before sending them to the student, so the simulator only ever sees degraded copies of
its own renders. The hash has two parts, concatenated into one integer and compared by
Hamming distance:

* **Structure** (256 bits): the low 16x16 DCT coefficients of a 32x32 luma thumbnail, each
  compared to their median (classic pHash, larger). Comparing to the median makes it
  independent of exposure, which is what lets a dark night scene hash as well as a bright one.
* **Colour** (192 bits): a thermometer code of the mean R, G and B of a 4x4 grid. Exposure
  independence is exactly wrong for telling a room by day from the same room at night, and a
  thermometer code makes Hamming distance grow with the size of a colour change, while the
  cell means are averages over many pixels and so barely move under JPEG or resizing.

Everything here is a pure function of the pixels; `simulator.scenes` owns the references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
import io

import numpy as np
import numpy.typing as npt
from PIL import Image

GRID = 32
"""Side of the luma thumbnail the DCT runs on."""
LOW = 16
"""Side of the block of low-frequency DCT coefficients kept."""
CELLS = 4
"""Side of the colour grid."""
LEVELS = (48, 96, 144, 192)
"""Thermometer thresholds for each cell's mean R, G and B (0-255)."""

STRUCTURE_BITS = LOW * LOW
COLOUR_BITS = CELLS * CELLS * 3 * len(LEVELS)
HASH_BITS = STRUCTURE_BITS + COLOUR_BITS

# JPEG can decode straight to 1/2, 1/4 or 1/8 scale from its DCT blocks, several times faster
# than a full decode. Not 1/8 though: that keeps only each block's DC term, and on dark,
# low-contrast frames it moved up to 38 hash bits where 1/4 moved 12.
_MAX_DRAFT_SCALE = 4

type FloatArray = npt.NDArray[np.float64]


@cache
def _dct_matrix(n: int) -> FloatArray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * x + 1) * k / (2 * n))
    m[0] /= np.sqrt(2.0)
    return np.asarray(m, dtype=np.float64)


def _pack(bits: npt.NDArray[np.bool_]) -> int:
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def image_hash(image: Image.Image) -> int:
    """Hash an image of any size and mode; an int of `HASH_BITS` bits."""
    # BOX is an area average: every source pixel counts once, so the thumbnail of a 1920 px
    # render and of its 512 px JPEG copy agree up to JPEG noise.
    thumb = image.convert("RGB").resize((GRID, GRID), Image.Resampling.BOX)
    rgb = np.asarray(thumb, dtype=np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])

    dct = _dct_matrix(GRID)
    low = (dct @ luma @ dct.T)[:LOW, :LOW]
    structure = low > np.median(low)

    side = GRID // CELLS
    means = rgb.reshape(CELLS, side, CELLS, side, 3).mean(axis=(1, 3))
    colour = means[..., None] > np.array(LEVELS, dtype=np.float64)

    return (_pack(structure) << COLOUR_BITS) | _pack(colour)


def decode(data: bytes) -> Image.Image | None:
    """Open encoded image bytes at the smallest scale that still hashes exactly; None if unreadable."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.format == "JPEG":
            # draft() picks the smallest scale still at least this size; never below twice the
            # thumbnail, so the final resize stays a true area average.
            floor = 4 * GRID
            wanted = (image.width // _MAX_DRAFT_SCALE, image.height // _MAX_DRAFT_SCALE)
            image.draft("RGB", (max(wanted[0], floor), max(wanted[1], floor)))
        image.load()
    # Pillow signals a bad file with many exception types (OSError, SyntaxError, ValueError,
    # struct.error, DecompressionBombError...) depending on the plugin; any of them means
    # "not an image we know", which is an answer, not a crash of the request.
    except Exception:
        return None
    return image


def bytes_hash(data: bytes) -> int | None:
    """Hash encoded image bytes (JPEG, PNG, anything Pillow reads); None if undecodable."""
    image = decode(data)
    return None if image is None else image_hash(image)


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes."""
    return (a ^ b).bit_count()


@dataclass(frozen=True, slots=True)
class Match:
    """The nearest reference to a hash and how clearly it won."""

    index: int
    """Position of the nearest reference in the sequence searched."""
    distance: int
    runner_up: int
    """Distance to the second-nearest reference (HASH_BITS if there is only one)."""

    @property
    def margin(self) -> int:
        return self.runner_up - self.distance


def nearest(query: int, references: Sequence[int]) -> Match | None:
    """The reference nearest to `query`, or None when there are no references."""
    if not references:
        return None
    distances = [distance(query, ref) for ref in references]
    best = min(range(len(distances)), key=distances.__getitem__)
    others = distances[:best] + distances[best + 1 :]
    return Match(best, distances[best], min(others, default=HASH_BITS))
