"""What every family adapter shares: the family's own diffusers pipeline holding the shared text encoder and VAE
(its methods do the encoding and latent preparation), and one transformer per schedule letter."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

import torch


class PipelineFamily:
    pipeline_class: Any  # the family's diffusers pipeline class

    def __init__(self, transformers: Mapping[str, torch.nn.Module], tokenizer, text_encoder, vae, device):
        self.transformers = dict(transformers)
        self.device = torch.device(device)
        self.pipe = self.pipeline_class(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=None,
            transformer=next(iter(self.transformers.values())),
        )  # fmt: skip

    def configure(self, config: Any) -> None:
        """Per-run settings the pipeline takes as call arguments (none by default)."""

    def free_text_encoder(self) -> None:
        """Once every prompt is encoded the text encoder (UMT5-XXL/T5-XXL: ~11 GB) is dead weight."""
        self.pipe.text_encoder = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
