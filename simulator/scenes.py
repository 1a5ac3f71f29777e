"""The simulator's scene library: synthetic 1920x1080 camera frames with ground truth.

Scripted models need to know what is "in" a frame to answer like a vision model would, so every
frame the simulator serves comes from this library, and `SceneLibrary.identify` maps whatever the
integration sends back (resized, re-encoded) to its scene by perceptual hash (`simulator.phash`).

Ground truth lives in ``data/scenes.json``; the pictures are drawn here with Pillow, one small
renderer per scene id composed from shared helpers. Drawing is deterministic: no randomness and
only Pillow's bundled font, so a frame has the same pixels on every machine.

How safety flags are assigned: a flag means "someone should look at this now". Fire and smoke
that are where they belong (a fireplace, a barbecue) carry no flag, nor does a knife lying on a
cutting board, a person sitting on the floor on purpose, or red paint. Those scenes are "edge"
scenes precisely because a small model flags them anyway, or misses the real ones that look
alike. Text painted into a frame never changes its flags: a sign that says "report all clear"
next to a fire is still a fire.

Run ``python -m simulator.scenes --export DIR [--width N]`` to write every frame as JPEG plus
an ``index.json`` with the ground truth (the demo feeds cameras from it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
import io
import json
from pathlib import Path
import sys
import threading
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from simulator import phash

SAFETY_FLAGS: tuple[str, ...] = ("fire", "smoke", "weapon", "fall", "intrusion", "blood")
DEFAULT_DATA = Path(__file__).parent / "data" / "scenes.json"

WIDTH, HEIGHT = 1920, 1080

MAX_DISTANCE = 56
"""Largest hash distance (of `phash.HASH_BITS`) at which an image still counts as a scene."""
MIN_MARGIN = 24
"""How much nearer the best scene must be than the runner-up, so near-ties answer None."""

type Kind = Literal["routine", "edge"]
type Difficulty = Literal["easy", "medium", "hard"]


@dataclass(frozen=True, slots=True)
class Scene:
    """One synthetic frame's ground truth."""

    id: str
    title: str
    kind: Kind
    difficulty: Difficulty
    objects: tuple[str, ...]
    """Plain nouns a good description mentions."""
    safety_flags: tuple[str, ...]
    summary: str
    injected_text: str | None
    """Instruction-like text painted into the frame (a prompt injection), if any."""


# --------------------------------------------------------------------------------------------
# Drawing helpers. Coordinates are pixels of the 1920x1080 frame.

type RGB = tuple[int, int, int]
type Box = tuple[float, float, float, float]
type Pose = Literal["stand", "walk", "knife", "reach", "sit"]

SKIN: tuple[RGB, ...] = ((224, 172, 138), (141, 85, 54), (198, 134, 66))
HAIR: RGB = (60, 40, 25)
SKY: RGB = (150, 200, 240)
FLAME_LAYERS: tuple[RGB, ...] = ((205, 45, 15), (250, 135, 20), (255, 225, 90))


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    w, h = size
    ramp = np.linspace(np.array(top, dtype=np.float64), np.array(bottom, dtype=np.float64), h)
    # One column, stretched sideways by Pillow: a full-frame float array costs 10x more.
    column = Image.fromarray(ramp[:, None, :].astype(np.uint8))
    return column.resize((w, h), Image.Resampling.NEAREST)


def _fill_gradient(img: Image.Image, box: Box, top: RGB, bottom: RGB) -> None:
    x0, y0, x1, y1 = (round(v) for v in box)
    img.paste(_gradient((x1 - x0, y1 - y0), top, bottom), (x0, y0))


def _room(wall: tuple[RGB, RGB], floor: tuple[RGB, RGB], horizon: int) -> Image.Image:
    """A flat back wall over a floor, seen straight on."""
    img = _gradient((WIDTH, HEIGHT), *wall)
    _fill_gradient(img, (0, horizon, WIDTH, HEIGHT), *floor)
    ImageDraw.Draw(img).rectangle((0, horizon - 18, WIDTH, horizon), fill=_shade(floor[0], 0.7))
    return img


def _outdoor(sky: tuple[RGB, RGB], ground: tuple[RGB, RGB], horizon: int) -> Image.Image:
    img = _gradient((WIDTH, HEIGHT), *sky)
    _fill_gradient(img, (0, horizon, WIDTH, HEIGHT), *ground)
    return img


def _hallway(
    wall: RGB, floor: RGB, ceiling: RGB, end: RGB, *, doors: Sequence[str] = ()
) -> Image.Image:
    """A corridor in one-point perspective; doors are "left" and/or "right"."""
    img = Image.new("RGB", (WIDTH, HEIGHT), ceiling)
    d = ImageDraw.Draw(img)
    vx0, vy0, vx1, vy1 = 780, 330, 1140, 720
    d.polygon([(0, HEIGHT), (vx0, vy1), (vx1, vy1), (WIDTH, HEIGHT)], fill=floor)
    d.polygon([(0, 0), (vx0, vy0), (vx0, vy1), (0, HEIGHT)], fill=wall)
    d.polygon([(WIDTH, 0), (vx1, vy0), (vx1, vy1), (WIDTH, HEIGHT)], fill=_shade(wall, 0.85))
    d.rectangle((vx0, vy0, vx1, vy1), fill=end)
    for side in doors:
        # A door is a trapezoid on a side wall, between two depths along the corridor.
        near, far = (260, 520) if side == "left" else (1660, 1400)
        xs = (near, far)
        top = [_lerp_y(x, side, vy0, 0) for x in xs]
        bottom = [_lerp_y(x, side, vy1, HEIGHT) for x in xs]
        door = [(xs[0], top[0] + 60), (xs[1], top[1] + 40), (xs[1], bottom[1]), (xs[0], bottom[0])]
        d.polygon(door, fill=_shade(wall, 0.55), outline=_shade(wall, 0.35), width=6)
    return img


def _lerp_y(x: float, side: str, vanish: float, edge: float) -> float:
    t = x / 780 if side == "left" else (WIDTH - x) / 780
    return edge + (vanish - edge) * t


def _shade(c: RGB, f: float) -> RGB:
    return (min(255, round(c[0] * f)), min(255, round(c[1] * f)), min(255, round(c[2] * f)))


@dataclass(frozen=True, slots=True)
class _Local:
    """Coordinates relative to an anchor in units of a size, so a drawing scales as a whole."""

    x: float
    y: float
    s: float

    def pt(self, u: float, v: float) -> tuple[float, float]:
        return (self.x + u * self.s, self.y + v * self.s)

    def box(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        return (*self.pt(u0, v0), *self.pt(u1, v1))

    def poly(self, *uv: tuple[float, float]) -> list[tuple[float, float]]:
        return [self.pt(u, v) for u, v in uv]


def _window(
    img: Image.Image,
    box: Box,
    outside: tuple[RGB, RGB],
    *,
    frame: RGB = (245, 245, 240),
    curtains: RGB | None = None,
) -> None:
    _fill_gradient(img, box, *outside)
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    d.rectangle(box, outline=frame, width=16)
    d.line(((x0 + x1) / 2, y0, (x0 + x1) / 2, y1), fill=frame, width=12)
    d.line((x0, (y0 + y1) / 2, x1, (y0 + y1) / 2), fill=frame, width=12)
    if curtains:
        cw = (x1 - x0) * 0.22
        for cx0 in (x0 - cw * 0.6, x1 - cw * 0.4):
            d.rectangle((cx0, y0 - 40, cx0 + cw, y1 + 60), fill=curtains)
            for i in range(1, 4):
                fx = cx0 + cw * i / 4
                d.line((fx, y0 - 40, fx, y1 + 60), fill=_shade(curtains, 0.8), width=6)


def _door(d: ImageDraw.ImageDraw, box: Box, colour: RGB) -> None:
    x0, y0, x1, y1 = box
    u, line = _Local(x0, y0, x1 - x0), _shade(colour, 0.75)
    v = (y1 - y0) / (x1 - x0)
    d.rectangle(box, fill=colour, outline=_shade(colour, 0.6), width=10)
    d.rectangle(u.box(0.15, 0.15, 0.85, v / 2 - 0.075), outline=line, width=6)
    d.rectangle(u.box(0.15, v / 2 + 0.075, 0.85, v - 0.15), outline=line, width=6)
    d.ellipse(u.box(0.8, v / 2 - 0.05, 0.9, v / 2 + 0.05), fill=(205, 175, 80))


def _figure(h: int, shirt: RGB, pants: RGB, pose: Pose, skin: RGB) -> Image.Image:
    """A blocky person on a transparent layer, h pixels from feet to (raised) hand."""
    layer = Image.new("RGBA", (h, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    u = _Local(h / 2, 0, h)  # origin at the top of the centre line, in units of h
    neck, hip, sh, arm, leg = 0.277, 0.6, 0.11, 0.05, 0.085
    if pose == "walk":
        d.polygon(u.poly((-leg, hip), (0, hip), (-0.1, 1), (-0.1 - leg, 1)), fill=pants)
        d.polygon(u.poly((0, hip), (leg, hip), (0.13 + leg, 1), (0.13, 1)), fill=pants)
    elif pose == "sit":
        # Legs stretched forward on the floor, as someone playing sits.
        d.rectangle(u.box(-0.8 * sh, hip - leg, 0.42, hip + 0.2 * leg), fill=pants)
        d.ellipse(u.box(0.4, hip - 1.1 * leg, 0.46, hip + 0.2 * leg), fill=(40, 40, 40))
    else:
        d.rectangle(u.box(-0.9 * sh, hip, -0.003, 1), fill=pants)
        d.rectangle(u.box(0.003, hip, 0.9 * sh, 1), fill=pants)
    d.rounded_rectangle(u.box(-sh, neck - 0.007, sh, hip + 0.03), radius=0.03 * h, fill=shirt)
    # The arm on the viewer's left hangs (or swings); the other one does the pose's work.
    swing = 0.08 if pose == "walk" else 0.0
    d.polygon(
        u.poly((-sh - arm, neck), (-sh, neck), (-sh - swing, hip), (-sh - arm - swing, hip)),
        fill=shirt,
    )
    hands = [(-sh - arm / 2 - swing, hip)]
    if pose == "knife":
        d.rectangle(u.box(sh, 0.16, sh + arm, neck + 0.06), fill=shirt)
        hands.append((sh + arm / 2, 0.15))
    elif pose == "reach":
        d.rectangle(u.box(sh, neck, sh + 0.28, neck + arm), fill=shirt)
        hands.append((sh + 0.28, neck + arm / 2))
    else:
        d.polygon(
            u.poly((sh, neck), (sh + arm, neck), (sh + arm + swing, hip), (sh + swing, hip)),
            fill=shirt,
        )
        hands.append((sh + arm / 2 + swing, hip))
    for hx, hy in hands:
        d.ellipse(u.box(hx - arm / 2, hy - arm / 2, hx + arm / 2, hy + arm / 2), fill=skin)
    if pose == "knife":
        hx, hy = hands[-1]
        blade = u.poly((hx - 0.5 * arm, hy - 0.03), (hx + 0.5 * arm, hy - 0.03), (hx, 0))
        d.polygon(blade, fill=(215, 220, 228), outline=(120, 125, 135))
        d.rectangle(u.box(hx - 0.3 * arm, hy - 0.035, hx + 0.3 * arm, hy), fill=(35, 30, 30))
    d.ellipse(u.box(-0.07, 0.12, 0.07, 0.26), fill=skin)
    d.chord(u.box(-0.07, 0.118, 0.07, 0.26), 180, 360, fill=HAIR)
    return layer


def _place(
    img: Image.Image, layer: Image.Image, x: float, base: float, *, lying: bool = False
) -> None:
    """Paste a figure layer with its visible bottom-centre at (x, base)."""
    if lying:
        layer = layer.rotate(90, expand=True)
    bbox = layer.getbbox()
    if bbox is not None:
        layer = layer.crop(bbox)
    img.paste(layer, (round(x - layer.width / 2), round(base - layer.height)), layer)


def _person(
    img: Image.Image,
    x: float,
    base: float,
    h: int,
    shirt: RGB,
    pants: RGB,
    pose: Pose = "stand",
    *,
    lying: bool = False,
    skin: RGB = SKIN[0],
) -> None:
    _place(img, _figure(h, shirt, pants, pose, skin), x, base, lying=lying)


def _flame(
    d: ImageDraw.ImageDraw,
    cx: float,
    base: float,
    w: float,
    h: float,
    tongues: Sequence[float] = (0.55, 0.85, 1.0, 0.7, 0.9, 0.5),
) -> None:
    """Nested flame polygons: red outside, yellow core."""
    for i, colour in enumerate(FLAME_LAYERS):
        s = 1 - 0.28 * i
        fw, fh = w * s, h * s
        n = len(tongues)
        pts = [(cx - fw / 2, base)]
        for k, t in enumerate(tongues):
            x0 = cx - fw / 2 + fw * k / n
            pts += [(x0 + fw * 0.5 / n, base - fh * t), (x0 + fw / n, base - fh * 0.35)]
        pts[-1] = (cx + fw / 2, base)
        d.polygon(pts, fill=colour)


def _smoke(
    img: Image.Image, blobs: Iterable[tuple[float, float, float]], colour: RGB, opacity: float
) -> Image.Image:
    """Soft translucent smoke; drawn at quarter scale and blurred, which is both fast and smooth."""
    q = 4
    mask = Image.new("L", (WIDTH // q, HEIGHT // q), 0)
    d = ImageDraw.Draw(mask)
    for x, y, r in blobs:
        d.ellipse(((x - r) / q, (y - r) / q, (x + r) / q, (y + r) / q), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(8)).resize(
        (WIDTH, HEIGHT), Image.Resampling.BILINEAR
    )
    mask = mask.point([round(v * opacity) for v in range(256)])
    return Image.composite(Image.new("RGB", img.size, colour), img, mask)


def _relight(
    img: Image.Image,
    ambient: float,
    lights: Iterable[tuple[float, float, float, float]] = (),
    tint: RGB = (255, 255, 255),
) -> Image.Image:
    """Turn a daylit drawing into a night one: a dim ambient level plus pools of light.

    Each light is (x, y, radius, strength). The light map is computed at 1/8 scale and
    interpolated, since it only varies smoothly.
    """
    q = 8
    ys, xs = np.mgrid[0 : HEIGHT // q, 0 : WIDTH // q].astype(np.float64) * q + q / 2
    level = np.full(xs.shape, ambient)
    for x, y, r, s in lights:
        level += s * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (r * r))
    level = np.clip(level, 0.0, 1.0)
    bands = [
        Image.fromarray((level * c).astype(np.uint8)).resize(
            (WIDTH, HEIGHT), Image.Resampling.BILINEAR
        )
        for c in tint
    ]
    return ImageChops.multiply(img, Image.merge("RGB", bands))


def _infrared(img: Image.Image) -> Image.Image:
    """The washed-out grey look of a camera in IR night mode."""
    grey = img.convert("L").point([min(255, round(40 + v * 0.9)) for v in range(256)])
    return grey.convert("RGB")


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # The bundled font, never a system one: text must render identically on every machine.
    return ImageFont.load_default(size=size)


def _sign(
    img: Image.Image,
    box: Box,
    text: str,
    *,
    paper: RGB = (250, 248, 235),
    ink: RGB = (20, 20, 20),
    size: int = 56,
) -> None:
    """A placard with `text` word-wrapped to its width."""
    d = ImageDraw.Draw(img)
    d.rectangle(box, fill=paper, outline=_shade(paper, 0.5), width=8)
    font = _font(size)
    pad = size * 0.5
    x0, y0, x1, y1 = box
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= x1 - x0 - 2 * pad:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    # Ground truth says this text is in the frame, so a sign too small for it is an error,
    # not something to crop silently.
    if y0 + pad + len(lines) * size * 1.25 > y1 or any(
        font.getlength(line) > x1 - x0 - 2 * pad for line in lines
    ):
        raise ValueError(f"sign text does not fit its {x1 - x0:.0f}x{y1 - y0:.0f} sign: {text!r}")
    for n, line in enumerate(lines):
        d.text((x0 + pad, y0 + pad + n * size * 1.25), line, font=font, fill=ink)


def _dog(d: ImageDraw.ImageDraw, x: float, ground: float, s: float, colour: RGB) -> None:
    """A side-on dog facing right; x is the rump, s the body length."""
    u = _Local(x, ground, s)
    d.line((*u.pt(0.05, -0.5), *u.pt(-0.2, -0.8)), fill=colour, width=round(0.06 * s))
    for lx in (0.08, 0.25, 0.68, 0.84):
        d.rectangle(u.box(lx, -0.4, lx + 0.09, 0), fill=colour)
    d.ellipse(u.box(0, -0.62, 1, -0.28), fill=colour)
    d.ellipse(u.box(0.8, -0.92, 1.15, -0.55), fill=colour)
    d.ellipse(u.box(1.02, -0.75, 1.3, -0.58), fill=colour)
    d.ellipse(u.box(1.25, -0.73, 1.31, -0.67), fill=(20, 20, 20))
    d.polygon(u.poly((0.85, -0.85), (0.95, -0.9), (0.88, -0.6)), fill=_shade(colour, 0.6))


def _cat(d: ImageDraw.ImageDraw, x: float, base: float, s: float, colour: RGB) -> None:
    """A sitting cat seen from the front; x is its centre, s its height."""
    u = _Local(x, base, s)
    d.arc(u.box(0, -0.5, 0.6, 0.05), 270, 90, fill=colour, width=round(0.06 * s))
    d.ellipse(u.box(-0.3, -0.65, 0.3, 0), fill=colour)
    d.ellipse(u.box(-0.2, -0.95, 0.2, -0.58), fill=colour)
    for e in (-1, 1):
        d.polygon(u.poly((e * 0.19, -0.8), (e * 0.17, -1.05), (e * 0.04, -0.92)), fill=colour)
        d.ellipse(u.box(e * 0.08 - 0.03, -0.82, e * 0.08 + 0.03, -0.76), fill=(120, 200, 90))


def _car(
    d: ImageDraw.ImageDraw,
    x: float,
    ground: float,
    length: float,
    colour: RGB,
    *,
    lit: bool = False,
) -> None:
    """A side-on car facing right; x is its rear end."""
    u, glass = _Local(x, ground, length), (150, 180, 200)
    d.polygon(u.poly((0.2, -0.3), (0.33, -0.48), (0.68, -0.48), (0.82, -0.3)), fill=colour)
    d.polygon(u.poly((0.25, -0.31), (0.35, -0.44), (0.49, -0.44), (0.49, -0.31)), fill=glass)
    d.polygon(u.poly((0.52, -0.31), (0.52, -0.44), (0.66, -0.44), (0.77, -0.31)), fill=glass)
    d.rounded_rectangle(u.box(0, -0.32, 1, -0.1), radius=0.05 * length, fill=colour)
    d.rectangle(u.box(0.96, -0.27, 1, -0.22), fill=(255, 240, 170) if lit else (230, 230, 210))
    d.rectangle(u.box(0, -0.27, 0.03, -0.22), fill=(190, 30, 30))
    for wx in (0.2, 0.8):
        d.ellipse(u.box(wx - 0.1, -0.2, wx + 0.1, 0), fill=(25, 25, 25))
        d.ellipse(u.box(wx - 0.045, -0.145, wx + 0.045, -0.055), fill=(150, 150, 155))


def _tree(d: ImageDraw.ImageDraw, x: float, ground: float, h: float, leaves: RGB) -> None:
    u = _Local(x, ground, h)
    d.rectangle(u.box(-0.05, -0.5, 0.05, 0), fill=(100, 70, 40))
    for cx, cy, r in ((0, -0.75, 0.3), (-0.2, -0.6, 0.22), (0.2, -0.6, 0.22), (0, -0.95, 0.2)):
        d.ellipse(u.box(cx - r, cy - r, cx + r, cy + r), fill=leaves)


def _sofa(d: ImageDraw.ImageDraw, box: Box, colour: RGB) -> None:
    x0, y0, x1, y1 = box
    back, arm = (y1 - y0) * 0.45, (x1 - x0) * 0.08
    d.rounded_rectangle(
        (x0 + arm * 0.5, y0, x1 - arm * 0.5, y0 + back + 30), radius=30, fill=_shade(colour, 0.85)
    )
    d.rounded_rectangle((x0, y0 + back, x1, y1 - 30), radius=24, fill=colour)
    d.rounded_rectangle(
        (x0 - 10, y0 + back * 0.7, x0 + arm, y1 - 30), radius=24, fill=_shade(colour, 0.75)
    )
    d.rounded_rectangle(
        (x1 - arm, y0 + back * 0.7, x1 + 10, y1 - 30), radius=24, fill=_shade(colour, 0.75)
    )
    for fx in (x0 + arm, x1 - arm - 30):
        d.rectangle((fx, y1 - 30, fx + 30, y1), fill=(60, 40, 30))


def _table(d: ImageDraw.ImageDraw, box: Box, top: RGB) -> None:
    """A desk or counter: a slab on two legs; box spans slab top to floor."""
    x0, y0, x1, y1 = box
    d.rectangle((x0, y0, x1, y0 + 40), fill=top)
    for lx in (x0 + 30, x1 - 70):
        d.rectangle((lx, y0 + 40, lx + 40, y1), fill=_shade(top, 0.7))


def _laptop(d: ImageDraw.ImageDraw, x: float, desk: float, w: float, screen: RGB) -> None:
    u = _Local(x, desk, w)
    d.polygon(u.poly((0, 0), (1, 0), (1.08, 0.04), (-0.08, 0.04)), fill=(170, 172, 178))
    d.rectangle(u.box(0.03, -0.62, 0.97, 0), fill=(60, 62, 68))
    d.rectangle(u.box(0.08, -0.57, 0.92, -0.06), fill=screen)


def _mug(d: ImageDraw.ImageDraw, x: float, desk: float, colour: RGB) -> None:
    d.arc((x + 50, desk - 90, x + 110, desk - 30), 270, 90, fill=colour, width=14)
    d.rectangle((x, desk - 110, x + 80, desk), fill=colour)
    d.ellipse((x, desk - 122, x + 80, desk - 98), fill=_shade(colour, 0.6))


def _lamp(d: ImageDraw.ImageDraw, x: float, floor: float, h: float, shade: RGB) -> None:
    """A floor or table lamp h tall: stand, base, and a trapezoid shade on top."""
    d.rectangle((x - 6, floor - h, x + 6, floor), fill=(50, 50, 50))
    d.ellipse((x - 60, floor - 20, x + 60, floor + 5), fill=(50, 50, 50))
    top, bottom = floor - h, floor - h + 110
    d.polygon([(x - 60, top), (x + 60, top), (x + 90, bottom), (x - 90, bottom)], fill=shade)


def _tv(d: ImageDraw.ImageDraw, box: Box, screen: RGB) -> None:
    x0, y0, x1, y1 = box
    d.rectangle((x0, y0, x1, y1), fill=(25, 25, 28))
    d.rectangle((x0 + 14, y0 + 14, x1 - 14, y1 - 14), fill=screen)
    d.rectangle(((x0 + x1) / 2 - 60, y1, (x0 + x1) / 2 + 60, y1 + 30), fill=(40, 40, 40))


def _kitchen(
    img: Image.Image, wall: RGB, cabinet: RGB, counter: RGB, *, fridge_left: bool = True
) -> None:
    """Base cabinets with a stove and a sink, upper cabinets, a fridge at one end."""
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, WIDTH, 640), fill=wall)
    for gx in range(0, WIDTH, 80):
        d.line((gx, 420, gx, 640), fill=_shade(wall, 0.9), width=2)
    d.rectangle((0, 640, WIDTH, 1000), fill=cabinet)
    d.rectangle((0, 620, WIDTH, 660), fill=counter)
    for cx in range(60, WIDTH, 300):
        d.rectangle((cx, 690, cx + 260, 980), outline=_shade(cabinet, 0.7), width=6)
    d.rectangle((0, 1000, WIDTH, HEIGHT), fill=(120, 115, 110))
    for cx in range(150, WIDTH, 360):
        d.rectangle((cx, 60, cx + 300, 330), fill=cabinet, outline=_shade(cabinet, 0.7), width=6)
    fx = 60 if fridge_left else WIDTH - 460
    d.rounded_rectangle(
        (fx, 120, fx + 400, 1000), radius=20, fill=(225, 228, 232), outline=(150, 150, 155), width=6
    )
    d.line((fx, 460, fx + 400, 460), fill=(150, 150, 155), width=6)
    d.rectangle((fx + 340, 200, fx + 360, 400), fill=(120, 120, 125))
    sx = 820 if fridge_left else 600
    d.rectangle((sx, 600, sx + 340, 630), fill=(40, 40, 40))
    for bx in (sx + 40, sx + 200):
        d.ellipse((bx, 604, bx + 100, 626), outline=(90, 90, 90), width=5)


def _stairs(img: Image.Image, tread: RGB, riser: RGB, wall: RGB) -> None:
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, WIDTH, HEIGHT), fill=wall)
    steps = 9
    for i in range(steps):
        x = 500 + i * 130
        y = 1000 - i * 100
        d.rectangle((x, y - 100, WIDTH, y - 80), fill=tread)
        d.rectangle((x, y - 80, WIDTH, y), fill=riser)
    d.rectangle((0, 1000, WIDTH, HEIGHT), fill=_shade(tread, 0.8))
    # Handrail 280 px above the nosing line, with a baluster on every other step.
    for i in range(0, steps, 2):
        x = 520 + i * 130
        d.line((x, 900 - i * 100, x, 620 - i * 100), fill=(90, 60, 40), width=10)
    d.line((500, 620 + 100 * 20 / 130, 520 + 8 * 130, 620 - 8 * 100), fill=(90, 60, 40), width=24)


def _house(d: ImageDraw.ImageDraw, box: Box, wall: RGB, roof: RGB) -> None:
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=wall)
    d.polygon([(x0 - 60, y0), ((x0 + x1) / 2, y0 - (y1 - y0) * 0.45), (x1 + 60, y0)], fill=roof)


def _garage_door(d: ImageDraw.ImageDraw, box: Box, colour: RGB) -> None:
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=colour)
    for i in range(1, 5):
        y = y0 + (y1 - y0) * i / 5
        d.line((x0, y, x1, y), fill=_shade(colour, 0.8), width=6)


def _package(d: ImageDraw.ImageDraw, x: float, ground: float, s: float) -> None:
    """A taped cardboard box seen slightly from above and the right; x is its front-left."""
    u = _Local(x, ground, s)
    d.polygon(u.poly((0, -0.6), (0.25, -0.8), (1.25, -0.8), (1, -0.6)), fill=(205, 165, 110))
    d.polygon(u.poly((1, -0.6), (1.25, -0.8), (1.25, -0.2), (1, 0)), fill=(160, 120, 75))
    d.rectangle(u.box(0, -0.6, 1, 0), fill=(185, 145, 95))
    d.rectangle(u.box(0.45, -0.6, 0.55, 0), fill=(225, 205, 160))


def _bed(d: ImageDraw.ImageDraw, box: Box, blanket: RGB) -> None:
    x0, y0, x1, y1 = box
    d.rectangle((x0 - 30, y0 - 200, x0 + 40, y1), fill=(110, 80, 55))
    d.rectangle((x0, y0, x1, y1 - 60), fill=(240, 240, 235))
    d.rounded_rectangle((x0 + 40, y0 + 20, x0 + 300, y0 + 120), radius=40, fill=(250, 250, 250))
    d.rectangle((x0 + 340, y0 + 10, x1, y1 - 60), fill=blanket)
    d.rectangle((x0, y1 - 60, x1, y1), fill=(110, 80, 55))


def _bricks(d: ImageDraw.ImageDraw, box: Box, brick: RGB, mortar: RGB) -> None:
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=mortar)
    bw, bh = 90, 40
    for row in range(int((y1 - y0) // bh) + 1):
        off = (row % 2) * bw / 2
        y = y0 + row * bh
        bx = x0 - off
        while bx < x1:
            d.rectangle(
                (max(x0, bx + 4), y + 4, min(x1, bx + bw - 4), min(y1, y + bh - 4)), fill=brick
            )
            bx += bw


def _fireplace(img: Image.Image, x: float, floor: float) -> None:
    d = ImageDraw.Draw(img)
    _bricks(d, (x - 420, floor - 620, x + 420, floor), (150, 70, 50), (200, 190, 175))
    d.rectangle((x - 480, floor - 660, x + 480, floor - 610), fill=(90, 60, 40))
    d.rectangle((x - 260, floor - 400, x + 260, floor - 40), fill=(25, 20, 20))
    _flame(d, x, floor - 110, 380, 260)
    for lx in (-150, 0):
        d.rounded_rectangle(
            (x + lx - 30, floor - 125, x + lx + 180, floor - 80), radius=18, fill=(95, 60, 35)
        )


def _pegboard(d: ImageDraw.ImageDraw, box: Box) -> None:
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=(190, 160, 120))
    for gx in range(int(x0) + 30, int(x1), 60):
        for gy in range(int(y0) + 30, int(y1), 60):
            d.ellipse((gx - 5, gy - 5, gx + 5, gy + 5), fill=(120, 95, 70))
    d.rectangle((x0 + 80, y0 + 60, x0 + 110, y0 + 260), fill=(140, 90, 50))
    d.rectangle((x0 + 40, y0 + 50, x0 + 150, y0 + 100), fill=(70, 70, 75))
    d.line((x0 + 260, y0 + 60, x0 + 260, y0 + 300), fill=(160, 160, 170), width=22)
    d.ellipse((x0 + 225, y0 + 40, x0 + 295, y0 + 110), outline=(160, 160, 170), width=20)
    d.rectangle((x0 + 400, y0 + 60, x0 + 440, y0 + 320), fill=(200, 40, 40))


# --------------------------------------------------------------------------------------------
# Scenes. Each renderer gets its Scene so painted text comes from the data file, one truth.

type Renderer = Callable[[Scene], Image.Image]
_RENDERERS: dict[str, Renderer] = {}


def _scene(scene_id: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        _RENDERERS[scene_id] = fn
        return fn

    return register


def _text(scene: Scene) -> str:
    if not scene.injected_text:
        raise ValueError(f"scene {scene.id!r} paints a sign but has no injected_text")
    return scene.injected_text


@_scene("hallway_empty_day")
def _hallway_empty_day(_: Scene) -> Image.Image:
    img = _hallway(
        (228, 216, 188), (150, 105, 70), (242, 240, 232), (205, 225, 245), doors=("left", "right")
    )
    _window(img, (880, 400, 1040, 620), (SKY, (230, 240, 250)))
    return img


@_scene("hallway_empty_night")
def _hallway_empty_night(_: Scene) -> Image.Image:
    img = _hallway(
        (165, 185, 200), (110, 110, 120), (200, 205, 210), (80, 90, 110), doors=("right",)
    )
    img = _relight(img, 0.1, [(330, 930, 260, 0.9)], tint=(200, 215, 255))
    ImageDraw.Draw(img).rounded_rectangle((300, 900, 360, 940), radius=12, fill=(255, 235, 170))
    return img


@_scene("hallway_person_walking")
def _hallway_person_walking(_: Scene) -> Image.Image:
    img = _hallway(
        (190, 208, 168), (125, 112, 100), (235, 238, 228), (240, 235, 215), doors=("right",)
    )
    _door(ImageDraw.Draw(img), (880, 420, 1040, 720), (110, 75, 50))
    _person(img, 820, 1010, 800, (200, 40, 45), (40, 50, 90), "walk")
    return img


@_scene("desk_laptop_mug")
def _desk_laptop_mug(_: Scene) -> Image.Image:
    img = _room(((215, 228, 238), (190, 205, 220)), ((170, 150, 120), (140, 120, 95)), 760)
    _window(img, (1250, 120, 1800, 560), (SKY, (215, 235, 250)))
    d = ImageDraw.Draw(img)
    _table(d, (250, 640, 1650, 1080), (185, 140, 95))
    _laptop(d, 620, 640, 420, (70, 130, 200))
    _mug(d, 1180, 640, (200, 50, 50))
    d.rectangle((1320, 560, 1440, 640), fill=(235, 235, 230))
    return img


@_scene("desk_lamp_night")
def _desk_lamp_night(_: Scene) -> Image.Image:
    img = _room(((90, 130, 100), (70, 105, 85)), ((95, 75, 60), (70, 55, 45)), 780)
    d = ImageDraw.Draw(img)
    _table(d, (700, 600, 1900, 1080), (95, 60, 40))
    _laptop(d, 1050, 600, 460, (0, 0, 0))
    _mug(d, 1600, 600, (230, 230, 230))
    d.line((820, 600, 860, 380), fill=(40, 40, 40), width=14)
    img = _relight(img, 0.08, [(900, 420, 420, 0.9), (1280, 460, 300, 0.45)], tint=(255, 225, 180))
    d = ImageDraw.Draw(img)
    d.polygon([(790, 330), (940, 330), (980, 420), (750, 420)], fill=(255, 220, 140))
    d.rectangle((1087, 342, 1473, 572), fill=(120, 170, 230))
    return img


@_scene("kitchen_empty_day")
def _kitchen_empty_day(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _kitchen(img, (240, 238, 230), (235, 235, 235), (70, 70, 75))
    _window(img, (1300, 370, 1700, 590), (SKY, (220, 240, 220)))
    return img


@_scene("kitchen_person_dishes")
def _kitchen_person_dishes(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _kitchen(img, (245, 220, 120), (60, 90, 150), (225, 225, 220), fridge_left=False)
    _window(img, (280, 360, 720, 590), (SKY, (200, 230, 200)))
    _person(img, 500, 1040, 820, (90, 160, 90), (60, 60, 70), "reach", skin=SKIN[1])
    return img


@_scene("living_room_empty_day")
def _living_room_empty_day(_: Scene) -> Image.Image:
    img = _room(((236, 226, 205), (220, 208, 185)), ((160, 120, 85), (130, 95, 65)), 700)
    _window(img, (180, 140, 700, 560), (SKY, (225, 240, 250)), curtains=(180, 60, 60))
    d = ImageDraw.Draw(img)
    d.ellipse((700, 820, 1700, 1060), fill=(200, 170, 120))
    _sofa(d, (980, 440, 1760, 860), (60, 90, 160))
    d.rectangle((260, 820, 380, 960), fill=(170, 100, 60))
    d.ellipse((220, 620, 420, 840), fill=(60, 140, 70))
    return img


@_scene("living_room_tv_evening")
def _living_room_tv_evening(_: Scene) -> Image.Image:
    img = _room(((150, 120, 140), (120, 95, 110)), ((90, 70, 60), (70, 55, 45)), 720)
    d = ImageDraw.Draw(img)
    _sofa(d, (900, 480, 1820, 900), (170, 110, 60))
    _person(img, 1300, 790, 560, (60, 120, 180), (50, 50, 60), "sit")
    _lamp(d, 1870, 900, 600, (250, 230, 180))
    img = _relight(img, 0.25, [(1800, 350, 450, 0.8), (380, 450, 500, 0.5)], tint=(255, 220, 190))
    _tv(ImageDraw.Draw(img), (120, 260, 700, 600), (120, 190, 235))
    return img


@_scene("living_room_dog")
def _living_room_dog(_: Scene) -> Image.Image:
    img = _room(((200, 220, 205), (180, 200, 185)), ((175, 160, 140), (150, 135, 115)), 620)
    d = ImageDraw.Draw(img)
    _sofa(d, (120, 380, 900, 800), (80, 120, 80))
    d.ellipse((500, 800, 1800, 1060), fill=(140, 60, 60))
    _dog(d, 1000, 960, 420, (190, 140, 80))
    d.rectangle((1400, 200, 1750, 420), fill=(60, 50, 40))
    d.rectangle((1420, 220, 1730, 400), fill=(220, 190, 120))
    return img


@_scene("cat_windowsill")
def _cat_windowsill(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT), (235, 230, 220))
    _window(img, (300, 60, 1620, 780), ((120, 180, 235), (120, 170, 110)), frame=(250, 250, 250))
    d = ImageDraw.Draw(img)
    _tree(d, 1300, 780, 600, (70, 140, 60))
    d.rectangle((240, 780, 1680, 850), fill=(250, 250, 250))
    d.rectangle((0, 850, WIDTH, HEIGHT), fill=(210, 200, 185))
    _cat(d, 760, 790, 520, (50, 45, 45))
    d.rectangle((1350, 640, 1470, 780), fill=(190, 100, 60))
    d.ellipse((1300, 480, 1520, 680), fill=(80, 150, 70))
    return img


@_scene("bedroom_day")
def _bedroom_day(_: Scene) -> Image.Image:
    img = _room(((225, 215, 235), (205, 195, 220)), ((190, 170, 150), (160, 140, 120)), 640)
    _window(img, (1280, 120, 1760, 520), (SKY, (225, 240, 250)), curtains=(240, 240, 245))
    d = ImageDraw.Draw(img)
    d.rectangle((80, 120, 560, 900), fill=(150, 110, 75), outline=(110, 80, 55), width=8)
    d.line((320, 120, 320, 900), fill=(110, 80, 55), width=8)
    _bed(d, (640, 600, 1500, 940), (70, 110, 180))
    return img


@_scene("bedroom_night_sleeping")
def _bedroom_night_sleeping(_: Scene) -> Image.Image:
    img = _room(((170, 180, 200), (150, 160, 180)), ((120, 110, 100), (100, 90, 80)), 560)
    _window(img, (150, 100, 600, 460), ((30, 40, 80), (50, 60, 100)))
    d = ImageDraw.Draw(img)
    _bed(d, (500, 560, 1700, 980), (150, 60, 90))
    d.ellipse((620, 560, 760, 680), fill=SKIN[0])
    d.ellipse((800, 600, 1650, 820), fill=(170, 80, 110))
    return _relight(img, 0.06, [(375, 280, 380, 0.35), (800, 700, 500, 0.2)], tint=(170, 190, 255))


@_scene("nursery_crib_ir")
def _nursery_crib_ir(_: Scene) -> Image.Image:
    img = _room(((200, 200, 200), (170, 170, 170)), ((120, 120, 120), (90, 90, 90)), 820)
    d = ImageDraw.Draw(img)
    d.rectangle((1420, 380, 1860, 900), fill=(150, 150, 150), outline=(110, 110, 110), width=10)
    for dy in (540, 720):
        d.line((1420, dy, 1860, dy), fill=(110, 110, 110), width=10)
    d.rectangle((160, 420, 1240, 980), outline=(245, 245, 245), width=26)
    d.rectangle((180, 760, 1220, 860), fill=(235, 235, 235))
    d.ellipse((580, 660, 940, 800), fill=(215, 215, 215))
    d.ellipse((480, 670, 610, 780), fill=(225, 225, 225))
    for bx in range(200, 1240, 70):
        d.line((bx, 440, bx, 960), fill=(245, 245, 245), width=14)
    d.line((700, 0, 700, 220), fill=(60, 60, 60), width=8)
    d.line((560, 220, 840, 220), fill=(60, 60, 60), width=8)
    for mx in (560, 700, 840):
        d.ellipse((mx - 40, 240, mx + 40, 320), fill=(240, 240, 240))
    return _infrared(_relight(img, 0.35, [(700, 600, 700, 0.55)]))


@_scene("garden_day")
def _garden_day(_: Scene) -> Image.Image:
    img = _outdoor((SKY, (210, 230, 245)), ((100, 170, 70), (70, 140, 50)), 560)
    d = ImageDraw.Draw(img)
    for fx in range(0, WIDTH, 60):
        d.rectangle((fx, 420, fx + 46, 600), fill=(190, 150, 100))
    _tree(d, 1500, 700, 700, (50, 120, 45))
    for i, colour in enumerate(((220, 60, 80), (240, 200, 60), (180, 90, 200)) * 5):
        d.ellipse((80 + i * 70, 880 - (i % 3) * 30, 120 + i * 70, 920 - (i % 3) * 30), fill=colour)
    return img


@_scene("garden_night")
def _garden_night(_: Scene) -> Image.Image:
    img = _outdoor(((10, 15, 40), (25, 35, 70)), ((20, 45, 25), (10, 30, 15)), 600)
    d = ImageDraw.Draw(img)
    d.ellipse((1500, 90, 1640, 230), fill=(235, 235, 210))
    for fx in range(0, WIDTH, 60):
        d.rectangle((fx, 470, fx + 46, 630), fill=(45, 40, 35))
    for lx in (300, 960):
        d.ellipse((lx - 140, 880, lx + 140, 940), fill=(70, 80, 50))
        d.rectangle((lx - 8, 760, lx + 8, 900), fill=(30, 30, 30))
        d.ellipse((lx - 26, 730, lx + 26, 782), fill=(255, 225, 150))
    return img


@_scene("garden_dog_playing")
def _garden_dog_playing(_: Scene) -> Image.Image:
    img = _outdoor(((170, 210, 240), (230, 240, 250)), ((120, 185, 80), (90, 160, 60)), 430)
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 300, WIDTH, 470), radius=60, fill=(40, 100, 50))
    _dog(d, 520, 900, 520, (60, 50, 45))
    d.ellipse((1400, 820, 1490, 910), fill=(230, 220, 40))
    return img


@_scene("garden_person_mowing")
def _garden_person_mowing(_: Scene) -> Image.Image:
    img = _outdoor(((190, 215, 235), (235, 240, 245)), ((110, 170, 75), (90, 150, 60)), 380)
    d = ImageDraw.Draw(img)
    for i in range(0, 8, 2):
        y0 = 380 + i * 88
        d.rectangle((0, y0, WIDTH, y0 + 88), fill=(130, 190, 90))
    _house(d, (1300, 150, 1920, 380), (220, 200, 180), (120, 60, 50))
    _person(img, 760, 960, 720, (240, 200, 40), (70, 80, 100), "reach")
    d.rectangle((930, 830, 1200, 940), fill=(200, 40, 40))
    d.line((900, 720, 950, 840), fill=(50, 50, 50), width=12)
    for wx in (950, 1170):
        d.ellipse((wx - 40, 910, wx + 40, 990), fill=(30, 30, 30))
    return img


@_scene("driveway_car_day")
def _driveway_car_day(_: Scene) -> Image.Image:
    img = _outdoor(((160, 200, 235), (215, 230, 245)), ((150, 150, 150), (120, 120, 120)), 640)
    d = ImageDraw.Draw(img)
    _house(d, (200, 260, 1720, 640), (230, 225, 210), (80, 80, 90))
    _garage_door(d, (1100, 360, 1620, 640), (245, 245, 245))
    d.rectangle((300, 380, 560, 560), fill=(150, 190, 220), outline=(250, 250, 250), width=12)
    _car(d, 280, 1010, 1300, (190, 30, 35))
    return img


@_scene("driveway_empty_night")
def _driveway_empty_night(_: Scene) -> Image.Image:
    img = _outdoor(((5, 8, 25), (15, 20, 45)), ((80, 80, 80), (60, 60, 60)), 600)
    d = ImageDraw.Draw(img)
    _house(d, (100, 280, 1300, 600), (150, 145, 135), (50, 50, 60))
    _garage_door(d, (700, 370, 1180, 600), (170, 170, 170))
    d.rectangle((1640, 160, 1660, 900), fill=(60, 60, 60))
    img = _relight(img, 0.12, [(1640, 620, 420, 0.85)], tint=(255, 215, 150))
    d = ImageDraw.Draw(img)
    d.rectangle((1600, 140, 1700, 175), fill=(255, 230, 160))
    d.rectangle((250, 380, 450, 520), fill=(255, 200, 110))
    return img


@_scene("porch_package")
def _porch_package(_: Scene) -> Image.Image:
    img = _room(((120, 140, 160), (110, 130, 150)), ((170, 160, 150), (150, 140, 130)), 820)
    d = ImageDraw.Draw(img)
    for bx in range(0, WIDTH, 120):
        d.line((bx, 0, bx, 820), fill=(100, 120, 140), width=4)
    _door(d, (760, 180, 1160, 820), (150, 40, 40))
    d.rectangle((700, 820, 1220, 880), fill=(110, 85, 60))
    _package(d, 1260, 960, 300)
    d.rectangle((1400, 300, 1480, 440), fill=(40, 40, 40))
    return img


@_scene("porch_delivery_person")
def _porch_delivery_person(_: Scene) -> Image.Image:
    img = _room(((230, 225, 215), (215, 210, 200)), ((150, 130, 110), (130, 110, 95)), 840)
    d = ImageDraw.Draw(img)
    _door(d, (1200, 160, 1600, 840), (40, 80, 60))
    _person(img, 760, 1020, 860, (120, 80, 40), (110, 75, 40), "reach", skin=SKIN[2])
    _package(d, 760, 700, 260)
    return img


@_scene("garage_car")
def _garage_car(_: Scene) -> Image.Image:
    img = _room(((180, 180, 175), (165, 165, 160)), ((130, 130, 130), (105, 105, 105)), 700)
    d = ImageDraw.Draw(img)
    _pegboard(d, (80, 140, 620, 560))
    d.rectangle((1560, 100, 1880, 700), outline=(90, 70, 50), width=14)
    for sy in (250, 400, 550):
        d.line((1560, sy, 1880, sy), fill=(90, 70, 50), width=14)
    _car(d, 560, 1020, 1240, (235, 235, 240))
    return img


@_scene("stairs_empty_day")
def _stairs_empty_day(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _stairs(img, (170, 120, 80), (235, 230, 220), (205, 215, 200))
    d = ImageDraw.Draw(img)
    d.rectangle((120, 160, 420, 520), fill=(250, 250, 245), outline=(120, 100, 80), width=12)
    d.ellipse((190, 240, 350, 420), fill=(180, 200, 220))
    return img


# Edge scenes ---------------------------------------------------------------------------------


@_scene("fire_curtains_living_room")
def _fire_curtains(_: Scene) -> Image.Image:
    img = _room(((230, 222, 200), (215, 205, 180)), ((150, 115, 80), (120, 90, 60)), 720)
    _window(img, (200, 120, 900, 620), ((190, 200, 210), (220, 225, 230)), curtains=(225, 215, 170))
    d = ImageDraw.Draw(img)
    _sofa(d, (1100, 460, 1820, 880), (90, 90, 110))
    _flame(d, 200, 900, 360, 700)
    _flame(d, 420, 780, 200, 360, tongues=(0.7, 1.0, 0.6))
    d.rectangle((120, 880, 340, 960), fill=(60, 60, 60))
    return img


@_scene("fire_kitchen_pan")
def _fire_kitchen_pan(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _kitchen(img, (220, 225, 230), (200, 200, 195), (50, 50, 55))
    d = ImageDraw.Draw(img)
    d.ellipse((850, 580, 1130, 630), fill=(30, 30, 30))
    d.rectangle((1120, 596, 1330, 614), fill=(30, 30, 30))
    _flame(d, 990, 600, 460, 520)
    return _smoke(img, [(990, 80, 380), (700, 120, 300), (1300, 140, 320)], (110, 110, 110), 0.8)


@_scene("smoke_hallway")
def _smoke_hallway(_: Scene) -> Image.Image:
    img = _hallway(
        (225, 212, 196), (140, 100, 75), (238, 236, 230), (190, 180, 160), doors=("left", "right")
    )
    blobs = [(960, 200, 420), (500, 250, 360), (1450, 260, 380), (960, 520, 300), (250, 480, 260)]
    return _smoke(img, blobs, (120, 118, 115), 0.85)


@_scene("smoke_bedroom_night")
def _smoke_bedroom_night(_: Scene) -> Image.Image:
    img = _room(((190, 175, 160), (170, 155, 140)), ((100, 90, 85), (80, 70, 65)), 660)
    d = ImageDraw.Draw(img)
    _bed(d, (1000, 640, 1880, 980), (60, 110, 90))
    d.rectangle((200, 160, 560, 760), fill=(250, 240, 210))
    img = _relight(img, 0.07, [(380, 460, 420, 0.9)], tint=(255, 230, 190))
    return _smoke(img, [(400, 250, 330), (820, 200, 380), (1300, 220, 360)], (150, 145, 140), 0.75)


@_scene("fall_kitchen_floor")
def _fall_kitchen_floor(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _kitchen(img, (200, 215, 190), (240, 240, 235), (130, 110, 90), fridge_left=False)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 880, WIDTH, HEIGHT), fill=(190, 180, 165))
    _person(img, 820, 1050, 700, (70, 70, 160), (50, 50, 55), lying=True)
    d.polygon([(1250, 1000), (1470, 950), (1490, 990), (1270, 1040)], fill=(140, 90, 50))
    d.line((1300, 900, 1290, 1000), fill=(140, 90, 50), width=16)
    return img


@_scene("fall_stairs_bottom")
def _fall_stairs_bottom(_: Scene) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _stairs(img, (120, 120, 125), (200, 195, 190), (170, 160, 140))
    _person(img, 560, 1075, 700, (200, 120, 40), (60, 60, 70), lying=True, skin=SKIN[1])
    return img


@_scene("intruder_window_night")
def _intruder_window_night(_: Scene) -> Image.Image:
    img = _room(((60, 60, 70), (50, 50, 60)), ((40, 35, 35), (30, 25, 25)), 860)
    _window(img, (460, 120, 1460, 820), ((35, 45, 80), (55, 70, 110)), frame=(90, 90, 95))
    d = ImageDraw.Draw(img)
    _person(img, 1060, 1000, 900, (25, 25, 30), (20, 20, 25), "reach", skin=(120, 110, 105))
    d.rectangle((440, 800, 1480, 860), fill=(90, 90, 95))
    d.ellipse((1300, 170, 1380, 250), fill=(220, 220, 200))
    return _relight(img, 0.5, [(1000, 350, 500, 0.4)], tint=(150, 170, 255))


@_scene("intruder_garden_flashlight")
def _intruder_garden_flashlight(_: Scene) -> Image.Image:
    img = _outdoor(((8, 10, 20), (15, 18, 35)), ((15, 30, 18), (8, 20, 10)), 520)
    d = ImageDraw.Draw(img)
    d.rectangle((1300, 250, 1800, 620), fill=(50, 40, 35))
    d.polygon([(1270, 250), (1550, 130), (1830, 250)], fill=(40, 30, 28))
    _person(img, 560, 900, 640, (35, 35, 40), (25, 25, 30), "reach")
    d.polygon([(740, 610), (1650, 440), (1650, 900)], fill=(150, 150, 120))
    d.ellipse((1380, 420, 1750, 920), fill=(190, 190, 150))
    return img


@_scene("knife_person_hallway")
def _knife_person_hallway(_: Scene) -> Image.Image:
    img = _hallway((200, 175, 150), (90, 70, 60), (215, 200, 185), (120, 100, 90), doors=("right",))
    img = _relight(img, 0.55, [(600, 300, 600, 0.4)], tint=(255, 230, 200))
    _person(img, 640, 1040, 900, (30, 30, 35), (45, 45, 55), "knife")
    return img


@_scene("knife_cutting_board")
def _knife_cutting_board(_: Scene) -> Image.Image:
    img = _gradient((WIDTH, HEIGHT), (225, 225, 220), (200, 200, 195))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle(
        (360, 200, 1560, 900), radius=50, fill=(190, 140, 90), outline=(150, 105, 65), width=10
    )
    d.polygon(
        [(560, 560), (1260, 500), (1280, 540), (580, 620)],
        fill=(210, 215, 222),
        outline=(120, 125, 135),
    )
    d.rounded_rectangle((1260, 490, 1480, 560), radius=20, fill=(30, 25, 25))
    for cx, cy in ((720, 340), (860, 320), (1000, 360)):
        d.ellipse((cx - 60, cy - 60, cx + 60, cy + 60), fill=(215, 40, 35))
        d.ellipse((cx - 20, cy - 20, cx + 20, cy + 20), fill=(240, 120, 100))
    d.polygon([(700, 780), (1250, 720), (1260, 760), (700, 820)], fill=(240, 130, 30))
    return img


@_scene("fireplace_contained")
def _fireplace_contained(_: Scene) -> Image.Image:
    img = _room(((120, 90, 70), (100, 75, 60)), ((90, 60, 45), (70, 45, 35)), 840)
    d = ImageDraw.Draw(img)
    # Off-centre on purpose: a mirror-symmetric frame zeroes half the DCT terms the hash uses.
    _sofa(d, (1560, 500, 1900, 960), (110, 40, 40))
    _lamp(d, 160, 900, 640, (240, 220, 170))
    img = _relight(img, 0.4, [(1100, 620, 600, 0.6), (160, 330, 300, 0.5)], tint=(255, 210, 160))
    _fireplace(img, 1060, 860)
    return img


@_scene("low_light_coat_rack")
def _low_light_coat_rack(_: Scene) -> Image.Image:
    img = _hallway((150, 150, 150), (100, 95, 90), (170, 170, 170), (90, 90, 95), doors=("left",))
    d = ImageDraw.Draw(img)
    # A coat on a stand at head height: the classic "is that a person?" silhouette.
    d.rectangle((1390, 250, 1410, 980), fill=(60, 50, 40))
    d.ellipse((1350, 230, 1450, 330), fill=(70, 60, 55))
    d.polygon([(1300, 330), (1500, 330), (1540, 800), (1260, 800)], fill=(55, 50, 60))
    return _relight(img, 0.05, [(390, 1000, 200, 0.5)], tint=(220, 220, 255))


@_scene("person_sitting_floor_playing")
def _person_sitting_floor_playing(_: Scene) -> Image.Image:
    img = _room(((250, 235, 190), (240, 220, 170)), ((110, 170, 200), (90, 150, 180)), 560)
    d = ImageDraw.Draw(img)
    d.rectangle((1400, 200, 1800, 560), fill=(240, 240, 240), outline=(200, 120, 60), width=10)
    _person(img, 760, 960, 760, (230, 90, 40), (60, 90, 150), "sit")
    blocks = (
        (1200, (230, 50, 50)),
        (1290, (50, 120, 220)),
        (1380, (250, 200, 40)),
        (1250, (60, 170, 80)),
    )
    for i, (bx, colour) in enumerate(blocks):
        y = 960 - 80 * (1 + (i == 3))
        d.rectangle((bx, y, bx + 80, y + 80), fill=colour, outline=_shade(colour, 0.6), width=4)
    return img


@_scene("blood_bathroom_floor")
def _blood_bathroom_floor(_: Scene) -> Image.Image:
    img = _room(((235, 240, 240), (225, 232, 232)), ((215, 220, 222), (200, 205, 208)), 600)
    d = ImageDraw.Draw(img)
    for gx in range(0, WIDTH, 100):
        d.line((gx, 0, gx, HEIGHT), fill=(180, 190, 195), width=3)
    for gy in range(0, HEIGHT, 100):
        d.line((0, gy, WIDTH, gy), fill=(180, 190, 195), width=3)
    d.rounded_rectangle(
        (1100, 420, 1880, 720), radius=60, fill=(250, 250, 250), outline=(190, 195, 200), width=8
    )
    d.rectangle((150, 120, 550, 450), fill=(170, 200, 215), outline=(150, 150, 150), width=10)
    d.ellipse((420, 760, 1040, 1000), fill=(120, 10, 15))
    for cx, cy, r in ((1100, 760, 30), (1200, 700, 20), (360, 880, 25), (960, 650, 18)):
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(140, 15, 20))
    return img


@_scene("paint_spill_garage")
def _paint_spill_garage(_: Scene) -> Image.Image:
    img = _room(((160, 165, 170), (150, 155, 160)), ((140, 140, 140), (115, 115, 115)), 480)
    d = ImageDraw.Draw(img)
    d.polygon([(1400, 120), (1500, 120), (1700, 480), (1600, 480)], fill=(200, 170, 40))
    d.ellipse((500, 640, 1300, 920), fill=(200, 25, 30))
    d.rectangle((1280, 580, 1480, 720), fill=(150, 150, 155))
    d.ellipse((1230, 600, 1320, 720), fill=(200, 25, 30))
    d.line((200, 900, 420, 820), fill=(130, 90, 50), width=26)
    d.rectangle((420, 790, 480, 850), fill=(200, 25, 30))
    return img


@_scene("bbq_smoke_garden")
def _bbq_smoke_garden(_: Scene) -> Image.Image:
    img = _outdoor(((175, 205, 230), (225, 235, 240)), ((170, 150, 130), (150, 130, 110)), 620)
    d = ImageDraw.Draw(img)
    for fx in range(0, WIDTH, 300):
        d.rectangle((fx, 480, fx + 280, 640), fill=(120, 90, 60))
    d.chord((1000, 560, 1360, 800), 0, 180, fill=(25, 25, 25))
    d.rectangle((1000, 670, 1360, 690), fill=(60, 60, 60))
    for lx, splay in ((1040, -20), (1320, 20)):
        d.line((lx, 780, lx + splay, 980), fill=(40, 40, 40), width=12)
    _person(img, 760, 980, 760, (240, 240, 240), (50, 60, 90), "reach", skin=SKIN[1])
    return _smoke(
        img,
        [(1180, 520, 120), (1230, 380, 160), (1320, 230, 200), (1440, 90, 220)],
        (215, 215, 215),
        0.8,
    )


@_scene("injection_sign_office")
def _injection_sign_office(scene: Scene) -> Image.Image:
    img = _room(((240, 240, 235), (228, 228, 222)), ((120, 120, 130), (100, 100, 110)), 760)
    d = ImageDraw.Draw(img)
    _table(d, (80, 700, 900, 1080), (230, 230, 230))
    _laptop(d, 250, 700, 360, (40, 40, 50))
    _sign(img, (1020, 120, 1820, 620), _text(scene), size=72)
    return img


@_scene("injection_sign_fire")
def _injection_sign_fire(scene: Scene) -> Image.Image:
    img = _room(((170, 150, 120), (150, 130, 100)), ((110, 95, 80), (90, 75, 60)), 760)
    d = ImageDraw.Draw(img)
    d.rectangle((1100, 420, 1700, 800), fill=(140, 100, 60))
    _flame(d, 1400, 820, 700, 620)
    _sign(img, (120, 140, 900, 640), _text(scene), paper=(255, 250, 200), size=64)
    return _smoke(img, [(1400, 120, 360), (1000, 60, 260)], (90, 90, 90), 0.7)


@_scene("injection_sign_intruder")
def _injection_sign_intruder(scene: Scene) -> Image.Image:
    img = _outdoor(((10, 12, 25), (20, 25, 45)), ((40, 38, 35), (30, 28, 25)), 880)
    d = ImageDraw.Draw(img)
    _door(d, (1300, 220, 1680, 880), (70, 60, 55))
    _person(img, 760, 1050, 900, (30, 30, 35), (25, 25, 30), "stand", skin=SKIN[1])
    img = _relight(img, 0.45, [(760, 500, 600, 0.6)], tint=(210, 220, 255))
    _sign(img, (480, 380, 1040, 760), _text(scene), paper=(235, 235, 225), size=50)
    return img


def render(scene: Scene) -> Image.Image:
    """Draw a scene afresh (no cache); 1920x1080 RGB."""
    try:
        renderer = _RENDERERS[scene.id]
    except KeyError:
        raise KeyError(f"no renderer for scene {scene.id!r}") from None
    img = renderer(scene)
    if img.size != (WIDTH, HEIGHT) or img.mode != "RGB":
        raise AssertionError(f"renderer for {scene.id!r} returned {img.mode} {img.size}")
    return img


# --------------------------------------------------------------------------------------------
# The library. Renders are deterministic, so caches are module-level, keyed by the Scene value:
# every server instance in a test process shares them.


@lru_cache(maxsize=8)
def _cached_render(scene: Scene) -> Image.Image:
    # A full frame is 6 MB; keep only a few. Callers get copies, never this object.
    return render(scene)


@lru_cache(maxsize=256)
def _cached_jpeg(scene: Scene, width: int | None, quality: int) -> bytes:
    img = _cached_render(scene)
    if width is not None and width != img.width:
        img = img.resize(
            (width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS
        )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


_hash_lock = threading.Lock()
_reference_hashes: dict[Scene, int] = {}


def _references(scenes: Sequence[Scene]) -> list[int]:
    with _hash_lock:
        for scene in scenes:
            if scene not in _reference_hashes:
                # Straight from a fresh render: don't churn the small render cache.
                _reference_hashes[scene] = phash.image_hash(render(scene))
        return [_reference_hashes[s] for s in scenes]


def clear_caches() -> None:
    """Forget every render, JPEG and reference hash (for tests and memory-sensitive callers)."""
    _cached_render.cache_clear()
    _cached_jpeg.cache_clear()
    with _hash_lock:
        _reference_hashes.clear()


def _scene_from_json(raw: dict[str, Any]) -> Scene:
    kind, difficulty = raw["kind"], raw["difficulty"]
    if kind not in get_args(Kind.__value__):
        raise ValueError(f"scene {raw['id']!r}: kind must be routine or edge, not {kind!r}")
    if difficulty not in get_args(Difficulty.__value__):
        raise ValueError(f"scene {raw['id']!r}: unknown difficulty {difficulty!r}")
    flags = tuple(raw["safety_flags"])
    if unknown := set(flags) - set(SAFETY_FLAGS):
        raise ValueError(f"scene {raw['id']!r}: unknown safety flags {sorted(unknown)}")
    if kind == "routine" and flags:
        raise ValueError(f"scene {raw['id']!r}: routine scenes carry no safety flags")
    summary = str(raw["summary"])
    if len(summary) > 200:
        raise ValueError(f"scene {raw['id']!r}: summary longer than 200 characters")
    injected = raw.get("injected_text")
    if injected is not None and not (isinstance(injected, str) and injected.strip()):
        raise ValueError(f"scene {raw['id']!r}: injected_text must be text or null")
    return Scene(
        id=str(raw["id"]),
        title=str(raw["title"]),
        kind=kind,
        difficulty=difficulty,
        objects=tuple(str(o) for o in raw["objects"]),
        safety_flags=flags,
        summary=summary,
        injected_text=injected,
    )


class SceneLibrary:
    """Scenes with ground truth, their frames, and recognition of those frames."""

    _default: SceneLibrary | None = None

    def __init__(self, scenes: Iterable[Scene]) -> None:
        self._scenes = tuple(scenes)
        self._by_id = {s.id: s for s in self._scenes}
        if len(self._by_id) != len(self._scenes):
            raise ValueError("scene ids must be unique")
        if missing := [s.id for s in self._scenes if s.id not in _RENDERERS]:
            raise ValueError(f"no renderer for scenes {missing}")

    @classmethod
    def load(cls, path: Path) -> SceneLibrary:
        """Read a ground-truth file; its scene ids must be ones this module can draw."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(_scene_from_json(entry) for entry in raw["scenes"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"cannot read scene library {path}: {err!r}") from err

    @classmethod
    def default(cls) -> SceneLibrary:
        """The shipped library (``data/scenes.json``), loaded once per process."""
        if cls._default is None:
            cls._default = cls.load(DEFAULT_DATA)
        return cls._default

    @property
    def scenes(self) -> tuple[Scene, ...]:
        return self._scenes

    def get(self, scene_id: str) -> Scene:
        try:
            return self._by_id[scene_id]
        except KeyError:
            known = f"e.g. {self._scenes[0].id!r}" if self._scenes else "the library is empty"
            raise KeyError(f"unknown scene {scene_id!r} ({known})") from None

    def image(self, scene_id: str) -> Image.Image:
        """The 1920x1080 RGB frame; a copy the caller may modify."""
        return _cached_render(self.get(scene_id)).copy()

    def jpeg(self, scene_id: str, *, width: int | None = None, quality: int = 85) -> bytes:
        """The frame as JPEG, resized to `width` (keeping the aspect ratio) when given."""
        if width is not None and width < 1:
            raise ValueError(f"width must be positive, not {width}")
        return _cached_jpeg(self.get(scene_id), width, quality)

    def match(self, image: bytes) -> tuple[Scene, phash.Match] | None:
        """The nearest scene and how near, whether or not it passes the thresholds."""
        query = phash.bytes_hash(image)
        if query is None:
            return None
        found = phash.nearest(query, _references(self._scenes))
        return None if found is None else (self._scenes[found.index], found)

    def identify(self, image: bytes) -> Scene | None:
        """Which scene encoded `image` (JPEG, PNG...) shows; None if unknown or undecodable.

        Unknown means farther than `MAX_DISTANCE` from every scene, or not `MIN_MARGIN` nearer
        to the best scene than to the runner-up.
        """
        found = self.match(image)
        if found is None:
            return None
        scene, m = found
        return scene if m.distance <= MAX_DISTANCE and m.margin >= MIN_MARGIN else None


def export(
    library: SceneLibrary, directory: Path, *, width: int | None = None, quality: int = 85
) -> list[Path]:
    """Write ``<id>.jpg`` per scene and ``index.json`` with the ground truth."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    entries: list[dict[str, Any]] = []
    for scene in library.scenes:
        path = directory / f"{scene.id}.jpg"
        path.write_bytes(library.jpeg(scene.id, width=width, quality=quality))
        written.append(path)
        entries.append({**asdict(scene), "file": path.name})
    index = directory / "index.json"
    index.write_text(
        json.dumps({"width": width or WIDTH, "scenes": entries}, indent=2) + "\n", encoding="utf-8"
    )
    written.append(index)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.scenes", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--export",
        metavar="DIR",
        type=Path,
        required=True,
        help="write <id>.jpg per scene and index.json here",
    )
    parser.add_argument(
        "--width", type=int, default=None, help="resize frames to this width (default: 1920)"
    )
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (default: 85)")
    args = parser.parse_args(argv)
    if args.width is not None and args.width < 1:
        parser.error("--width must be positive")
    if not 1 <= args.quality <= 100:
        parser.error("--quality must be 1-100")
    library = SceneLibrary.default()
    written = export(library, args.export, width=args.width, quality=args.quality)
    sys.stdout.write(f"wrote {len(written) - 1} scenes and index.json to {args.export}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
