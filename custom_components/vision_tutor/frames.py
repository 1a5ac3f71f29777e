"""Frame decoding: the gate's thumbnail and the student's frame. Pure (Pillow + numpy).

Cameras hand over JPEGs of any size (or, broken ones, something else). Every grabbed frame is
first decoded the cheapest way there is, greyscale at an eighth of its size (JPEG decoders scale
by 1/2, 1/4 or 1/8 while decoding), into the thumbnail the change gate compares. Only a frame
the gate lets through (or one that must be analysed anyway) is decoded again for the student:
at the smallest scale that still covers the configured width, then resized and re-encoded.

Both run in Home Assistant's executor, never more at a time than the `ImageLimiter` allows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import io
import os
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

MAX_FRAME_BYTES: Final = 25 * 1024 * 1024
"""Bigger payloads are refused before decoding (a 4K JPEG is rarely over 3 MB)."""
MAX_FRAME_PIXELS: Final = 60_000_000
"""Decompression-bomb guard: about 8K x 7K."""
THUMB_WIDTH: Final = 160
"""Width of the gate's thumbnail (160 x 90 for 16:9): cells of the gate's grid are 10 x 10."""
THUMB_DECODE_SCALE: Final = 8
"""The thumbnail is decoded at 1/8 of the frame's size (JPEG's cheapest scaled decode)."""
JPEG_QUALITY: Final = 85

type Thumbnail = NDArray[np.float32]
"""Greyscale, 0..1, THUMB_WIDTH wide: what the change gate compares."""


class BadFrame(ValueError):
    """The camera returned something that is not a usable image."""


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """A frame ready for the student."""

    jpeg: bytes
    width: int
    height: int


def _open(raw: bytes) -> Image.Image:
    """The image, checked for size before anything is decoded; raises BadFrame."""
    if not raw:
        raise BadFrame("the camera returned an empty image")
    if len(raw) > MAX_FRAME_BYTES:
        raise BadFrame(f"the camera image is {len(raw) / 1e6:.0f} MB, over the 25 MB limit")
    try:
        image = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise BadFrame(f"the camera returned something that is not an image ({err})") from err
    if image.width * image.height > MAX_FRAME_PIXELS:
        image.close()
        raise BadFrame(f"the camera image is {image.width}x{image.height}, too large")
    return image


def _decoded(image: Image.Image, mode: str) -> Image.Image:
    try:
        return image.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise BadFrame(f"the camera returned something that is not an image ({err})") from err


def target_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The student's frame size: `max_width` wide at most, aspect ratio kept, never upscaled."""
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def decode_thumbnail(raw: bytes) -> Thumbnail:
    """The gate's thumbnail of a camera frame, from a greyscale 1/8-scale decode."""
    with _open(raw) as image:
        size = (
            max(1, image.width // THUMB_DECODE_SCALE),
            max(1, image.height // THUMB_DECODE_SCALE),
        )
        image.draft("L", size)  # JPEG: luma only, scaled while decoding
        grey = _decoded(image, "L")
    height = max(1, round(grey.height * THUMB_WIDTH / grey.width))
    if grey.size != (THUMB_WIDTH, height):
        grey = grey.resize((THUMB_WIDTH, height), Image.Resampling.BOX)
    return np.asarray(grey, np.float32) / np.float32(255.0)


def prepare_frame(raw: bytes, width: int) -> PreparedFrame:
    """Decode, validate and scale a camera frame to at most `width` pixels wide (JPEG out)."""
    with _open(raw) as image:
        size = target_size(image.width, image.height, width)
        # The real target box: a 16:9 frame drafted to (width, width) would never scale.
        image.draft("RGB", size)
        rgb = _decoded(image, "RGB")
    if rgb.size != size and rgb.width > size[0]:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY)
    return PreparedFrame(out.getvalue(), rgb.width, rgb.height)


def default_image_workers(cores: int | None = None) -> int:
    """Image jobs at a time: the number of cores, at most 2 (Home Assistant's loop needs one)."""
    available = cores if cores is not None else (os.process_cpu_count() or 1)
    return max(1, min(available, 2))


class ImageLimiter:
    """Bounds the image work of every camera together, so it never floods the executor.

    Used as `async with limiter:` around one executor job: entering waits for a free slot.
    `in_use`, `waiting` and `peak` say how busy it is and has been.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("an image limiter needs at least one worker")
        self.workers = workers
        self._semaphore = asyncio.Semaphore(workers)
        self.in_use = 0
        self.waiting = 0
        self.peak = 0
        """The most jobs that ever ran at once (never above `workers`)."""

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_use -= 1
        self._semaphore.release()
