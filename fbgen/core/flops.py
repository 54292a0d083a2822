"""FLOPs of a plan from the per-forward FLOPs of its models (each family writes its own formula).

Convention: multiply-add = 2 FLOPs; only matrix products (linear layers, patch convolution, attention's QKᵀ and AV)
are counted — the same operations torch's FlopCounterMode counts, which the tests check this against. Norms,
activations, RoPE and modulation are elementwise and left out. One forward is batch 1; classifier-free guidance
runs a second (unconditional) forward, so a guided step costs two forwards. Text encoder and VAE are excluded
(they run once per video, not per step). Third-party attention kernels are invisible to FlopCounterMode; this
formula still counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fbgen.core.schedule import Plan

CONVENTION = (
    "analytic matmul FLOPs (multiply-add = 2) per transformer forward at batch 1; a CFG step counts two forwards; "
    "elementwise ops, text encoder and VAE excluded"
)


def plan_flops(plan: Plan, per_forward: Mapping[str, int], guidance: Mapping[str, float]) -> dict[str, Any]:
    """Total FLOPs of a plan, per model, and of the same run with the largest model at every step."""
    per_step = {m: per_forward[m] * forwards_per_step(guidance[m]) for m in per_forward}
    per_model = {m: plan.count(m) * per_step[m] for m in sorted(set(plan.models))}
    total = sum(per_model.values())
    largest = max(per_forward, key=lambda m: per_forward[m])
    large_only = plan.steps * per_step[largest]
    return {
        "total": total,
        "large_only": large_only,
        "ratio": total / large_only if large_only else math.nan,
        "saving": 1 - total / large_only if large_only else math.nan,
        "per_model": per_model,
        "per_forward": dict(per_forward),
        "per_step": [per_step[m] for m in plan.models],
        "convention": CONVENTION,
    }


def forwards_per_step(guidance_scale: float) -> int:
    """CFG runs an unconditional forward too, exactly when diffusers does: guidance_scale > 1."""
    return 2 if guidance_scale > 1.0 else 1


def executed_flops(flops: Mapping[str, Any], skipped_per_forward: Mapping[str, float]) -> dict[str, Any]:
    """The plan's FLOPs less what cache hooks skipped: `skipped_per_forward[m]` is model m's skipped block FLOPs,
    averaged over its forwards (`fbgen.engine.work`). Equal to the plan's total when nothing was skipped."""
    per_model = {
        m: round(total - total / flops["per_forward"][m] * skipped_per_forward.get(m, 0.0))
        for m, total in flops["per_model"].items()
    }
    executed = sum(per_model.values())
    large_only = flops["large_only"]
    return {
        "executed": executed,
        "executed_ratio": executed / large_only if large_only else math.nan,
        "executed_per_model": per_model,
    }
