"""The demo pair shipped in the package (trained by `fbgen train-demo`): Wan 2.1 transformers at toy size.

It runs through the Wan adapter unchanged. What differs: the rules (48x48 pixels, 9 frames, prompts padded to 16
tokens, MP4s upscaled 4x for viewing), the autoencoder (`fbgen.demo.autoencoder`, Wan's VAE interface and latent
layout, trainable in minutes on a CPU), and a config that names no models gets the shipped pair.
"""

from __future__ import annotations

from collections.abc import Mapping

from fbgen.demo.autoencoder import CausalFrameAutoencoder
from fbgen.families import FAMILIES, wan
from fbgen.families.wan import (  # noqa: F401  (the adapter interface, shared with Wan)
    PAIR_KEYS,
    TEXT_SUBFOLDERS,
    TRANSFORMER,
    VAE_SUBFOLDERS,
    latent_shape_from_vae,
    scheduler,
)

RULES = FAMILIES["demo"]
VAE_KEYS = ("z_dim", "width", "scale_factor_temporal", "scale_factor_spatial", "latents_mean", "latents_std")


class DemoFamily(wan.WanFamily):
    rules = RULES
    vae_class = CausalFrameAutoencoder


def forward_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int]) -> int:
    return wan.forward_flops(transformer_config, latent_shape, RULES.text_tokens)


def block_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int]) -> dict[str, int]:
    return wan.block_flops(transformer_config, latent_shape, RULES.text_tokens)


Family = DemoFamily
