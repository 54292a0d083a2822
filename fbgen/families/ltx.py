"""LTX-Video text-to-video (0.9.5+ diffusers-format releases: 13B and 2B): a thin adapter over `LTXPipeline`'s own
methods, so that fbgen's LLL is diffusers' result.

LTX differs from Wan where the pipeline does: latents are packed into tokens, classifier-free guidance is one
batched forward of [negative, positive], the frame rate scales the RoPE positions, the Euler sigmas are
`linspace(1, 1/N, N)` shifted by a `mu` that grows with the video's token count (counted with the loaded VAE's
compression), and the VAE decodes with a timestep (and decode noise from the seed's generator) when trained to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

from fbgen.core.sampler import Step
from fbgen.families.base import FamilySpec, LatentShape, PipelineFamily, Video, to_uint8
from fbgen.families.wan import linear_flops, tokens

# The scheduler_config.json of the 0.9.5+ releases (dynamic shifting by token count, terminal sigma 0.1): used, and
# said so, when a checkpoint ships no scheduler config.
SCHEDULER = dict(base_image_seq_len=1024, max_image_seq_len=4096, base_shift=0.95, max_shift=2.05,
                 shift_terminal=0.1, use_dynamic_shifting=True)  # fmt: skip


def block_flops(cfg: Mapping[str, Any], latent_shape: LatentShape, text_tokens: int) -> dict[str, int]:
    """One `LTXVideoTransformerBlock`, by module. With S video tokens, L text tokens, width D and cross-attention
    input width C: self-attention 4·S·D² + 4·S²·D; cross-attention 4·S·D² + 4·L·C·D + 4·S·L·D; feed-forward 16·S·D².
    """
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    s, length = tokens(latent_shape, (pt, p, p)), text_tokens
    d, c = cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["cross_attention_dim"]
    return {
        "attn1": 4 * linear_flops(s, d, d) + 4 * s * s * d,
        "attn2": 2 * linear_flops(s, d, d) + 2 * linear_flops(length, c, d) + 4 * s * length * d,
        "ff": linear_flops(s, d, 4 * d) + linear_flops(s, 4 * d, d),
    }


def forward_flops(cfg: Mapping[str, Any], latent_shape: LatentShape, text_tokens: int) -> int:
    """One `LTXVideoTransformer3DModel` forward on a latent of (frames, height, width)."""
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    s, length = tokens(latent_shape, (pt, p, p)), text_tokens
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    embed = (
        linear_flops(s, cfg["in_channels"] * p * p * pt, d)  # proj_in
        + linear_flops(length, cfg["caption_channels"], d) + linear_flops(length, d, d)  # caption projection
        + linear_flops(1, 256, d) + linear_flops(1, d, d) + linear_flops(1, d, 6 * d)  # timestep embedding
    )  # fmt: skip
    head = linear_flops(s, d, cfg["out_channels"])
    return cfg["num_layers"] * sum(block_flops(cfg, latent_shape, text_tokens).values()) + embed + head


def activation_bytes(cfg: Mapping[str, Any], latent_shape: LatentShape, text_tokens: int, itemsize: int) -> int:
    """Peak of one forward beyond the weights, as Wan's estimate (6 S×D in attention, 2 S×D + 2 S×4D in the
    feed-forward) but for a batch of 2: LTX batches CFG's two branches into one forward."""
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    s, d = tokens(latent_shape, (pt, p, p)), cfg["num_attention_heads"] * cfg["attention_head_dim"]
    block = max(6 * s * d, 2 * s * d + 8 * s * d) * itemsize
    return 2 * (block + text_tokens * d * itemsize) + 4 * cfg["in_channels"] * math.prod(latent_shape) * 4


def decode_bytes(vae_config: Mapping[str, Any], height: int, width: int, num_frames: int, tiled: bool) -> int:
    """LTX's VAE decodes every frame at once; its last stage runs at H/p × W/p (p: the VAE's patch size, unpatched
    into pixels at the end) and holds ~2 tensors of the decoder's first width × frames × H/p × W/p (taken as 4
    bytes), plus the video. Tiling (diffusers' defaults for this VAE: 512-pixel tiles, 16-frame windows) bounds
    the area and the frames."""
    channels = list(vae_config.get("decoder_block_out_channels") or [128])[0]
    patch = vae_config.get("patch_size", 4)
    area = min(height * width, 512 * 512) if tiled else height * width
    frames = min(num_frames, 16) if tiled else num_frames
    return 2 * 4 * channels * frames * area // (patch * patch) + 4 * 3 * num_frames * height * width


def latent_shape(vae_config: Mapping[str, Any], height: int, width: int, num_frames: int) -> LatentShape:
    """Latent (frames, height, width) with the VAE's own compression ratios, as `LTXPipeline` reads them."""
    spatial = vae_config.get("spatial_compression_ratio") or _vae_ratio(vae_config, "spatial")
    temporal = vae_config.get("temporal_compression_ratio") or _vae_ratio(vae_config, "temporal")
    return (num_frames - 1) // temporal + 1, height // spatial, width // spatial


def _vae_ratio(vae_config: Mapping[str, Any], kind: str) -> int:
    """`AutoencoderKLLTXVideo`'s ratio when its config does not store it: patch size times the down-blocks that
    halve that axis (its `__init__` computes the same)."""
    spatial_down = vae_config.get("spatio_temporal_scaling", (True, True, True, False))
    if kind == "spatial":
        return vae_config.get("patch_size", 4) * 2 ** sum(spatial_down)
    return vae_config.get("patch_size_t", 1) * 2 ** sum(spatial_down)


def scheduler(sampling: Any, vae_config: Mapping[str, Any], checkpoint: Mapping[str, Any] | None, device: str) -> Any:
    """`LTXPipeline`'s timesteps: the checkpoint's Euler scheduler config (the 0.9.5 release's without one), sigmas
    linspace(1, 1/N, N) shifted by mu(token count, from the loaded VAE's compression); a fixed `shift:` in the config
    replaces the dynamic shift."""
    config = dict(checkpoint) if checkpoint and checkpoint.get("_class_name") == "FlowMatchEulerDiscreteScheduler" \
        else dict(SCHEDULER)  # fmt: skip
    steps = sampling.steps
    if sampling.shift is None:
        sched = FlowMatchEulerDiscreteScheduler.from_config(config)
        frames, height, width = latent_shape(vae_config, sampling.height, sampling.width, sampling.num_frames)
        mu = calculate_shift(frames * height * width, config.get("base_image_seq_len", 256),
                             config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                             config.get("max_shift", 1.15))  # fmt: skip
    else:
        terminal = config.get("shift_terminal", 0.1)
        sched, mu = FlowMatchEulerDiscreteScheduler(shift=sampling.shift, shift_terminal=terminal), None
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu, device=device)
    return sched


@dataclass
class Prompt:
    """Encoded conditioning of one prompt: embeddings and attention masks (negative ones only with CFG)."""

    positive: torch.Tensor
    positive_mask: torch.Tensor
    negative: torch.Tensor | None
    negative_mask: torch.Tensor | None


class LTXFamily(PipelineFamily):
    """Shared T5 text encoder + VAE, one transformer per schedule letter."""

    pipeline_class = LTXPipeline
    prompt_class = Prompt

    def latent_shape(self, video: Video) -> LatentShape:
        temporal, spatial = self.pipe.vae_temporal_compression_ratio, self.pipe.vae_spatial_compression_ratio
        return (video.num_frames - 1) // temporal + 1, video.height // spatial, video.width // spatial

    @torch.no_grad()
    def predict(self, letter: str, cond: Prompt, latents: torch.Tensor, t: torch.Tensor, cfg: bool,
                step: Step | None, video: Video) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Conditional and (with CFG) unconditional velocity from one batched forward, as `LTXPipeline` does."""
        model = self.transformers[letter]
        frames, height, width = self.latent_shape(video)
        if cfg:
            embeds = torch.cat([cond.negative, cond.positive])
            mask = torch.cat([cond.negative_mask, cond.positive_mask])
            x = torch.cat([latents] * 2)
        else:
            embeds, mask, x = cond.positive, cond.positive_mask, latents
        x = x.to(embeds.dtype)
        spatial = self.pipe.vae_spatial_compression_ratio
        with model.cache_context("cond_uncond", **(step.context() if step else {})):
            out = model(
                hidden_states=x, encoder_hidden_states=embeds, timestep=t.expand(x.shape[0]),
                encoder_attention_mask=mask, num_frames=frames, height=height, width=width,
                rope_interpolation_scale=(self.pipe.vae_temporal_compression_ratio / video.fps, spatial, spatial),
                return_dict=False,
            )[0].float()  # fmt: skip
        if not cfg:
            return out, None
        uncond, positive = out.chunk(2)
        return positive, uncond

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, video: Video, generator: torch.Generator | None = None) -> np.ndarray:
        """Packed latents → uint8 frames (F, H, W, 3): unpack, denormalise, timestep-conditioned decode as
        `LTXPipeline` does (its decode noise comes from the seed's generator, after the initial noise)."""
        pipe, vae = self.pipe, self.pipe.vae
        frames, height, width = self.latent_shape(video)
        latents = pipe._unpack_latents(latents, frames, height, width, pipe.transformer_spatial_patch_size,
                                       pipe.transformer_temporal_patch_size)  # fmt: skip
        latents = pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        latents = latents.to(vae.dtype)
        timestep = None
        if vae.config.timestep_conditioning:
            decode_timestep = video.options.get("decode_timestep") or 0.0
            scale = video.options.get("decode_noise_scale")
            scale = decode_timestep if scale is None else scale
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
            timestep = torch.tensor([decode_timestep], device=latents.device, dtype=latents.dtype)
            latents = (1 - scale) * latents + scale * noise
        out = vae.decode(latents, timestep, return_dict=False)[0]
        return to_uint8(pipe.video_processor.postprocess_video(out, output_type="np")[0])


SPEC = FamilySpec(
    name="ltx",
    adapter=lambda: LTXFamily,
    size_multiple=32,
    frame_step=8,
    min_steps=2,  # the terminal-sigma stretch divides by 1 - sigma_last, which is 0 for one step
    max_sequence_length=128,
    default_shift=None,
    default_size=(512, 704, 161),
    default_fps=25,
    solvers=("euler",),
    pair_keys=("in_channels", "out_channels", "patch_size", "patch_size_t", "caption_channels"),
    flops_keys=("patch_size", "patch_size_t", "num_attention_heads", "attention_head_dim", "cross_attention_dim",
                "in_channels", "out_channels", "caption_channels", "num_layers"),  # fmt: skip
    vae_keys=("latent_channels", "patch_size", "patch_size_t", "spatial_compression_ratio",
              "temporal_compression_ratio", "decoder_block_out_channels", "timestep_conditioning", "decoder_causal"),
    latent_channels=("in_channels", "latent_channels"),
    forward_flops=forward_flops,
    block_flops=block_flops,
    latent_shape=latent_shape,
    activation_bytes=activation_bytes,
    decode_bytes=decode_bytes,
    scheduler=scheduler,
    components={"transformer": "diffusers.LTXVideoTransformer3DModel", "text_encoder": "transformers.T5EncoderModel",
                "tokenizer": "transformers.AutoTokenizer", "vae": "diffusers.AutoencoderKLLTXVideo"},  # fmt: skip
    options=("decode_timestep", "decode_noise_scale"),
    block_units=r"transformer_blocks\.\d+\.(attn1|attn2|ff)",
)
LTXFamily.spec = SPEC
