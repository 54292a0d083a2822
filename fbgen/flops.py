"""Analytic FLOPs of a transformer forward, and their sum over a plan.

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

from fbgen.schedule import Plan

CONVENTION = (
    "analytic matmul FLOPs (multiply-add = 2) per transformer forward at batch 1; a CFG step counts two forwards; "
    "elementwise ops, text encoder and VAE excluded"
)


def _linear(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def wan_forward_flops(cfg: Mapping[str, Any], latent_shape: tuple[int, int, int], text_tokens: int) -> int:
    """One `WanTransformer3DModel` forward (text-to-video) on a latent of (frames, height, width).

    Per block, with S video tokens, L text tokens, width D and FFN width F:
    12·S·D² (self-attn QKVO + cross-attn Q,O) + 4·L·D² (cross-attn K,V) + 4·S·D·F (FFN) + 4·S²·D + 4·S·L·D.
    """
    pt, ph, pw = cfg["patch_size"]
    frames, height, width = latent_shape
    s = (frames // pt) * (height // ph) * (width // pw)
    length = text_tokens
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    f = cfg["ffn_dim"]
    patch = pt * ph * pw
    block = (
        4 * _linear(s, d, d)  # self-attention q, k, v, out
        + 2 * _linear(s, d, d)  # cross-attention q, out
        + 2 * _linear(length, d, d)  # cross-attention k, v on the text tokens
        + _linear(s, d, f) + _linear(s, f, d)  # feed-forward
        + 4 * s * s * d  # self-attention QKᵀ and AV
        + 4 * s * length * d  # cross-attention QKᵀ and AV
    )  # fmt: skip
    embed = (
        _linear(s, cfg["in_channels"] * patch, d)  # patch embedding (Conv3d)
        + _linear(length, cfg["text_dim"], d) + _linear(length, d, d)  # text projection
        + _linear(1, cfg["freq_dim"], d) + _linear(1, d, d) + _linear(1, d, 6 * d)  # timestep embedding
    )  # fmt: skip
    head = _linear(s, d, cfg["out_channels"] * patch)
    return cfg["num_layers"] * block + embed + head


def ltx_forward_flops(cfg: Mapping[str, Any], latent_shape: tuple[int, int, int], text_tokens: int) -> int:
    """One `LTXVideoTransformer3DModel` forward on a latent of (frames, height, width).

    Per block, with S video tokens, L text tokens, width D, cross-attention input width C and FFN width 4D:
    12·S·D² (self-attn QKVO + cross-attn Q,O) + 4·L·C·D (cross-attn K,V) + 16·S·D² (FFN) + 4·S²·D + 4·S·L·D.
    """
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    frames, height, width = latent_shape
    s = (frames // pt) * (height // p) * (width // p)
    length = text_tokens
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    c = cfg["cross_attention_dim"]
    block = (
        6 * _linear(s, d, d)  # self-attention q, k, v, out; cross-attention q, out
        + 2 * _linear(length, c, d)  # cross-attention k, v on the text tokens
        + _linear(s, d, 4 * d) + _linear(s, 4 * d, d)  # feed-forward
        + 4 * s * s * d + 4 * s * length * d  # attention QKᵀ and AV, self and cross
    )  # fmt: skip
    embed = (
        _linear(s, cfg["in_channels"] * p * p * pt, d)  # proj_in
        + _linear(length, cfg["caption_channels"], d) + _linear(length, d, d)  # caption projection
        + _linear(1, 256, d) + _linear(1, d, d) + _linear(1, d, 6 * d)  # timestep embedding (AdaLayerNormSingle)
    )  # fmt: skip
    head = _linear(s, d, cfg["out_channels"])
    return cfg["num_layers"] * block + embed + head


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
