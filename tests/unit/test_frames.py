"""Frame preparation: the target box, the gate's thumbnail, bad input, and the image limiter."""

from __future__ import annotations

import asyncio
import io

from PIL import Image
import pytest

from benchmarks.photo_frames import Room
from custom_components.vision_tutor.frames import (
    THUMB_WIDTH,
    BadFrame,
    ImageLimiter,
    decode_thumbnail,
    default_image_workers,
    prepare_frame,
    target_size,
)


def _jpeg(width: int, height: int) -> bytes:
    return Room(width, height, seed=2).frame()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (768, 432)),
        ((3840, 2160), (768, 432)),
        ((640, 480), (640, 480)),  # never upscaled
        ((1080, 1920), (768, 1365)),  # portrait: the width is the limit
    ],
)
def test_frames_are_scaled_to_the_width_keeping_the_aspect_ratio(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert target_size(*size, 768) == expected
    frame = prepare_frame(_jpeg(*size), 768)
    assert (frame.width, frame.height) == expected
    with Image.open(io.BytesIO(frame.jpeg)) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", expected, "RGB")


def test_a_png_camera_is_prepared_too() -> None:
    out = io.BytesIO()
    Image.new("RGB", (1280, 720), (40, 90, 160)).save(out, "PNG")
    frame = prepare_frame(out.getvalue(), 768)
    assert (frame.width, frame.height) == (768, 432)
    assert decode_thumbnail(out.getvalue()).shape == (90, THUMB_WIDTH)


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (640, 480)])
def test_the_thumbnail_is_greyscale_and_the_same_width_whatever_the_camera(
    size: tuple[int, int],
) -> None:
    thumbnail = decode_thumbnail(_jpeg(*size))
    assert thumbnail.shape == (round(THUMB_WIDTH * size[1] / size[0]), THUMB_WIDTH)
    assert 0.0 <= float(thumbnail.min()) <= float(thumbnail.max()) <= 1.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"<html>502 Bad Gateway</html>", "not an image"),
        (_jpeg(320, 180)[:400], "not an image"),  # cut off mid-transfer
    ],
)
def test_what_is_not_an_image_is_a_bad_frame(raw: bytes, message: str) -> None:
    for decode in (decode_thumbnail, lambda data: prepare_frame(data, 768)):
        with pytest.raises(BadFrame, match=message):
            decode(raw)


def test_image_workers_are_the_cores_but_at_most_two() -> None:
    assert [default_image_workers(cores) for cores in (1, 2, 4, 16)] == [1, 2, 2, 2]
    assert 1 <= default_image_workers() <= 2
    with pytest.raises(ValueError, match="at least one"):
        ImageLimiter(0)


async def test_the_limiter_never_runs_more_jobs_than_it_has_workers() -> None:
    limiter = ImageLimiter(2)
    release = asyncio.Event()
    started: list[int] = []

    async def job(number: int) -> int:
        async with limiter:
            started.append(number)
            await release.wait()
            return number

    tasks = [asyncio.create_task(job(n)) for n in range(6)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert (len(started), limiter.in_use, limiter.waiting) == (2, 2, 4)

    release.set()
    assert await asyncio.gather(*tasks) == list(range(6))
    assert (limiter.peak, limiter.in_use, limiter.waiting) == (2, 0, 0)


async def test_a_failed_job_frees_its_slot() -> None:
    limiter = ImageLimiter(1)
    with pytest.raises(BadFrame):
        async with limiter:
            decode_thumbnail(b"")
    async with limiter:
        assert limiter.in_use == 1
    assert limiter.in_use == 0
