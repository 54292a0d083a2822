"""Reads a demo clip back from its frames, analytically, and scores its detail.

- background: the median colour of the border pixels, nearest of the known backgrounds;
- objects: pixels far from the background and close to a palette colour or its pale stripe tone are labelled with
  it (blurred edges, halfway to the background, are neither); a colour whose own tone covers enough pixels in most
  frames, and in all its tones no more than twice the world's largest object, is an object (the world gives objects
  distinct colours; a smear of a colour over a good part of the frame is not one of them); their number is the count;
- per object: its centroid track gives direction (dominant axis of the net displacement) and speed (its length per
  frame, threshold halfway between the two speeds); shape is the template (circle, square, triangle at the world's
  size, centred on the object's box) that overlaps it best, averaged over frames; texture is striped when a good
  part of its pixels have the pale tone;
- relation of two objects: which of above/below/left of/right of holds between their centres in most frames;
- detail/artifact score: how far the picture is off a clean render, the mean distance of each pixel to the nearest
  colour it should have (background, the objects' colours and tones), as a fraction of the maximum, plus the
  background's flicker between frames. Clean renders score 0; blurred stripes, smeared edges and noise raise it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fbgen.demo.data import BACKGROUNDS, COLOURS, DIRECTIONS, RADIUS, RELATIONS, SHAPES, SPEEDS, pale, shape_mask

FOREGROUND = 45.0  # colour distance from the background that counts as object
MIN_AREA = 24  # pixels of a colour in a frame that count as an object there (the smallest object has ~70)
MAX_AREA = 2 * (2 * RADIUS) ** 2  # ... and the most: twice the largest object (a square, 144 pixels)
STRIPED = 0.25  # fraction of an object's pixels in the pale tone above which it reads as striped
TONE = 70.0  # colour distance within which a pixel has a palette tone
OBJECT_KEYS = ("shape", "texture", "direction", "speed")
ATTRIBUTES = ("count", "colour", *OBJECT_KEYS, "relation", "background")  # what `score` reports, in table order


@dataclass
class Reading:
    count: int
    background: str
    objects: dict[str, dict[str, str]]  # colour → shape, texture, direction, speed, centres
    relations: set[tuple[str, str, str]]  # (colour A, relation, colour B) holding in most frames
    artifact: float


def _nearest(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda k: float(np.linalg.norm(colour - np.array(palette[k], float))))


def read(frames: np.ndarray) -> Reading:
    """What uint8 frames (F, H, W, 3) show."""
    video = frames.astype(float)
    count, size = video.shape[0], video.shape[1]
    border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]]).reshape(-1, 3)
    background = np.median(border, axis=0)
    foreground = np.linalg.norm(video - background, axis=-1) > FOREGROUND
    tones = np.array([[COLOURS[c], pale(c)] for c in COLOURS], float)  # (colours, 2, 3)
    distance = np.linalg.norm(video[..., None, None, :] - tones, axis=-1)  # (F, H, W, colours, 2)
    flat = distance.reshape(*distance.shape[:3], -1)
    nearest = flat.argmin(axis=-1)
    foreground &= flat.min(axis=-1) < TONE
    label, is_pale = nearest // 2, nearest % 2 == 1
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    objects: dict[str, dict] = {}
    for i, colour in enumerate(COLOURS):
        masks = foreground & (label == i)
        present = ((masks & ~is_pale).sum(axis=(1, 2)) >= MIN_AREA // 2) & (masks.sum(axis=(1, 2)) <= MAX_AREA)
        if present.sum() <= count // 2:
            continue
        track = np.array([[xs[m].mean(), ys[m].mean()] if p else [np.nan, np.nan] for m, p in zip(masks, present)])
        frames_in = np.flatnonzero(present)
        moved = track[frames_in[-1]] - track[frames_in[0]]
        axis = int(abs(moved[1]) > abs(moved[0]))
        sign = int(np.sign(moved[axis])) or 1
        direction = next(d for d, v in DIRECTIONS.items() if v[axis] == sign and v[1 - axis] == 0)
        per_frame = abs(moved[axis]) / max(1, frames_in[-1] - frames_in[0])
        speed = max(SPEEDS, key=SPEEDS.get) if per_frame > sum(SPEEDS.values()) / 2 else min(SPEEDS, key=SPEEDS.get)
        objects[colour] = {"shape": _shape(masks[present], size), "direction": direction, "speed": speed,
                           "texture": "striped" if is_pale[masks].mean() > STRIPED else "plain",
                           "track": track}  # fmt: skip
    relations = set()
    for a in objects:
        for b in objects:
            if a != b:
                delta = objects[a]["track"] - objects[b]["track"]  # (F, 2), NaN where either is missing
                for name, (axis, sign) in RELATIONS.items():
                    if np.nanmean(sign * delta[:, axis] > 0) > 0.5:
                        relations.add((a, name, b))
    colours = [np.array(c, float) for o in objects for c in (COLOURS[o], pale(o))]
    return Reading(len(objects), _nearest(background, BACKGROUNDS),
                   {c: {k: v for k, v in o.items() if k != "track"} for c, o in objects.items()}, relations,
                   _artifact(video, background, colours, foreground))  # fmt: skip


def _shape(masks: np.ndarray, size: int) -> str:
    """The template whose overlap (IoU) with the object is best on average over frames. The object is what its
    colour covers within a box around its median pixel (stray pixels of the colour elsewhere do not count); the
    templates are centred on that part's box, each at the size that fits best (a soft edge grows or shrinks an
    object by a pixel or two without changing its shape)."""
    scores = dict.fromkeys(SHAPES, 0.0)
    ys_all, xs_all = np.mgrid[0:size, 0:size]
    for m in masks:
        ys, xs = np.nonzero(m)
        cx, cy = np.median(xs), np.median(ys)
        near = m & (np.abs(xs_all - cx) <= RADIUS + 3) & (np.abs(ys_all - cy) <= RADIUS + 3)
        if not near.any():  # the median falls between two blobs of the colour: take them all
            near = m
        ys, xs = np.nonzero(near)
        centre = ((xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2)
        for shape in SHAPES:
            templates = (shape_mask(shape, centre, RADIUS + grow, size) for grow in (-1, 0, 1, 2))
            scores[shape] += max((t & near).sum() / max(1, (t | near).sum()) for t in templates)
    return max(scores, key=scores.get)


def _artifact(video: np.ndarray, background: np.ndarray, colours: list[np.ndarray], foreground: np.ndarray) -> float:
    nearest = np.linalg.norm(video - background, axis=-1)
    for c in colours:
        nearest = np.minimum(nearest, np.linalg.norm(video - c, axis=-1))
    off_palette = float(nearest.mean() / (255 * np.sqrt(3)))
    still = ~(foreground[1:] | foreground[:-1])
    flicker = float(np.abs(np.diff(video, axis=0)).mean(axis=-1)[still].mean() / 255) if still.any() else 0.0
    return off_palette + flicker


def score(reading: Reading, truth: dict) -> dict[str, float]:
    """Per attribute, the fraction the reading gets right: count, background and relation per clip; colour (the
    object is there), shape, texture, direction and speed per object of the caption (wrong when it is missing)."""
    objects = truth["objects"]
    out: dict[str, float] = {"count": float(reading.count == truth["count"]),
                             "background": float(reading.background == truth["background"])}  # fmt: skip
    out["colour"] = float(np.mean([c in reading.objects for c in objects]))
    for key in OBJECT_KEYS:
        out[key] = float(np.mean([reading.objects.get(c, {}).get(key) == t[key] for c, t in objects.items()]))
    if truth["relation"] is not None:
        a, b = objects
        out["relation"] = float((a, truth["relation"], b) in reading.relations)
    out["all"] = float(all(v == 1.0 for v in out.values()))
    return out


def accuracy(readings: list[Reading], truths: list[dict]) -> dict[str, float]:
    """Per attribute and for everything at once: the mean of `score` over clips (relation over two-object clips)."""
    scores = [score(r, t) for r, t in zip(readings, truths)]
    return {k: float(np.mean([s[k] for s in scores if k in s])) for k in (*ATTRIBUTES, "all")}
