"""The demo pair shipped in the package (trained by `fbgen train-demo`): the Wan 2.1 architecture at toy size.

It runs through the Wan adapter unchanged; only the rules differ (48x48 pixels, 9 frames, prompts padded to 16
tokens, MP4s upscaled 4x for viewing), and a config that names no models gets the shipped pair.
"""

from __future__ import annotations

from collections.abc import Mapping

from fbgen.families import FAMILIES, wan
from fbgen.families.wan import (  # noqa: F401  (the adapter interface, shared with Wan)
    PAIR_KEYS,
    TEXT_SUBFOLDERS,
    TRANSFORMER,
    VAE_KEYS,
    VAE_SUBFOLDERS,
    latent_shape_from_vae,
    scheduler,
)

RULES = FAMILIES["demo"]


class DemoFamily(wan.WanFamily):
    rules = RULES


def forward_flops(transformer_config: Mapping, latent_shape: tuple[int, int, int]) -> int:
    return wan.forward_flops(transformer_config, latent_shape, RULES.text_tokens)


Family = DemoFamily
