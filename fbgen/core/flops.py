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

from fbgen.core.schedule import Plan

CONVENTION = (
    "analytic matmul FLOPs (multiply-add = 2) per transformer forward at batch 1; a CFG step counts two forwards; "
    "elementwise ops, text encoder and VAE excluded"
)


def _linear(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def _tokens(latent_shape: tuple[int, int, int], patch: tuple[int, int, int]) -> int:
    return math.prod(n // p for n, p in zip(latent_shape, patch))


def wan_block_flops(cfg: Mapping[str, Any], latent_shape: tuple[int, int, int], text_tokens: int) -> dict[str, int]:
    """One `WanTransformerBlock`, by the module that runs the work (the units a cache hook can skip).

    With S video tokens, L text tokens, width D and FFN width F: self-attention 4·S·D² (QKVO) + 4·S²·D;
    cross-attention 4·S·D² (Q, O) + 4·L·D² (K, V on the text) + 4·S·L·D; feed-forward 4·S·D·F.
    """
    s, length = _tokens(latent_shape, cfg["patch_size"]), text_tokens
    d, f = cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["ffn_dim"]
    return {
        "attn1": 4 * _linear(s, d, d) + 4 * s * s * d,  # q, k, v, out; QKᵀ and AV
        "attn2": 2 * _linear(s, d, d) + 2 * _linear(length, d, d) + 4 * s * length * d,
        "ffn": _linear(s, d, f) + _linear(s, f, d),
    }


def wan_forward_flops(cfg: Mapping[str, Any], latent_shape: tuple[int, int, int], text_tokens: int) -> int:
    """One `WanTransformer3DModel` forward (text-to-video) on a latent of (frames, height, width): its blocks, the
    patch, text and timestep embeddings, and the output projection."""
    s, length = _tokens(latent_shape, cfg["patch_size"]), text_tokens
    d, patch = cfg["num_attention_heads"] * cfg["attention_head_dim"], math.prod(cfg["patch_size"])
    embed = (
        _linear(s, cfg["in_channels"] * patch, d)  # patch embedding (Conv3d)
        + _linear(length, cfg["text_dim"], d) + _linear(length, d, d)  # text projection
        + _linear(1, cfg["freq_dim"], d) + _linear(1, d, d) + _linear(1, d, 6 * d)  # timestep embedding
    )  # fmt: skip
    head = _linear(s, d, cfg["out_channels"] * patch)
    return cfg["num_layers"] * sum(wan_block_flops(cfg, latent_shape, text_tokens).values()) + embed + head


def ltx_block_flops(cfg: Mapping[str, Any], latent_shape: tuple[int, int, int], text_tokens: int) -> dict[str, int]:
    """One `LTXVideoTransformerBlock`, by module. With S video tokens, L text tokens, width D and cross-attention
    input width C: self-attention 4·S·D² + 4·S²·D; cross-attention 4·S·D² + 4·L·C·D + 4·S·L·D; feed-forward 16·S·D².
    """
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    s, length = _tokens(latent_shape, (pt, p, p)), text_tokens
    d, c = cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["cross_attention_dim"]
    return {
        "attn1": 4 * _linear(s, d, d) + 4 * s * s * d,
        "attn2": 2 * _linear(s, d, d) + 2 * _linear(length, c, d) + 4 * s * length * d,
        "ff": _linear(s, d, 4 * d) + _linear(s, 4 * d, d),
    }


def ltx_forward_flops(cfg: Mapping[str, Any], latent_shape: tuple[int, int, int], text_tokens: int) -> int:
    """One `LTXVideoTransformer3DModel` forward on a latent of (frames, height, width)."""
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    s, length = _tokens(latent_shape, (pt, p, p)), text_tokens
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    embed = (
        _linear(s, cfg["in_channels"] * p * p * pt, d)  # proj_in
        + _linear(length, cfg["caption_channels"], d) + _linear(length, d, d)  # caption projection
        + _linear(1, 256, d) + _linear(1, d, d) + _linear(1, d, 6 * d)  # timestep embedding (AdaLayerNormSingle)
    )  # fmt: skip
    head = _linear(s, d, cfg["out_channels"])
    return cfg["num_layers"] * sum(ltx_block_flops(cfg, latent_shape, text_tokens).values()) + embed + head


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
