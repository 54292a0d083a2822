"""Reads a demo clip's attributes back from its frames, analytically, and scores artifacts.

- background: the median colour of the border pixels, nearest of the known backgrounds;
- object: pixels far from the background; colour: their median, nearest of the palette;
- motion: the object's centroid track; direction from the dominant axis of the net displacement, speed from its
  length per frame (threshold halfway between the two speeds);
- shape and size: the rendered template (each shape, each size) at the measured centre that overlaps the object
  best (IoU), averaged over frames;
- artifacts: energy off the clean two-colour picture (mean distance of each pixel to the nearer of the background
  and object colours, as a fraction of the maximum) plus temporal flicker of the background (mean absolute change
  between frames where the object is absent). Clean renders score 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fbgen.demo.data import BACKGROUNDS, COLOURS, DIRECTIONS, RADII, SHAPES, SPEEDS, shape_mask

FOREGROUND = 60.0  # colour distance from the background that counts as object


@dataclass
class Reading:
    attributes: dict[str, str | None]
    artifact: float


def _nearest(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda k: float(np.linalg.norm(colour - np.array(palette[k], float))))


def read(frames: np.ndarray) -> Reading:
    """Attributes (None where the frames show no object) and the artifact score of uint8 frames (F, H, W, 3)."""
    video = frames.astype(float)
    count, size = video.shape[0], video.shape[1]
    border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]]).reshape(-1, 3)
    background = np.median(border, axis=0)
    masks = np.linalg.norm(video - background, axis=-1) > FOREGROUND
    if masks.sum(axis=(1, 2)).min() == 0:
        return Reading({"background": _nearest(background, BACKGROUNDS)} | dict.fromkeys(
            ("shape", "colour", "size", "direction", "speed")), _artifact(video, background, None, masks))  # fmt: skip
    colour = np.median(video[masks], axis=0)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    track = np.array([[xs[m].mean(), ys[m].mean()] for m in masks])
    moved = track[-1] - track[0]
    axis = int(abs(moved[1]) > abs(moved[0]))
    sign = int(np.sign(moved[axis])) or 1
    direction = next(d for d, v in DIRECTIONS.items() if v[axis] == sign and v[1 - axis] == 0)
    per_frame = abs(moved[axis]) / (count - 1)
    speed = "quickly" if per_frame > sum(SPEEDS.values()) / 2 else "slowly"
    scores = {}
    for shape in SHAPES:
        for size_name, radius in RADII.items():
            ious = []
            for m in masks:
                ys_m, xs_m = np.nonzero(m)  # template centred on the object's bounding box
                centre = ((xs_m.min() + xs_m.max() + 1) / 2, (ys_m.min() + ys_m.max() + 1) / 2)
                t = shape_mask(shape, centre, radius, size)
                ious.append((t & m).sum() / max(1, (t | m).sum()))
            scores[(shape, size_name)] = float(np.mean(ious))
    shape, size_name = max(scores, key=scores.get)
    attributes = {
        "shape": shape, "colour": _nearest(colour, COLOURS), "size": size_name, "direction": direction,
        "speed": speed, "background": _nearest(background, BACKGROUNDS),
    }  # fmt: skip
    return Reading(attributes, _artifact(video, background, colour, masks))


def _artifact(video: np.ndarray, background: np.ndarray, colour: np.ndarray | None, masks: np.ndarray) -> float:
    to_bg = np.linalg.norm(video - background, axis=-1)
    nearest = to_bg if colour is None else np.minimum(to_bg, np.linalg.norm(video - colour, axis=-1))
    off_palette = float(nearest.mean() / (255 * np.sqrt(3)))
    still = ~(masks[1:] | masks[:-1])
    flicker = float(np.abs(np.diff(video, axis=0)).mean(axis=-1)[still].mean() / 255) if still.any() else 0.0
    return off_palette + flicker


def accuracy(readings: list[Reading], truths: list[dict[str, str]]) -> dict[str, float]:
    """Per attribute and for all attributes at once: the fraction read correctly."""
    keys = list(truths[0])
    out = {k: float(np.mean([r.attributes[k] == t[k] for r, t in zip(readings, truths)])) for k in keys}
    out["all"] = float(np.mean([all(r.attributes[k] == t[k] for k in keys) for r, t in zip(readings, truths)]))
    return out
