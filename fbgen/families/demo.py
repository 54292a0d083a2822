"""The demo pair shipped in the package (trained by `fbgen train-demo`): Wan 2.1 transformers at toy size.

It runs through the Wan adapter unchanged. What differs: the rules (48x48 pixels, 9 frames, prompts padded to 16
tokens, MP4s upscaled 4x for viewing), the autoencoder (`fbgen.demo.autoencoder`, Wan's VAE interface and latent
layout, trainable in minutes on a CPU), and a config that names no models gets the shipped pair.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fbgen.demo.autoencoder import CausalFrameAutoencoder
from fbgen.families import wan

PAIR = Path(__file__).resolve().parent.parent / "demo" / "pair"  # the trained pair shipped in the package


class DemoFamily(wan.WanFamily):
    pass


SPEC = dataclasses.replace(
    wan.SPEC,
    name="demo",
    adapter=lambda: DemoFamily,
    max_sequence_length=16,
    default_size=(48, 48, 9),
    default_fps=8,
    vae_keys=("z_dim", "width", "scale_factor_temporal", "scale_factor_spatial", "latents_mean", "latents_std"),
    components={**wan.SPEC.components, "vae": "fbgen.demo.autoencoder.CausalFrameAutoencoder"},
    own_classes={"fbgen.demo.autoencoder.CausalFrameAutoencoder": CausalFrameAutoencoder},
    default_models=(("L", str(PAIR / "large")), ("S", str(PAIR / "small"))),
    view_scale=4,
)
DemoFamily.spec = SPEC
