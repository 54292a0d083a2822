"""Where each transformer lives during a run.

- `none`:  every transformer on the GPU for the whole run.
- `idle`:  transformers wait in pinned CPU memory; the next stage's model is copied in on a side CUDA stream while
           the current stage still runs, and the outgoing one is dropped (its pinned copy stays valid: inference
           never changes weights, so eviction copies nothing). Peak ≈ the two models of one switch, not all of them.
- `group`: diffusers' group offloading with CUDA streams, block by block, for GPUs smaller than the large model.

diffusers' own hooks (`enable_model_cpu_offload`) move a model only when it is called, so the copy would stall the
switch; whole-model prefetch ahead of a known stage boundary is what `idle` adds. On CPU all three are no-ops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class Residency:
    """Moves transformers for a plan; `before_step` is the sampler hook."""

    def __init__(self, models: Mapping[str, nn.Module], mode: str, device: torch.device):
        self.models, self.mode, self.device = dict(models), mode, device
        self.cuda = device.type == "cuda"
        self.active: str | None = None
        self._pinned: dict[str, _PinnedModel] = {}
        self._stream = torch.cuda.Stream(device) if self.cuda and mode == "idle" else None
        if mode == "group" and self.cuda:
            for model in self.models.values():
                model.enable_group_offload(
                    onload_device=device, offload_type="block_level", num_blocks_per_group=1, use_stream=True
                )
        elif mode == "idle" and self.cuda:
            self._pinned = {name: _PinnedModel(model) for name, model in self.models.items()}
        else:
            for model in self.models.values():
                model.to(device)

    def hook(self, plan_models: Sequence[str]):
        """A `before_step` hook: swap in the step's model, and prefetch the next stage's on the last step before it."""

        def before_step(i: int, model: str) -> None:
            if not self._pinned:
                return
            if model != self.active:
                if self.active is not None:
                    self._pinned[self.active].release()
                self._pinned[model].activate(self.device, self._stream)
                self.active = model
            upcoming = plan_models[i + 1] if i + 1 < len(plan_models) else None
            if upcoming is not None and upcoming != model:
                self._pinned[upcoming].prefetch(self.device, self._stream)

        return before_step

    def finish(self) -> None:
        """After denoising: with `idle`, drop the active model from the GPU too (the VAE decodes next)."""
        if self.active is not None:
            self._pinned[self.active].release()
            self.active = None


class _PinnedModel:
    """A module whose weights live in pinned host memory, with an on-GPU copy only while it is active."""

    def __init__(self, module: nn.Module):
        module.to("cpu")
        self.tensors = [*module.parameters(), *module.buffers()]
        self.host = [t.detach().pin_memory() for t in self.tensors]
        for tensor, host in zip(self.tensors, self.host):
            tensor.data = host
        self.staged: list[torch.Tensor] | None = None
        self.ready: torch.cuda.Event | None = None

    def prefetch(self, device: torch.device, stream: torch.cuda.Stream) -> None:
        if self.staged is not None:
            return
        with torch.cuda.stream(stream):
            self.staged = [h.to(device, non_blocking=True) for h in self.host]
            self.ready = torch.cuda.Event()
            self.ready.record(stream)

    def activate(self, device: torch.device, stream: torch.cuda.Stream) -> None:
        self.prefetch(device, stream)  # no-op when already prefetched
        current = torch.cuda.current_stream(device)
        current.wait_event(self.ready)
        for tensor, staged in zip(self.tensors, self.staged):
            staged.record_stream(current)  # allocated on the side stream, used on the compute stream
            tensor.data = staged

    def release(self) -> None:
        for tensor, host in zip(self.tensors, self.host):
            tensor.data = host
        self.staged, self.ready = None, None
