"""GPU memory the transformers need at peak, from safetensors headers alone (`fbgen plan` loads no weights)."""

from __future__ import annotations

from typing import Any

import torch

from fbgen.config import RunConfig
from fbgen.core.schedule import Plan
from fbgen.engine.sources import Sources, parameter_count


def memory_plan(config: RunConfig, plan: Plan, sources: Sources, cuda: bool) -> dict[str, Any]:
    """Transformer weight bytes on the GPU at peak for the offload mode (activations, text encoder and VAE not
    included)."""
    dtype = config.dtype if config.dtype != "auto" else "bfloat16" if cuda else "float32"
    itemsize = getattr(torch, dtype).itemsize
    offload = config.offload
    params = {m: parameter_count(src, sources.subfolders[m]) for m, src in sources.transformers.items()}
    sizes = {m: None if p is None else p * itemsize for m, p in params.items()}
    lines = [
        f"model {m}: {'weights not available locally' if b is None else f'{params[m]:,} params, {b / 2**30:.3f} GiB'}"
        for m, b in sizes.items()
    ]  # fmt: skip
    resident = None
    if all(b is not None for b in sizes.values()):
        if offload == "none":
            resident = sum(sizes.values())
        elif offload == "idle":  # a stage's model and the next one's (prefetched): never more than two
            stages = plan.stages
            pairs = [(sizes[a.model] + sizes[b.model], f"{a.model}+{b.model} at step {b.start}")
                     for a, b in zip(stages, stages[1:])] or [(sizes[stages[0].model], stages[0].model)]  # fmt: skip
            resident, where = max(pairs, key=lambda pair: pair[0])  # the first switch of the largest
        lines.append(
            f"offload {offload}: transformer weights on the GPU at peak ≈ "
            + (f"{resident / 2**30:.3f} GiB" if resident is not None else "one block group at a time")
            + (f" ({where}; at most two transformers at once)" if offload == "idle" else "")
        )
    return {"weights_bytes": sizes, "resident_weights_bytes": resident, "lines": lines}
