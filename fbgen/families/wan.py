"""Wan 2.1 text-to-video (1.3B / 14B, diffusers format): a thin adapter over diffusers' own components.

Prompt encoding and latent preparation are `WanPipeline`'s own methods, called on a pipeline that holds the shared
components, so fbgen's LLL is diffusers' result. Only the loop is fbgen's (see `fbgen.core.sampler`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
from transformers import AutoTokenizer, UMT5EncoderModel

from fbgen.core.flops import wan_block_flops, wan_forward_flops
from fbgen.core.sampler import Step
from fbgen.engine.sources import Source
from fbgen.families import FAMILIES
from fbgen.families.base import PipelineFamily

RULES = FAMILIES["wan"]
PAIR_KEYS = ("in_channels", "out_channels", "patch_size", "text_dim")  # must match for a shared latent space
VAE_KEYS = ("z_dim", "base_dim", "dim_mult", "num_res_blocks", "temperal_downsample", "latents_mean", "latents_std")
TRANSFORMER = "transformer"
TEXT_SUBFOLDERS = ["text_encoder", "tokenizer"]
VAE_SUBFOLDERS = ["vae"]


def scheduler(config, device: str):
    """Wan's default: UniPC with flow sigmas (or Euler), a fixed shift, `steps` timesteps."""
    from fbgen.core.solvers import make_scheduler

    sched = make_scheduler(config.solver, config.shift)
    sched.set_timesteps(config.steps, device=device)
    return sched


@dataclass
class Prompt:
    """Encoded conditioning of one prompt (negative embeddings only when some model uses CFG)."""

    positive: torch.Tensor
    negative: torch.Tensor | None


class WanFamily(PipelineFamily):
    """Shared UMT5 text encoder + Wan VAE, one transformer per schedule letter."""

    rules = RULES
    pipeline_class = WanPipeline
    vae_class: Any = AutoencoderKLWan

    @classmethod
    def load(
        cls, transformers: Mapping[str, Source], text: Source, vae: Source, device: str, dtype: torch.dtype
    ) -> WanFamily:
        """Load from resolved sources (safetensors only). Transformers stay on the CPU: `Residency` places them."""
        common = dict(torch_dtype=dtype, use_safetensors=True)
        models = {
            letter: WanTransformer3DModel.from_pretrained(src.path, subfolder=TRANSFORMER, **common).eval()
            for letter, src in transformers.items()
        }
        tokenizer = AutoTokenizer.from_pretrained(text.path, subfolder="tokenizer")
        text_encoder = UMT5EncoderModel.from_pretrained(text.path, subfolder="text_encoder", **common).eval()
        # Wan's VAE is run in float32, as the official pipelines do.
        vae_model = cls.vae_class.from_pretrained(
            vae.path, subfolder="vae", torch_dtype=torch.float32, use_safetensors=True
        ).eval()
        return cls(models, tokenizer, text_encoder.to(device), vae_model.to(device), device)

    # -- conditioning ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prompts: list[str], negative_prompt: str | list[str], cfg: bool) -> list[Prompt]:
        """Encode every prompt (one negative prompt for all, or one each), then free the text encoder."""
        negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
        encoded = []
        for prompt, negative_prompt in zip(prompts, negatives):
            positive, negative = self.pipe.encode_prompt(
                prompt=prompt, negative_prompt=negative_prompt, do_classifier_free_guidance=cfg,
                max_sequence_length=self.rules.text_tokens, device=self.device,
            )  # fmt: skip
            encoded.append(Prompt(positive, negative))
        self.free_text_encoder()
        return encoded

    # -- sampling ----------------------------------------------------------------------------------------------
    def latent_shape(self, height: int, width: int, num_frames: int) -> tuple[int, int, int]:
        temporal, spatial = self.pipe.vae_scale_factor_temporal, self.pipe.vae_scale_factor_spatial
        return (num_frames - 1) // temporal + 1, height // spatial, width // spatial

    def initial_latents(self, seed: int, height: int, width: int, num_frames: int) -> torch.Tensor:
        """Noise from a CPU generator: the same seed gives the same video on any device."""
        generator = torch.Generator("cpu").manual_seed(seed)
        channels = next(iter(self.transformers.values())).config.in_channels
        return self.pipe.prepare_latents(1, channels, height, width, num_frames, torch.float32, self.device, generator)

    @torch.no_grad()
    def predict(self, letter: str, prompt: Prompt, latents: torch.Tensor, t: torch.Tensor, cfg: bool,
                step: Step | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """One model's conditional and (with CFG) unconditional velocity, two forwards as `WanPipeline` does."""
        model = self.transformers[letter]
        x = latents.to(model.dtype)
        timestep = t.expand(x.shape[0])
        where = step.context() if step else {}
        with model.cache_context("cond", **where):
            cond = model(hidden_states=x, timestep=timestep, encoder_hidden_states=prompt.positive,
                         return_dict=False)[0]  # fmt: skip
        if not cfg:
            return cond, None
        with model.cache_context("uncond", **where):
            uncond = model(hidden_states=x, timestep=timestep, encoder_hidden_states=prompt.negative,
                           return_dict=False)[0]  # fmt: skip
        return cond, uncond

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents → uint8 frames (F, H, W, 3), with the VAE's latent normalisation undone as WanPipeline does."""
        vae = self.pipe.vae
        latents = latents.to(vae.device, vae.dtype)
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
        std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
        video = vae.decode(latents * std + mean, return_dict=False)[0]
        frames = self.pipe.video_processor.postprocess_video(video, output_type="np")[0]
        return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)

    # -- cost ----------------------------------------------------------------------------------------------------
    def forward_flops(self, letter: str, height: int, width: int, num_frames: int) -> int:
        shape = self.latent_shape(height, width, num_frames)
        return forward_flops(self.transformers[letter].config, shape, self.rules.text_tokens)


def forward_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int],
                  text_tokens: int = RULES.text_tokens) -> int:  # fmt: skip
    return wan_forward_flops(transformer_config, latent_shape, text_tokens)


def block_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int],
                text_tokens: int = RULES.text_tokens) -> dict[str, int]:  # fmt: skip
    return wan_block_flops(transformer_config, latent_shape, text_tokens)


def latent_shape_from_vae(vae_config: Mapping, height: int, width: int, num_frames: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) from the VAE config alone (for `fbgen plan`, which loads no weights)."""
    temporal = vae_config.get("scale_factor_temporal", 4)
    spatial = vae_config.get("scale_factor_spatial", 8)
    return (num_frames - 1) // temporal + 1, height // spatial, width // spatial


Family = WanFamily
