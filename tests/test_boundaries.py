"""The automatic boundary rule on synthetic curves: U, flat, monotone, noisy, and across step counts."""

import math
import random

import pytest

from fbgen.core.boundaries import auto_boundaries
from fbgen.core.schedule import stage_starts


def sigmas(n):
    return [1 - i / n for i in range(n)]


def u_curve(n, noise=0.0, seed=0):
    rng = random.Random(seed)
    # high early, a low middle from ~30% to ~75%, rising again at the end (the FlowBlending picture)
    xs = [(i + 0.5) / n for i in range(n)]
    return [0.05 + 0.6 * math.exp(-x / 0.08) + 0.4 * max(0.0, x - 0.75) / 0.25 + rng.gauss(0, noise) for x in xs]


def test_u_shape_gives_an_early_and_a_late_boundary():
    result = auto_boundaries(u_curve(50), sigmas(50))
    assert result["shape"] == "U-shaped"
    f1, f2 = result["fractions"]
    assert 0.1 <= f1 <= 0.35 and 0.75 <= f2 <= 0.9


@pytest.mark.parametrize("n", [20, 50, 100])
def test_robust_to_step_count(n):
    reference = auto_boundaries(u_curve(50), sigmas(50))["fractions"]
    fractions = auto_boundaries(u_curve(n), sigmas(n))["fractions"]
    assert fractions == pytest.approx(reference, abs=0.06)


@pytest.mark.parametrize("seed", range(5))
def test_robust_to_noise(seed):
    clean = auto_boundaries(u_curve(50), sigmas(50))["steps"]
    noisy = auto_boundaries(u_curve(50, noise=0.02, seed=seed), sigmas(50))["steps"]
    assert abs(noisy[0] - clean[0]) <= 3 and abs(noisy[1] - clean[1]) <= 3


def test_flat_keeps_the_paper_boundaries():
    result = auto_boundaries([0.3 + 0.001 * (i % 3) for i in range(40)], sigmas(40))
    assert result["shape"] == "flat" and result["fractions"] == [0.4, 0.8]


def test_falling_curve_keeps_the_paper_late_boundary():
    result = auto_boundaries([1.0 / (1 + i) for i in range(50)], sigmas(50))
    assert result["shape"] == "falling" and result["fractions"][1] == 0.8 and result["steps"][0] < 20


def test_rising_curve_says_so():
    result = auto_boundaries([0.1 + 0.02 * i for i in range(50)], sigmas(50))
    assert result["shape"] == "rising" and "LLL" in result["note"]
    assert 1 <= result["steps"][0] < result["steps"][1] <= 49


def test_sigma_thresholds_switch_at_the_same_steps():
    s = [1 - (i / 30) ** 0.7 for i in range(30)]
    result = auto_boundaries(u_curve(30), s)
    assert stage_starts(result["sigmas"], "sigma", [x * 1000 for x in s]) == result["steps"]
    assert stage_starts(result["fractions"], "fraction", s) == result["steps"]


def test_a_climb_out_of_pure_noise_before_the_u_is_read_past():
    """From sigma 1 both models predict the caption's average picture, so a real pair's curve can open low and
    climb to its early peak (the shipped demo pair's does): the U after the peak still places the boundaries."""
    n = 50
    u = u_curve(n)
    climb = [0.0, 0.0, 0.0, 0.15, 0.3, *u[5:]]  # opens below the U's floor (0.05), climbs to its fall
    result = auto_boundaries(climb, sigmas(n))
    assert result["shape"] == "U-shaped"
    f1, f2 = result["fractions"]
    assert 0.1 <= f1 <= 0.35 and 0.75 <= f2 <= 0.9
    assert result["fractions"][1] == auto_boundaries(u, sigmas(n))["fractions"][1]
    assert 3 <= result["early_peak_step"] <= 5 and 15 <= result["low_step"] <= 37  # the climb's top; the U's floor
