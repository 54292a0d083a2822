"""LTX-Video text-to-video (0.9.5+ diffusers-format releases: 13B and 2B): a thin adapter over diffusers' own
components, calling `LTXPipeline`'s methods so that fbgen's LLL is diffusers' result.

LTX differs from Wan where the pipeline does: latents are packed into tokens, classifier-free guidance is one
batched forward of [negative, positive], the frame rate scales the RoPE positions, the Euler sigmas are
`linspace(1, 1/N, N)` shifted by a `mu` that grows with the video's token count, and the VAE decodes with a
timestep (and optional decode noise) when it was trained to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel
from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift
from transformers import AutoTokenizer, T5EncoderModel

from fbgen.core.errors import BadInput
from fbgen.core.flops import ltx_block_flops, ltx_forward_flops
from fbgen.core.sampler import Step
from fbgen.engine.sources import Source
from fbgen.families import FAMILIES
from fbgen.families.base import PipelineFamily

RULES = FAMILIES["ltx"]
PAIR_KEYS = ("in_channels", "out_channels", "patch_size", "patch_size_t", "caption_channels")
VAE_KEYS = ("latent_channels", "patch_size", "patch_size_t", "spatial_compression_ratio", "temporal_compression_ratio",
            "decoder_block_out_channels", "timestep_conditioning", "decoder_causal")  # fmt: skip
TRANSFORMER = "transformer"
TEXT_SUBFOLDERS = ["text_encoder", "tokenizer"]
VAE_SUBFOLDERS = ["vae"]
# The scheduler_config.json of the 0.9.5+ releases (dynamic shifting by token count, terminal sigma 0.1).
SCHEDULER = dict(base_image_seq_len=1024, max_image_seq_len=4096, base_shift=0.95, max_shift=2.05,
                 shift_terminal=0.1, use_dynamic_shifting=True)  # fmt: skip


@dataclass
class Prompt:
    """Encoded conditioning of one prompt: embeddings and attention masks (negative ones only with CFG)."""

    positive: torch.Tensor
    positive_mask: torch.Tensor
    negative: torch.Tensor | None
    negative_mask: torch.Tensor | None


def scheduler_class() -> FlowMatchEulerDiscreteScheduler:
    """The scheduler `LTXPipeline` ships with (0.9.5+), unset."""
    return FlowMatchEulerDiscreteScheduler(**SCHEDULER)


def scheduler(config: Any, device: str) -> FlowMatchEulerDiscreteScheduler:
    """`LTXPipeline`'s timesteps: sigmas linspace(1, 1/N, N), shifted by mu(token count) (0.9.5+ VAEs compress
    32x spatially and 8x in time); a fixed `shift:` in the config replaces the dynamic shift."""
    if config.steps < 2:  # the terminal-sigma stretch divides by 1 - sigma_last, which is 0 for one step
        raise BadInput(f"{config.source}: key 'steps': LTX's scheduler needs at least 2 steps, got {config.steps}")
    if config.shift is None:
        sched = scheduler_class()
        frames, height, width = latent_shape_from_vae({}, config.height, config.width, config.num_frames)
        s = SCHEDULER
        mu = calculate_shift(frames * height * width, s["base_image_seq_len"], s["max_image_seq_len"],
                             s["base_shift"], s["max_shift"])  # fmt: skip
    else:
        sched, mu = FlowMatchEulerDiscreteScheduler(shift=config.shift, shift_terminal=0.1), None
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / config.steps, config.steps), mu=mu, device=device)
    return sched


class LTXFamily(PipelineFamily):
    """Shared T5 text encoder + VAE, one transformer per schedule letter."""

    rules = RULES
    pipeline_class = LTXPipeline

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.frame_rate = RULES.default_fps
        self.decode_timestep, self.decode_noise_scale = 0.0, None

    @classmethod
    def load(
        cls, transformers: Mapping[str, Source], text: Source, vae: Source, device: str, dtype: torch.dtype
    ) -> LTXFamily:
        """Load from resolved sources (safetensors only). Transformers stay on the CPU: `Residency` places them."""
        common = dict(torch_dtype=dtype, use_safetensors=True)
        models = {
            letter: LTXVideoTransformer3DModel.from_pretrained(src.path, subfolder=TRANSFORMER, **common).eval()
            for letter, src in transformers.items()
        }
        tokenizer = AutoTokenizer.from_pretrained(text.path, subfolder="tokenizer")
        text_encoder = T5EncoderModel.from_pretrained(text.path, subfolder="text_encoder", **common).eval()
        vae_model = AutoencoderKLLTXVideo.from_pretrained(vae.path, subfolder="vae", **common).eval()
        return cls(models, tokenizer, text_encoder.to(device), vae_model.to(device), device)

    def configure(self, config: Any) -> None:
        """Per-run settings the pipeline takes as call arguments: frame rate (RoPE) and timestep-conditioned decode."""
        self.frame_rate = config.fps
        self.decode_timestep, self.decode_noise_scale = config.decode_timestep, config.decode_noise_scale

    # -- conditioning ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prompts: list[str], negative_prompt: str | list[str], cfg: bool) -> list[Prompt]:
        """Encode every prompt (one negative prompt for all, or one each), then free the text encoder."""
        negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
        encoded = []
        for prompt, negative in zip(prompts, negatives):
            pos, pos_mask, neg, neg_mask = self.pipe.encode_prompt(
                prompt=prompt, negative_prompt=negative, do_classifier_free_guidance=cfg,
                max_sequence_length=RULES.text_tokens, device=self.device,
            )  # fmt: skip
            encoded.append(Prompt(pos, pos_mask, neg, neg_mask))
        self.free_text_encoder()
        return encoded

    # -- sampling ----------------------------------------------------------------------------------------------
    def latent_shape(self, height: int, width: int, num_frames: int) -> tuple[int, int, int]:
        temporal, spatial = self.pipe.vae_temporal_compression_ratio, self.pipe.vae_spatial_compression_ratio
        return (num_frames - 1) // temporal + 1, height // spatial, width // spatial

    def initial_latents(self, seed: int, height: int, width: int, num_frames: int) -> torch.Tensor:
        """Packed noise (1, tokens, channels) from a CPU generator: the same seed gives the same video anywhere."""
        self._size = (height, width, num_frames)
        generator = torch.Generator("cpu").manual_seed(seed)
        channels = next(iter(self.transformers.values())).config.in_channels
        latents = self.pipe.prepare_latents(1, channels, height, width, num_frames, torch.float32, self.device,
                                            generator)  # fmt: skip
        self._generator = generator  # the pipeline draws its decode noise from the same generator, after the latents
        return latents

    @torch.no_grad()
    def predict(self, letter: str, prompt: Prompt, latents: torch.Tensor, t: torch.Tensor, cfg: bool,
                step: Step | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Conditional and (with CFG) unconditional velocity from one batched forward, as `LTXPipeline` does."""
        model = self.transformers[letter]
        frames, height, width = self.latent_shape(*self._size)
        if cfg:
            embeds, mask = torch.cat([prompt.negative, prompt.positive]), torch.cat([prompt.negative_mask,
                                                                                     prompt.positive_mask])  # fmt: skip
            x = torch.cat([latents] * 2)
        else:
            embeds, mask, x = prompt.positive, prompt.positive_mask, latents
        x = x.to(embeds.dtype)
        spatial = self.pipe.vae_spatial_compression_ratio
        with model.cache_context("cond_uncond", **(step.context() if step else {})):
            out = model(
                hidden_states=x, encoder_hidden_states=embeds, timestep=t.expand(x.shape[0]),
                encoder_attention_mask=mask, num_frames=frames, height=height, width=width,
                rope_interpolation_scale=(self.pipe.vae_temporal_compression_ratio / self.frame_rate, spatial, spatial),
                return_dict=False,
            )[0].float()  # fmt: skip
        if not cfg:
            return out, None
        uncond, cond = out.chunk(2)
        return cond, uncond

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Packed latents → uint8 frames (F, H, W, 3): unpack, denormalise, timestep-conditioned decode as
        `LTXPipeline` does (decode noise from the seed's generator)."""
        pipe, vae = self.pipe, self.pipe.vae
        frames, height, width = self.latent_shape(*self._size)
        latents = pipe._unpack_latents(latents, frames, height, width, pipe.transformer_spatial_patch_size,
                                       pipe.transformer_temporal_patch_size)  # fmt: skip
        latents = pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        latents = latents.to(vae.dtype)
        timestep = None
        if vae.config.timestep_conditioning:
            noise = torch.randn(latents.shape, generator=self._generator, dtype=latents.dtype).to(latents.device)
            scale = self.decode_timestep if self.decode_noise_scale is None else self.decode_noise_scale
            timestep = torch.tensor([self.decode_timestep], device=latents.device, dtype=latents.dtype)
            latents = (1 - scale) * latents + scale * noise
        video = vae.decode(latents, timestep, return_dict=False)[0]
        out = pipe.video_processor.postprocess_video(video, output_type="np")[0]
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    # -- cost ----------------------------------------------------------------------------------------------------
    def forward_flops(self, letter: str, height: int, width: int, num_frames: int) -> int:
        return forward_flops(self.transformers[letter].config, self.latent_shape(height, width, num_frames))


def forward_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int]) -> int:
    return ltx_forward_flops(transformer_config, latent_shape, RULES.text_tokens)


def block_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int]) -> dict[str, int]:
    return ltx_block_flops(transformer_config, latent_shape, RULES.text_tokens)


def latent_shape_from_vae(vae_config: Mapping, height: int, width: int, num_frames: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) from the VAE config alone (for `fbgen plan`, which loads no weights)."""
    spatial = vae_config.get("spatial_compression_ratio") or 32
    temporal = vae_config.get("temporal_compression_ratio") or 8
    return (num_frames - 1) // temporal + 1, height // spatial, width // spatial


Family = LTXFamily
