"""The demo world: captioned clips with structure and detail, deterministic from a seed; nothing is downloaded.

One or two objects, each with its own colour, shape, texture and straight-line motion, over a black or gray
background. Getting a caption right takes composition (how many objects, which attributes bind to which object,
where each is relative to the other, where each goes); getting the picture clean takes detail (a striped object's
2-pixel stripes, sharp edges). Every frame moves: positions are whole pixels and every object moves 2 or 4 pixels a
frame, so stripes and edges stay crisp. Captions come from a closed vocabulary in one fixed word order:

    "a red striped circle uppermost moving left slowly and a blue plain square lowermost moving up quickly on a gray
     background"

The relation between two objects ("red above blue") is said by a place word beside each object's name, not by one
word between the two names: a demo-sized text encoder trained from scratch binds a word to the name beside it, but
did not learn which name stands on which side of "above" (docs/BENCHMARKS.md, "Placing a named object at all").

A hash of the caption puts about one caption in eight in a held-out split (`held_out`): training never draws them,
evaluation draws only them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

SIZE = 48  # native frame size (square)
FRAMES = 9  # 2k+1: the demo autoencoder compresses time 2x, after a first frame of its own
RADIUS = 6  # half an object's bounding box, in pixels
STRIPE = 2  # rows per stripe: a striped object alternates 2 rows of its colour with 2 rows of its pale tone
PALE = 0.5  # a stripe's tone: the object's colour mixed this much with white (never a blend with the background,
# so a blurred edge does not read as a stripe)
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (60, 90, 235), "yellow": (230, 210, 40)}
BACKGROUNDS = {"black": (0, 0, 0), "gray": (100, 100, 100)}
SHAPES = ("circle", "square", "triangle")
TEXTURES = ("plain", "striped")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEEDS = {"slowly": 2, "quickly": 4}  # pixels per frame: at least half a latent pixel (4 px) per frame, so a
# latent frame (2 frames) moves at least one, and motion is more than a fraction of a token (8 px). Over a clip the
# two speeds part by 16 px, two tokens (2 vs 3 parted by one, and a large model ignored speed). A quick object
# crosses almost the whole frame, so beside another one it moves across the relation's axis, never along it
RELATIONS = {"above": (1, -1), "below": (1, 1), "left of": (0, -1), "right of": (0, 1)}  # (axis, sign of A - B)
PLACES = {"above": ("uppermost", "lowermost"), "below": ("lowermost", "uppermost"), "left of": ("leftmost",
          "rightmost"), "right of": ("rightmost", "leftmost")}  # each relation's place words for A, B  # fmt: skip
GAP = 8  # a relation holds by at least this many pixels between centres, in every frame
WORDS = ("a", "moving", "on", "background", "and", *COLOURS, *SHAPES, *TEXTURES, *DIRECTIONS, *SPEEDS,
         "uppermost", "lowermost", "leftmost", "rightmost", *BACKGROUNDS)  # fmt: skip
HELD_OUT = 8  # one caption in this many is held out of training


@dataclass(frozen=True)
class Thing:
    """One object: what it is, where it starts (top-left corner of its box, whole pixels) and how it moves."""

    colour: str
    shape: str
    texture: str
    direction: str
    speed: str
    start: tuple[int, int]

    def words(self, place: str = "") -> str:
        where = f" {place}" if place else ""
        return f"a {self.colour} {self.texture} {self.shape}{where} moving {self.direction} {self.speed}"

    def corner(self, frame: int) -> tuple[int, int]:
        dx, dy = DIRECTIONS[self.direction]
        step = SPEEDS[self.speed] * frame
        return self.start[0] + dx * step, self.start[1] + dy * step

    def centre(self, frame: int) -> tuple[float, float]:
        x, y = self.corner(frame)
        return x + RADIUS, y + RADIUS


@dataclass(frozen=True)
class Clip:
    things: tuple[Thing, ...]
    relation: str | None  # of things[0] to things[1]
    background: str

    @property
    def caption(self) -> str:
        places = PLACES[self.relation] if self.relation else ("",)
        objects = " and ".join(t.words(p) for t, p in zip(self.things, places))
        return f"{objects} on a {self.background} background"

    def attributes(self) -> dict[str, object]:
        """What the checker should read: count, background, relation, and per object (keyed by colour) its
        shape, texture, direction and speed."""
        return {"count": len(self.things), "background": self.background, "relation": self.relation,
                "objects": {t.colour: {"shape": t.shape, "texture": t.texture, "direction": t.direction,
                                       "speed": t.speed} for t in self.things}}  # fmt: skip


def held_out(caption: str) -> bool:
    """The evaluation split, fixed by the caption's text alone (the same on every machine and in every run)."""
    return int(hashlib.sha1(caption.encode()).hexdigest(), 16) % HELD_OUT == 0


def start(rng: random.Random, direction: str, speed: str) -> tuple[int, int]:
    """A random top-left corner from which the object's box stays inside the frame (1 pixel clear) all clip long."""
    travel = SPEEDS[speed] * (FRAMES - 1)
    dx, dy = DIRECTIONS[direction]
    box = 2 * RADIUS
    lo_x, hi_x = 1 + max(0, -dx) * travel, SIZE - box - 1 - max(0, dx) * travel
    lo_y, hi_y = 1 + max(0, -dy) * travel, SIZE - box - 1 - max(0, dy) * travel
    return rng.randint(lo_x, hi_x), rng.randint(lo_y, hi_y)


def _thing(rng: random.Random, colour: str) -> Thing:
    direction, speed = rng.choice(list(DIRECTIONS)), rng.choice(list(SPEEDS))
    corner = start(rng, direction, speed)
    return Thing(colour, rng.choice(SHAPES), rng.choice(TEXTURES), direction, speed, corner)


def apart(a: Thing, b: Thing, relation: str) -> bool:
    """Boxes never touch, and the relation holds by GAP pixels and along the main axis between the two (A above B:
    more apart vertically than horizontally), in every frame. So a caption names what one sees, not one of two
    relations that hold at once."""
    axis, sign = RELATIONS[relation]
    for f in range(FRAMES):
        ca, cb = a.centre(f), b.centre(f)
        along, across = sign * (ca[axis] - cb[axis]), abs(ca[1 - axis] - cb[1 - axis])
        if along < GAP or along <= across:
            return False
        if abs(ca[0] - cb[0]) < 2 * RADIUS + 2 and abs(ca[1] - cb[1]) < 2 * RADIUS + 2:
            return False
    return True


def sample_clip(rng: random.Random) -> Clip:
    """Random attributes (one object in three clips, two in the others, with distinct colours), a layout that keeps
    every box inside the frame and the relation true in every frame."""
    background = rng.choice(list(BACKGROUNDS))
    colours = rng.sample(list(COLOURS), 2)
    if rng.random() < 1 / 3:
        return Clip((_thing(rng, colours[0]),), None, background)
    relation = rng.choice(list(RELATIONS))
    while True:
        a, b = _thing(rng, colours[0]), _thing(rng, colours[1])
        if apart(a, b, relation):
            return Clip((a, b), relation, background)


def sample_split(rng: random.Random, held: bool) -> Clip:
    """A clip whose caption is in the held-out split (`held`) or in the training split."""
    while True:
        clip = sample_clip(rng)
        if held_out(clip.caption) == held:
            return clip


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


def pale(colour: str) -> tuple[int, int, int]:
    return tuple(round(c + (255 - c) * PALE) for c in COLOURS[colour])  # type: ignore[return-value]


def render(clip: Clip) -> np.ndarray:
    """uint8 frames (FRAMES, SIZE, SIZE, 3)."""
    frames = np.empty((FRAMES, SIZE, SIZE, 3), np.uint8)
    frames[:] = BACKGROUNDS[clip.background]
    rows = np.arange(SIZE)[:, None]
    for f in range(FRAMES):
        for thing in clip.things:
            mask = shape_mask(thing.shape, thing.centre(f), RADIUS)
            frames[f][mask] = COLOURS[thing.colour]
            if thing.texture == "striped":
                band = ((rows - thing.corner(f)[1]) // STRIPE) % 2 == 1
                frames[f][mask & band] = pale(thing.colour)
    return frames


def dataset(seed: int, count: int, held: bool = False) -> list[Clip]:
    """`count` clips of one split, the same for the same seed on any machine."""
    rng = random.Random(seed)
    return [sample_split(rng, held) for _ in range(count)]
