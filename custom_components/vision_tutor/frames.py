"""Frame preparation and the change gate. Pure (Pillow + numpy), run in the executor.

Cameras hand over JPEGs of any size (or, broken ones, something else). Before the student sees
a frame it is decoded once, checked, scaled to the configured width and re-encoded, and a tiny
greyscale thumbnail is kept so the next frame can be compared cheaply: an unchanged scene is
not sent to the model again.
"""

from __future__ import annotations

from dataclasses import dataclass
import io
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

MAX_FRAME_BYTES: Final = 25 * 1024 * 1024
"""Bigger payloads are refused before decoding (a 4K JPEG is rarely over 3 MB)."""
MAX_FRAME_PIXELS: Final = 60_000_000
"""Decompression-bomb guard: about 8K x 7K."""
THUMB_SIZE: Final = (32, 18)
JPEG_QUALITY: Final = 85


class BadFrame(ValueError):
    """The camera returned something that is not a usable image."""


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """A frame ready for the student."""

    jpeg: bytes
    width: int
    height: int
    thumbnail: NDArray[np.float32]
    """Greyscale, 0..1, THUMB_SIZE: what the change gate compares."""


def prepare_frame(raw: bytes, width: int) -> PreparedFrame:
    """Decode, validate and scale a camera frame to at most `width` pixels wide."""
    if not raw:
        raise BadFrame("the camera returned an empty image")
    if len(raw) > MAX_FRAME_BYTES:
        raise BadFrame(f"the camera image is {len(raw) / 1e6:.0f} MB, over the 25 MB limit")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.width * image.height > MAX_FRAME_PIXELS:
                raise BadFrame(f"the camera image is {image.width}x{image.height}, too large")
            image.draft("RGB", (width, width))  # lets JPEG decode at a reduced size: fast
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise BadFrame(f"the camera returned something that is not an image ({err})") from err
    if rgb.width > width:
        rgb = rgb.resize(
            (width, max(1, round(rgb.height * width / rgb.width))), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY)
    thumbnail = np.asarray(
        rgb.convert("L").resize(THUMB_SIZE, Image.Resampling.BILINEAR), np.float32
    )
    return PreparedFrame(out.getvalue(), rgb.width, rgb.height, thumbnail / 255.0)


def change_threshold(sensitivity: float) -> float:
    """Mean brightness difference that counts as a change: sensitivity 1 sees every frame."""
    return (1.0 - min(max(sensitivity, 0.0), 1.0)) * 0.1


def frame_changed(
    previous: NDArray[np.float32] | None, current: NDArray[np.float32], sensitivity: float
) -> bool:
    """Whether the scene changed enough since the last analysed frame to analyse again."""
    if previous is None or previous.shape != current.shape:
        return True
    difference = float(np.mean(np.abs(current - previous)))
    return difference > change_threshold(sensitivity) or sensitivity >= 1.0
