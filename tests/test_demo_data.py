"""The demo world: deterministic captioned clips, and the analytic checker validated on ground truth."""

import numpy as np

from fbgen.demo.checker import accuracy, read
from fbgen.demo.data import BACKGROUNDS, SIZE, WORDS, dataset, render, shape_mask


def test_clips_are_deterministic_and_captions_name_every_attribute():
    assert dataset(3, 20) == dataset(3, 20) and dataset(3, 20) != dataset(4, 20)
    a, b = dataset(3, 1)[0], dataset(3, 1)[0]
    assert np.array_equal(render(a), render(b))
    for clip in dataset(0, 50):
        words = clip.caption.split()
        assert set(words) <= set(WORDS)
        assert set(clip.attributes().values()) <= set(words)


def test_the_object_stays_whole_inside_the_frame():
    for clip in dataset(1, 400):
        frames = render(clip)
        bg = np.array(BACKGROUNDS[clip.background])
        for f in frames:
            obj = np.any(f != bg, axis=-1)
            assert obj.any() and not (obj[0].any() or obj[-1].any() or obj[:, 0].any() or obj[:, -1].any())


def test_shapes_rasterise_as_expected():
    circle, square, triangle = (shape_mask(s, (24, 24), 9) for s in ("circle", "square", "triangle"))
    assert square.sum() == 18 * 18 and abs(circle.sum() - np.pi * 81) < 12 and abs(triangle.sum() - 18 * 9) < 12


def test_checker_reads_ground_truth_clips():
    clips = dataset(7, 300)
    readings = [read(render(c)) for c in clips]
    acc = accuracy(readings, [c.attributes() for c in clips])
    assert acc["all"] >= 0.98, acc
    assert all(r.artifact == 0.0 for r in readings)


def test_checker_survives_noise_and_scores_it():
    rng = np.random.default_rng(0)
    clips = dataset(8, 60)
    scores = []
    for sigma in (4, 12, 30):
        noisy = [np.clip(render(c) + rng.normal(0, sigma, (9, SIZE, SIZE, 3)), 0, 255).astype(np.uint8) for c in clips]
        readings = [read(v) for v in noisy]
        if sigma <= 12:
            assert accuracy(readings, [c.attributes() for c in clips])["all"] >= 0.95
        scores.append(np.mean([r.artifact for r in readings]))
    assert 0 < scores[0] < scores[1] < scores[2]


def test_no_object_reads_as_none():
    frames = np.zeros((9, SIZE, SIZE, 3), np.uint8)
    reading = read(frames)
    assert reading.attributes["background"] == "black" and reading.attributes["shape"] is None
