"""The demo pair shipped in the package (trained by `fbgen train-demo`): Wan 2.1 transformers at toy size.

It runs through the Wan adapter unchanged. What differs: the rules (48x48 pixels, 2k+1 frames, prompts padded to
24 tokens, MP4s upscaled 4x for viewing), the autoencoder (`fbgen.demo.autoencoder`, Wan's VAE interface and latent
layout, trainable in minutes on a CPU), and the packaged default config (`fbgen/demo/demo.yaml`): a config that
says `family: demo` gets every setting it leaves out from there, the shipped pair included.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from fbgen.demo.autoencoder import CausalFrameAutoencoder
from fbgen.families import wan

DEMO = Path(__file__).resolve().parent.parent / "demo"
PAIR = DEMO / "pair"  # the trained pair shipped in the package
CONFIG = DEMO / "demo.yaml"  # the packaged default config (`fbgen run --demo`)
DEFAULTS = yaml.safe_load(CONFIG.read_text())


class DemoFamily(wan.WanFamily):
    pass


SPEC = dataclasses.replace(
    wan.SPEC,
    name="demo",
    adapter=lambda: DemoFamily,
    frame_step=2,
    max_sequence_length=24,
    default_size=(48, 48, 9),
    default_fps=8,
    vae_keys=("z_dim", "width", "blocks", "scale_factor_temporal", "scale_factor_spatial", "latents_mean",
              "latents_std", "coordinates"),  # fmt: skip
    components={**wan.SPEC.components, "vae": "fbgen.demo.autoencoder.CausalFrameAutoencoder"},
    own_classes={"fbgen.demo.autoencoder.CausalFrameAutoencoder": CausalFrameAutoencoder},
    default_models=(("L", str(PAIR / "large")), ("S", str(PAIR / "small"))),
    default_shift=DEFAULTS["shift"],  # the pair's own (no shift at 48x48), not Wan's 3.0
    default_config=DEFAULTS,
    view_scale=4,
)
DemoFamily.spec = SPEC
