"""Wan 2.1 text-to-video (1.3B / 14B) and the Wan 2.2 experts, diffusers format: a thin adapter over `WanPipeline`'s
own methods (prompt encoding, noise), so fbgen's LLL is diffusers' result. Only the loop is fbgen's.

Wan's CFG is two forwards (conditional, unconditional); its VAE runs in float32 and its latents are normalised by
the VAE config's `latents_mean` / `latents_std`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import WanPipeline

from fbgen.core.sampler import Step
from fbgen.core.solvers import make_scheduler
from fbgen.families.base import FamilySpec, LatentShape, PipelineFamily, Video, to_uint8


def linear_flops(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def tokens(latent_shape: LatentShape, patch: tuple[int, int, int]) -> int:
    return math.prod(n // p for n, p in zip(latent_shape, patch))


def block_flops(cfg: Mapping[str, Any], latent_shape: LatentShape, text_tokens: int) -> dict[str, int]:
    """One `WanTransformerBlock`, by the module that runs the work (the units a cache hook can skip).

    With S video tokens, L text tokens, width D and FFN width F: self-attention 4·S·D² (QKVO) + 4·S²·D;
    cross-attention 4·S·D² (Q, O) + 4·L·D² (K, V on the text) + 4·S·L·D; feed-forward 4·S·D·F.
    """
    s, length = tokens(latent_shape, cfg["patch_size"]), text_tokens
    d, f = cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["ffn_dim"]
    return {
        "attn1": 4 * linear_flops(s, d, d) + 4 * s * s * d,  # q, k, v, out; QKᵀ and AV
        "attn2": 2 * linear_flops(s, d, d) + 2 * linear_flops(length, d, d) + 4 * s * length * d,
        "ffn": linear_flops(s, d, f) + linear_flops(s, f, d),
    }


def forward_flops(cfg: Mapping[str, Any], latent_shape: LatentShape, text_tokens: int) -> int:
    """One `WanTransformer3DModel` forward (text-to-video) on a latent of (frames, height, width): its blocks, the
    patch, text and timestep embeddings, and the output projection."""
    s, length = tokens(latent_shape, cfg["patch_size"]), text_tokens
    d, patch = cfg["num_attention_heads"] * cfg["attention_head_dim"], math.prod(cfg["patch_size"])
    embed = (
        linear_flops(s, cfg["in_channels"] * patch, d)  # patch embedding (Conv3d)
        + linear_flops(length, cfg["text_dim"], d) + linear_flops(length, d, d)  # text projection
        + linear_flops(1, cfg["freq_dim"], d) + linear_flops(1, d, d) + linear_flops(1, d, 6 * d)  # timestep
    )  # fmt: skip
    head = linear_flops(s, d, cfg["out_channels"] * patch)
    return cfg["num_layers"] * sum(block_flops(cfg, latent_shape, text_tokens).values()) + embed + head


def activation_bytes(cfg: Mapping[str, Any], latent_shape: LatentShape, text_tokens: int, itemsize: int) -> int:
    """Peak of one forward beyond the weights, at batch 1 (CFG runs its forwards one after another): in a block
    the attention phase holds ~6 S×D tensors (input, norm, q, k, v, output; the attention kernel itself keeps no
    S×S matrix) and the feed-forward ~2 S×D + 2 S×F (projection and activation); plus the text states and the
    float32 latents the scheduler keeps (~4 copies). An estimate, checked against measured GPU peaks when one is
    available (docs/BENCHMARKS.md)."""
    s, d, f = tokens(latent_shape, cfg["patch_size"]), cfg["num_attention_heads"] * cfg["attention_head_dim"], \
        cfg["ffn_dim"]  # fmt: skip
    block = max(6 * s * d, 2 * s * d + 2 * s * f) * itemsize
    latents = 4 * cfg["in_channels"] * math.prod(latent_shape) * 4
    return block + 2 * text_tokens * d * itemsize + latents


def decode_bytes(vae_config: Mapping[str, Any], height: int, width: int, num_frames: int, tiled: bool) -> int:
    """The Wan VAE decodes one latent frame (4 video frames) at a time with a feature cache: its peak is the
    full-resolution stage, ~4 float32 tensors of base_dim × 4 frames × H × W, plus the decoded video. Tiling
    (diffusers' 256-pixel tiles) bounds H × W by one tile."""
    channels = vae_config.get("base_dim", 96) * vae_config.get("dim_mult", [1])[0]
    area = min(height * width, 256 * 256) if tiled else height * width
    return 4 * 4 * channels * 4 * area + 4 * 3 * num_frames * height * width


def latent_shape(vae_config: Mapping[str, Any], height: int, width: int, num_frames: int) -> LatentShape:
    """Latent (frames, height, width) from the VAE config, as `WanPipeline` reads its scale factors."""
    temporal = vae_config.get("scale_factor_temporal", 4)
    spatial = vae_config.get("scale_factor_spatial", 8)
    return (num_frames - 1) // temporal + 1, height // spatial, width // spatial


def scheduler(sampling: Any, vae_config: Mapping[str, Any], checkpoint: Mapping[str, Any] | None, device: str) -> Any:
    """The config's solver with a fixed shift and `steps` timesteps (the checkpoint's scheduler config is compared
    with it and any difference stated by the engine, never silently replaced)."""
    sched = make_scheduler(sampling.solver, sampling.shift)
    sched.set_timesteps(sampling.steps, device=device)
    return sched


@dataclass
class Prompt:
    """Encoded conditioning of one prompt (negative embeddings only when some model uses CFG)."""

    positive: torch.Tensor
    negative: torch.Tensor | None


class WanFamily(PipelineFamily):
    """Shared UMT5 text encoder + Wan VAE, one transformer per schedule letter."""

    pipeline_class = WanPipeline
    prompt_class = Prompt
    vae_dtype = torch.float32  # as the official pipelines run it

    @torch.no_grad()
    def predict(self, letter: str, cond: Prompt, latents: torch.Tensor, t: torch.Tensor, cfg: bool,
                step: Step | None, video: Video) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """One model's conditional and (with CFG) unconditional velocity, two forwards as `WanPipeline` does."""
        model = self.transformers[letter]
        x = latents.to(model.dtype)
        timestep = t.expand(x.shape[0])
        where = step.context() if step else {}
        with model.cache_context("cond", **where):
            positive = model(hidden_states=x, timestep=timestep, encoder_hidden_states=cond.positive,
                             return_dict=False)[0]  # fmt: skip
        if not cfg:
            return positive, None
        with model.cache_context("uncond", **where):
            negative = model(hidden_states=x, timestep=timestep, encoder_hidden_states=cond.negative,
                             return_dict=False)[0]  # fmt: skip
        return positive, negative

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, video: Video, generator: torch.Generator | None = None) -> np.ndarray:
        """Latents → uint8 frames (F, H, W, 3), with the VAE's latent normalisation undone as WanPipeline does."""
        vae = self.pipe.vae
        latents = latents.to(vae.device, vae.dtype)
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
        std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
        frames = vae.decode(latents * std + mean, return_dict=False)[0]
        return to_uint8(self.pipe.video_processor.postprocess_video(frames, output_type="np")[0])

    @torch.no_grad()
    def autoencode(self, frames: np.ndarray, video: Video) -> np.ndarray:
        """uint8 frames through the VAE and back, normalised as the transformers see latents: the best any
        trajectory can end in (the demo's results use it as a ceiling)."""
        vae = self.pipe.vae
        pixels = torch.from_numpy(np.asarray(frames)).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
        z = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(z)
        std = torch.tensor(vae.config.latents_std).view(shape).to(z)
        return self.decode((z - mean) / std, video)


SPEC = FamilySpec(
    name="wan",
    adapter=lambda: WanFamily,
    size_multiple=16,
    frame_step=4,
    max_sequence_length=512,
    default_shift=3.0,
    default_size=(480, 832, 81),
    default_fps=16,
    solvers=("unipc", "euler", "dpmpp"),
    pair_keys=("in_channels", "out_channels", "patch_size", "text_dim"),
    flops_keys=("patch_size", "num_attention_heads", "attention_head_dim", "ffn_dim", "in_channels", "out_channels",
                "text_dim", "freq_dim", "num_layers"),  # fmt: skip
    vae_keys=("z_dim", "base_dim", "dim_mult", "num_res_blocks", "temperal_downsample", "latents_mean", "latents_std"),
    latent_channels=("in_channels", "z_dim"),
    forward_flops=forward_flops,
    block_flops=block_flops,
    latent_shape=latent_shape,
    activation_bytes=activation_bytes,
    decode_bytes=decode_bytes,
    scheduler=scheduler,
    components={"transformer": "diffusers.WanTransformer3DModel", "text_encoder": "transformers.UMT5EncoderModel",
                "tokenizer": "transformers.AutoTokenizer", "vae": "diffusers.AutoencoderKLWan"},  # fmt: skip
    caches=("first_block", "taylorseer", "seacache"),  # SeaCache has a built-in adapter for Wan T2V only
)
WanFamily.spec = SPEC
