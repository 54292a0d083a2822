"""Captioned clips from attributes, deterministic from a seed; nothing is downloaded.

One object (circle, square or triangle; small or big; one of seven colours) moves in a straight line (left, right,
up or down; slowly or quickly) over a black or gray background. The caption names every attribute, in a fixed
word order, with words a word-level tokenizer can hold:

    "a big red circle moves left quickly on a black background"
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np

SIZE = 48  # native frame size (square)
FRAMES = 9  # 4k+1 (Wan) and 8k+1 (LTX)
COLOURS = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 220, 50),
    "white": (240, 240, 240), "purple": (150, 60, 200), "orange": (240, 140, 30),
}  # fmt: skip
BACKGROUNDS = {"black": (0, 0, 0), "gray": (110, 110, 110)}
SHAPES = ("circle", "square", "triangle")
RADII = {"small": 5, "big": 9}  # half the bounding box, in pixels
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEEDS = {"slowly": 1.0, "quickly": 2.5}  # pixels per frame
WORDS = ("a", "moves", "on", "background", *RADII, *COLOURS, *SHAPES, *DIRECTIONS, *SPEEDS, *BACKGROUNDS)


@dataclass(frozen=True)
class Clip:
    shape: str
    colour: str
    size: str
    direction: str
    speed: str
    background: str
    start: tuple[float, float]  # object centre (x, y) in frame 0

    @property
    def caption(self) -> str:
        return (f"a {self.size} {self.colour} {self.shape} moves {self.direction} {self.speed} "
                f"on a {self.background} background")  # fmt: skip

    def attributes(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if k != "start"}

    def centre(self, frame: int) -> tuple[float, float]:
        dx, dy = DIRECTIONS[self.direction]
        step = SPEEDS[self.speed] * frame
        return self.start[0] + dx * step, self.start[1] + dy * step


def sample_clip(rng: random.Random) -> Clip:
    """Random attributes, and a start position that keeps the whole track inside the frame."""
    shape, colour, size = rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(list(RADII))
    direction, speed, background = rng.choice(list(DIRECTIONS)), rng.choice(list(SPEEDS)), rng.choice(list(BACKGROUNDS))
    r, travel = RADII[size], SPEEDS[speed] * (FRAMES - 1)
    dx, dy = DIRECTIONS[direction]
    lo_x, hi_x = r + 1 + max(0, -dx) * travel, SIZE - r - 2 - max(0, dx) * travel
    lo_y, hi_y = r + 1 + max(0, -dy) * travel, SIZE - r - 2 - max(0, dy) * travel
    return Clip(shape, colour, size, direction, speed, background, (rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)))


def shape_mask(shape: str, centre: tuple[float, float], radius: float, size: int = SIZE) -> np.ndarray:
    """Boolean (size, size) raster of a shape with the given centre and half-width (pixel centres at +0.5)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    x, y = (xs - centre[0]) / radius, (ys - centre[1]) / radius
    if shape == "circle":
        return x * x + y * y <= 1.0
    if shape == "square":
        return (np.abs(x) <= 1.0) & (np.abs(y) <= 1.0)
    if shape == "triangle":  # apex up, base at the bottom of the bounding box
        return (y <= 1.0) & (np.abs(x) <= (y + 1.0) / 2.0)
    raise ValueError(f"unknown shape {shape!r}")


def render(clip: Clip) -> np.ndarray:
    """uint8 frames (FRAMES, SIZE, SIZE, 3)."""
    frames = np.empty((FRAMES, SIZE, SIZE, 3), np.uint8)
    frames[:] = BACKGROUNDS[clip.background]
    for f in range(FRAMES):
        frames[f][shape_mask(clip.shape, clip.centre(f), RADII[clip.size])] = COLOURS[clip.colour]
    return frames


def dataset(seed: int, count: int) -> list[Clip]:
    """`count` clips, the same for the same seed on any machine."""
    rng = random.Random(seed)
    return [sample_clip(rng) for _ in range(count)]
