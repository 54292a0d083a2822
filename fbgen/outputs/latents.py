"""Final latents → `<name>.latents.safetensors`, with what `fbgen decode` needs to turn them into a video later (the
answer to a decode that runs out of memory after a long render): family, VAE source, size, frame rate, the family's
decode options and the state of the seed's generator (LTX draws its decode noise from it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fbgen.outputs.atomic import committed, raise_write_error

SUFFIX = ".latents.safetensors"


def write_latents(latents: torch.Tensor, generator_state: torch.Tensor, meta: dict[str, Any],
                  path: str | os.PathLike) -> Path:  # fmt: skip
    path = Path(path)
    tensors = {"latents": latents.detach().float().cpu().contiguous(), "generator_state": generator_state.cpu()}
    with committed(path) as tmp:
        save_file(tensors, str(tmp), metadata={"fbgen": json.dumps(meta, default=str)})
        back, _ = read_latents(tmp)
        if not torch.equal(back["latents"], tensors["latents"]):
            raise_write_error(path, "the written file does not read back as the latents")
    return path


def read_latents(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and fbgen's metadata of a saved latents file."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("fbgen", "{}"))
        return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118 - safe_open is not a dict
