"""Automatic stage boundaries from a large-vs-small velocity divergence curve. Pure: no torch, no models.

The curve is, per denoising step, how far the small model's velocity is from the large model's on the large model's
own trajectory. FlowBlending's premise is a U: the models disagree early (structure, motion), agree in the middle,
and disagree again late (fine detail). The U may open with a climb: from pure noise (sigma 1) neither model sees
anything of the video yet, so both predict the caption's average picture and agree more than they will a few steps
later, once each lays out its own structure. The rule, with N steps and d the curve:

1. Smooth d with a centred moving average over w = 2·⌊N/20⌋+1 steps (5 at 50 steps), so noise and the step count
   change the answer little; call it s.
2. **Flat** — if max(s) − min(s) < 10% of max(s), the curve cannot place boundaries: keep the paper's [0.4, 0.8].
3. The **early peak** p = the step of the largest s in the first half (step 0 when the curve falls from the start);
   the steps up to it are the large model's. m = the step of the smallest s from p on, lo = s[m].
4. **Early boundary** b1 = the first step from p to m where s has fallen into the low region,
   s ≤ lo + α·(s[p] − lo) with α = 0.25; at least 1 (the large model always lays out the structure).
5. **Late boundary** b2 = the first step after m where s rises out of the low region again,
   s > lo + α·(max(s[m:]) − lo); at most N−1, and after b1.
6. **No U** — if s never rises after m ("falling": the small model keeps agreeing to the end), the divergence says
   nothing about the late detail the paper hands back to the large model, so b2 keeps the paper's late fraction,
   0.8. If s does not fall after its early peak by 10% of max(s) ("rising": the small model agrees, if anywhere,
   only at the very start), steps 4-5 read the curve from its overall minimum instead, giving a short S stage or
   none worth having: the note says so and the pair is better run as LLL.

Boundaries come out as step indices, step fractions (b/N) and sigma thresholds (midway between the sigmas of steps
b−1 and b, so `boundary_unit: sigma` switches at exactly the same step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ALPHA = 0.25
FLAT = 0.10
PAPER_BOUNDARIES = (0.4, 0.8)


def smooth(curve: Sequence[float]) -> list[float]:
    n = len(curve)
    half = n // 20
    return [sum(curve[max(0, i - half) : i + half + 1]) / len(curve[max(0, i - half) : i + half + 1]) for i in range(n)]


def auto_boundaries(curve: Sequence[float], sigmas: Sequence[float]) -> dict[str, Any]:
    """Early and late boundary of an LSL schedule from a divergence curve (see the module docstring)."""
    n = len(curve)
    if n < 3 or len(sigmas) < n:
        raise ValueError("need at least 3 steps and one sigma per step")
    s = smooth(curve)
    top = max(s)
    if top - min(s) <= FLAT * top:
        b1, b2 = (round(f * n) for f in PAPER_BOUNDARIES)
        return _result(b1, b2, n, sigmas, None, "flat", "divergence varies by <10%: no boundary can be read off it; "
                                                  "the paper's [0.4, 0.8] is kept")  # fmt: skip
    p = max(range((n + 1) // 2), key=s.__getitem__)
    m = min(range(p, n), key=s.__getitem__)
    rising = s[p] - s[m] < FLAT * top
    if rising:  # no fall after the early peak: read the curve from its overall minimum
        m = min(range(n), key=s.__getitem__)
        p = max(range(m + 1), key=s.__getitem__)
    lo = s[m]
    early_level = lo + ALPHA * (s[p] - lo)
    b1 = max(1, next(i for i in range(p, m + 1) if s[i] <= early_level))
    late_level = lo + ALPHA * (max(s[m:]) - lo)
    rise = next((i for i in range(m + 1, n) if s[i] > late_level), None)
    if rise is None or max(s[m:]) - lo < FLAT * top:
        shape, b2 = "falling", max(round(PAPER_BOUNDARIES[1] * n), b1 + 1)
        note = "no late rise: the small model agrees to the end; the late boundary keeps the paper's 0.8"
    else:
        shape, b2 = ("rising" if rising else "U-shaped"), rise
        note = ("the small model agrees only at the very start: a short S stage at best; consider LLL"
                if rising else "U-shaped: low middle region between the boundaries")  # fmt: skip
    b2 = min(max(b2, b1 + 1), n - 1)
    b1 = min(b1, b2 - 1)
    return _result(b1, b2, n, sigmas, (p, m), shape, note)


def _result(b1: int, b2: int, n: int, sigmas: Sequence[float], read: tuple[int, int] | None, shape: str, note: str
            ) -> dict[str, Any]:  # fmt: skip
    def threshold(b: int) -> float:
        return (sigmas[b - 1] + sigmas[b]) / 2 if 0 < b < n else float(sigmas[min(b, n - 1)])

    return {
        "steps": [b1, b2],
        "fractions": [round(b1 / n, 4), round(b2 / n, 4)],
        "sigmas": [round(threshold(b1), 6), round(threshold(b2), 6)],
        "shape": shape,
        "early_peak_step": read[0] if read else None,  # where the rule read the U: its early peak and its bottom
        "low_step": read[1] if read else None,
        "note": note,
        "rule": f"moving average over 2*floor(N/20)+1 steps; early peak = max of the first half; low region = min "
        f"after it + {ALPHA} x (side max - min); flat if range < {FLAT:.0%} of max",
    }
