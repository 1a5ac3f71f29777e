"""Reading a JPEG's header: is it one, and how large is the picture?

A frame is checked before it is accepted (stored, queued, sent to the teacher): the markers up to
the frame header must be well formed and the dimensions within `MAX_SIDE`. Only the header is
read, with no image library: decoding the whole picture is the teacher's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_SIDE: Final = 8192
"""Widest and tallest frame accepted (8K video is 7680 x 4320)."""
MAX_PIXELS: Final = 40_000_000

_SOI: Final = b"\xff\xd8"
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length (TEM, RSTn)."""
_FRAME_HEADERS: Final = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
"""SOFn: baseline, extended, progressive, lossless and their arithmetic-coded variants."""
_SOS: Final = 0xDA
_EOI: Final = 0xD9


class NotAJpeg(ValueError):
    """The bytes are not a JPEG this service accepts; the message says why."""


@dataclass(frozen=True, slots=True)
class JpegSize:
    width: int
    height: int


def jpeg_size(data: bytes) -> JpegSize:
    """The picture's size from its frame header; NotAJpeg when it cannot be read or is too big."""
    if not data.startswith(_SOI):
        raise NotAJpeg("not a JPEG")
    position = 2
    while True:
        # Markers may be padded with any number of 0xFF bytes.
        if position >= len(data) or data[position] != 0xFF:
            raise NotAJpeg("not a JPEG: a marker is missing or the file is cut short")
        while position < len(data) and data[position] == 0xFF:
            position += 1
        if position >= len(data):
            raise NotAJpeg("not a JPEG: the file is cut short")
        marker = data[position]
        position += 1
        if marker in _STANDALONE:
            continue
        if marker in (_SOS, _EOI):
            raise NotAJpeg("not a JPEG: no frame header before the image data")
        if position + 2 > len(data):
            raise NotAJpeg("not a JPEG: the file is cut short")
        length = int.from_bytes(data[position : position + 2])
        if length < 2 or position + length > len(data):
            raise NotAJpeg("not a JPEG: a segment runs past the end of the file")
        if marker in _FRAME_HEADERS:
            if length < 8:
                raise NotAJpeg("not a JPEG: the frame header is too short")
            height = int.from_bytes(data[position + 3 : position + 5])
            width = int.from_bytes(data[position + 5 : position + 7])
            return _checked(JpegSize(width, height))
        position += length


def _checked(size: JpegSize) -> JpegSize:
    if size.width == 0 or size.height == 0:
        raise NotAJpeg(f"the JPEG's dimensions are {size.width} x {size.height}")
    if max(size.width, size.height) > MAX_SIDE or size.width * size.height > MAX_PIXELS:
        raise NotAJpeg(
            f"the JPEG is {size.width} x {size.height} pixels; at most {MAX_SIDE} pixels a side "
            f"and {MAX_PIXELS:,} in all are accepted"
        )
    return size
