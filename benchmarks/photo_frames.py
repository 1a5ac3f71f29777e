"""Photo-like camera frames, generated: texture, lighting, sensor noise, JPEG at quality 82.

The frame benchmark and the gate tests need frames that cost what real camera frames cost to
decode (a flat synthetic picture compresses to almost nothing and decodes far faster than a
photo) and that change the way real frames change from one grab to the next. No image is
committed; everything here is drawn from a seed:

* **A room** (`Room`): an illumination gradient, a few large surfaces (walls, floor, furniture)
  in muted colours, multi-scale value noise for texture, and fine grain. Fixed per seed.
* **A grab** (`Room.frame`): the room plus fresh sensor noise every time, optionally with a
  global flicker (mains lighting, auto-exposure), rolling-shutter banding, and a person-like
  figure (head and body, clothes with their own texture) covering a given share of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
import io
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

JPEG_QUALITY: Final = 82
SENSOR_NOISE: Final = 5.0
"""Standard deviation of the per-pixel sensor noise, in 8-bit levels."""
RESOLUTIONS: Final = {"1080p": (1920, 1080), "4k": (3840, 2160)}
PERSON_POSITIONS: Final = 8
"""Where a person can stand: evenly along the floor, left to right, near and far."""

type Rgb = NDArray[np.float32]


def _value_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> Rgb:
    """Smooth noise in 0..1: a `cells`-wide random grid scaled up bicubically."""
    rows = max(2, round(cells * height / width))
    grid = (rng.random((rows, cells)) * 255).astype(np.uint8)
    image = Image.fromarray(grid, "L").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, np.float32) / 255.0


@dataclass(frozen=True, slots=True)
class Person:
    """A standing figure: `share` of the frame's area, at one of PERSON_POSITIONS."""

    share: float
    position: int


class Room:
    """One camera's view: fixed texture and lighting; every `frame` is a new grab of it."""

    def __init__(self, width: int, height: int, seed: int) -> None:
        self.width, self.height, self.seed = width, height, seed
        rng = np.random.default_rng(seed)
        y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        light = 0.55 + 0.35 * (1 - y) * (0.6 + 0.4 * np.cos((x - rng.random()) * np.pi))
        base = np.empty((height, width, 3), np.float32)
        base[:] = rng.uniform(0.35, 0.75, 3)  # back wall
        floor = int(height * rng.uniform(0.55, 0.7))
        base[floor:] = rng.uniform(0.2, 0.5, 3)
        for _ in range(6):  # furniture, doors, pictures
            w, h = int(width * rng.uniform(0.06, 0.3)), int(height * rng.uniform(0.08, 0.45))
            left, top = int(rng.uniform(0, width - w)), int(rng.uniform(0, height - h))
            base[top : top + h, left : left + w] = rng.uniform(0.1, 0.9, 3)
        texture = (
            0.5 * _value_noise(rng, width, height, 8)
            + 0.3 * _value_noise(rng, width, height, 40)
            + 0.2 * _value_noise(rng, width, height, 240)
        )
        grain = rng.normal(0.0, 0.04, (height, width)).astype(np.float32)
        shade = (light * (0.75 + 0.5 * texture) + grain)[..., None]
        self._base: Rgb = np.clip(base * shade * 255.0, 0, 255).astype(np.float32)
        self._floor = floor
        self._noise = np.random.default_rng(seed + 1)

    def person_box(self, person: Person) -> tuple[int, int, int, int]:
        """(left, top, width, height) of the figure, 2.6 times as tall as it is wide."""
        area = person.share * self.width * self.height
        w = max(2, round((area / 2.6) ** 0.5))
        h = min(self.height, max(4, round(w * 2.6)))
        w = min(self.width, max(w, round(area / h)))
        slot = person.position % PERSON_POSITIONS
        centre = (slot + 0.5) / PERSON_POSITIONS
        left = int(np.clip(centre * self.width - w / 2, 0, self.width - w))
        feet = self._floor + (self.height - self._floor) * (0.25 if slot % 2 else 0.8)
        top = int(np.clip(feet - h, 0, self.height - h))
        return left, top, w, h

    def _draw_person(self, image: Rgb, person: Person) -> None:
        left, top, w, h = self.person_box(person)
        rng = np.random.default_rng(self.seed * 1000 + person.position)
        clothes = rng.uniform(0.05, 0.95, 3) * 255
        skin = np.array([200.0, 160.0, 130.0]) * rng.uniform(0.5, 1.0)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        head_r = w * 0.28
        head = (xx - w / 2) ** 2 + (yy - head_r) ** 2 <= head_r**2
        body = (yy > head_r * 1.9) & (np.abs(xx - w / 2) <= w / 2 * (0.6 + 0.4 * (yy < h * 0.55)))
        folds = 0.8 + 0.4 * _value_noise(rng, w, h, max(2, w // 6))
        region = image[top : top + h, left : left + w]
        region[body] = (clothes * folds[..., None])[body]
        region[head] = skin

    def frame(
        self,
        *,
        flicker: float = 0.0,
        banding: float = 0.0,
        person: Person | None = None,
    ) -> bytes:
        """A JPEG grab: fresh sensor noise; `flicker` scales the brightness (0.05 = +5 %),
        `banding` is the depth of rolling-shutter bands (0.04 = ±4 %)."""
        image = self._base.copy()
        if person is not None:
            self._draw_person(image, person)
        gain = np.float32(1.0 + flicker)
        if banding:
            phase = self._noise.random() * 2 * np.pi
            rows = np.arange(self.height, dtype=np.float32)
            bands = 1.0 + banding * np.sin(rows * (2 * np.pi / (self.height / 7.3)) + phase)
            image *= (gain * bands.astype(np.float32))[:, None, None]
        elif flicker:
            image *= gain
        image += self._noise.standard_normal(image.shape, np.float32) * np.float32(SENSOR_NOISE)
        out = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").save(
            out, "JPEG", quality=JPEG_QUALITY
        )
        return out.getvalue()
