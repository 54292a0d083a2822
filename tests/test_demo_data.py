"""The demo world: deterministic captioned clips with structure and detail, a held-out caption split, and the
analytic checker validated on ground truth (the autoencoder's round trip is checked with the shipped pair)."""

import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from fbgen.demo.checker import ATTRIBUTES, accuracy, read, score
from fbgen.demo.data import (
    BACKGROUNDS,
    COLOURS,
    FRAMES,
    GAP,
    PLACES,
    RADIUS,
    RELATIONS,
    SIZE,
    SPEEDS,
    WORDS,
    Clip,
    Thing,
    apart,
    dataset,
    held_out,
    render,
    sample_clip,  # fmt: skip
    shape_mask,
    start,
)


def test_clips_are_deterministic_and_captions_name_every_attribute():
    assert dataset(3, 20) == dataset(3, 20) and dataset(3, 20) != dataset(4, 20)
    a, b = dataset(3, 1)[0], dataset(3, 1)[0]
    assert np.array_equal(render(a), render(b))
    counts = set()
    for clip in dataset(0, 100):
        words = clip.caption.split()
        assert set(words) <= set(WORDS) and len(words) + 1 <= 24  # + </s>: the demo family's 24 text tokens
        truth = clip.attributes()
        counts.add(truth["count"])
        for colour, thing in truth["objects"].items():
            assert {colour, *thing.values()} <= set(words)
        assert (truth["relation"] is None) == (truth["count"] == 1)
    assert counts == {1, 2}


def test_held_out_captions_never_appear_in_training_clips():
    train, held = dataset(0, 2000), dataset(1, 200, held=True)
    assert not any(held_out(c.caption) for c in train) and all(held_out(c.caption) for c in held)
    assert not {c.caption for c in train} & {c.caption for c in held}
    every = [sample_clip(random.Random(i)).caption for i in range(4000)]
    assert 0.09 < np.mean([held_out(c) for c in every]) < 0.16  # about one in eight


def _drawable(caption: str, rng: random.Random, tries: int = 20000) -> bool:
    """Whether the world can lay out a clip with this caption (every box inside, the relation true every frame)."""
    objects, background = caption.removesuffix(" background").rsplit(" on a ", 1)
    words = [o.split() for o in objects.split(" and ")]
    places = [w.pop(4) for w in words if len(w) == 8]  # the place word after the shape, when there are two
    relation = next((r for r, p in PLACES.items() if list(p) == places), None)
    assert background in BACKGROUNDS and all(len(w) == 7 and w[4] == "moving" for w in words), caption
    assert (relation is None) == (len(words) == 1), caption
    for _ in range(tries):
        things = [Thing(colour, shape, texture, direction, speed, start(rng, direction, speed))
                  for _a, colour, texture, shape, _moving, direction, speed in words]  # fmt: skip
        if relation is None or apart(*things, relation):
            return Clip(tuple(things), relation, background).caption == caption
    return False


def test_shipped_prompts_are_held_out_captions_the_world_can_draw():
    """The demo's prompts (configs, the packaged config, prompts/demo.txt) are captions the pair never saw, and ones
    the world can draw: a quick object beside another one moves across the relation's axis, never along it."""
    root = Path(__file__).parents[1]
    prompts = [line for line in (root / "prompts/demo.txt").read_text().splitlines() if not line.startswith("#")]
    for config in (root / "configs/demo.yaml", root / "fbgen/demo/demo.yaml"):
        prompts += yaml.safe_load(config.read_text())["prompts"]
    assert len(prompts) == 20
    rng = random.Random(0)
    assert all(held_out(p) and _drawable(p, rng) for p in prompts)
    assert not _drawable("a red plain square leftmost moving right quickly and a blue plain circle rightmost moving up "
                         "slowly on a gray background", rng)  # fmt: skip


def test_objects_stay_inside_apart_and_in_relation_and_every_frame_moves():
    for clip in dataset(1, 300):
        frames = render(clip)
        bg = np.array(BACKGROUNDS[clip.background])
        if len(clip.things) == 1:  # the drawn object moves 2 or 4 px a frame: at least half a latent pixel
            (y0, x0), (y1, x1) = (np.nonzero(np.any(f != bg, axis=-1)) for f in frames[:2])
            step = np.hypot(x1.mean() - x0.mean(), y1.mean() - y0.mean())
            assert step == pytest.approx(SPEEDS[clip.things[0].speed]) and step >= 2
        assert all(not np.array_equal(frames[f], frames[f + 1]) for f in range(FRAMES - 1))
        for f in frames:
            obj = np.any(f != bg, axis=-1)
            assert obj.any() and not (obj[0].any() or obj[-1].any() or obj[:, 0].any() or obj[:, -1].any())
        if clip.relation:
            a, b = clip.things
            axis, sign = RELATIONS[clip.relation]
            for f in range(FRAMES):
                along = sign * (a.centre(f)[axis] - b.centre(f)[axis])
                assert along >= GAP and along > abs(a.centre(f)[1 - axis] - b.centre(f)[1 - axis])  # its own axis
                assert max(abs(a.centre(f)[i] - b.centre(f)[i]) for i in (0, 1)) >= 2 * RADIUS + 2


def test_stripes_are_two_pixel_detail():
    striped = next(c for c in dataset(2, 200) if len(c.things) == 1 and c.things[0].texture == "striped")
    frame = render(striped)[0]
    x, y = (int(v) for v in striped.things[0].centre(0))
    column = frame[y - 4 : y + 4, x].astype(int).sum(axis=-1)
    changes = np.flatnonzero(np.diff(column))
    assert len(changes) >= 3 and set(np.diff(changes)) == {2}  # the tone flips every 2 rows


def test_shapes_rasterise_as_expected():
    circle, square, triangle = (shape_mask(s, (24, 24), 9) for s in ("circle", "square", "triangle"))
    assert square.sum() == 18 * 18 and abs(circle.sum() - np.pi * 81) < 12 and abs(triangle.sum() - 18 * 9) < 12


def test_checker_reads_ground_truth_clips():
    clips = dataset(7, 200) + dataset(8, 50, held=True)
    readings = [read(render(c)) for c in clips]
    acc = accuracy(readings, [c.attributes() for c in clips])
    assert acc["all"] >= 0.98 and min(acc[k] for k in ATTRIBUTES) >= 0.98, acc
    assert all(r.artifact == 0.0 for r in readings)


def test_checker_catches_each_kind_of_mistake():
    """Swapping what the caption binds (a colour's texture, an object's direction, the relation) or dropping an
    object is read as exactly that mistake."""
    clip = next(c for c in dataset(4, 100) if c.relation and c.things[0].texture != c.things[1].texture)
    reading = read(render(clip))
    truth = clip.attributes()
    a, b = truth["objects"]
    swapped = {**truth, "objects": {a: {**truth["objects"][a], "texture": truth["objects"][b]["texture"]},
                                    b: truth["objects"][b]}}  # fmt: skip
    assert score(reading, truth)["all"] == 1.0 and score(reading, swapped)["texture"] == 0.5
    opposite = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
    assert score(reading, {**truth, "relation": opposite[truth["relation"]]})["relation"] == 0.0
    single = type(clip)(clip.things[:1], None, clip.background)
    dropped = score(read(render(single)), truth)
    assert dropped["count"] == 0.0 and dropped["colour"] == 0.5 and "relation" in dropped
    # a smear of the second object's colour three times the largest object's area (a small model's failure) is not
    # that object, wherever its centre lies
    smeared = render(clip)
    x, y = (int(v) for v in clip.things[1].centre(0))
    smeared[:, max(0, y - 11) : y + 11, max(0, x - 11) : x + 11] = COLOURS[b]
    assert b not in read(smeared).objects and score(read(smeared), truth)["colour"] == 0.5


def test_checker_survives_noise_and_the_detail_score_rises_with_blur_and_noise():
    rng = np.random.default_rng(0)
    clips = dataset(8, 40)
    truths = [c.attributes() for c in clips]
    scores = []
    for sigma in (4, 12, 30):
        noisy = [np.clip(render(c) + rng.normal(0, sigma, (FRAMES, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
                 for c in clips]  # fmt: skip
        readings = [read(v) for v in noisy]
        if sigma <= 12:
            assert accuracy(readings, truths)["all"] >= 0.95
        scores.append(np.mean([r.artifact for r in readings]))
    assert 0 < scores[0] < scores[1] < scores[2]
    # a vertical box blur smears the 2-pixel stripes (and the edges): the detail score goes up
    striped = [c for c in clips if any(t.texture == "striped" for t in c.things)]
    sharp = [render(c).astype(float) for c in striped]
    blurred = [((v + np.roll(v, 1, axis=1) + np.roll(v, -1, axis=1)) / 3).astype(np.uint8) for v in sharp]
    assert np.mean([read(v).artifact for v in blurred]) > 0.01


def test_no_object_reads_as_none():
    reading = read(np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8))
    assert reading.background == "black" and reading.count == 0 and not reading.objects
