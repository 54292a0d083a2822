"""Where each transformer lives during a run.

- `none`:  every transformer on the GPU for the whole run.
- `idle`:  transformers wait in pinned CPU memory; the next stage's model is copied in on a side CUDA stream while
           the current stage runs, and a model no longer needed is dropped (its pinned copy stays valid: inference
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
        self._first: str | None = None
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
        """A `before_step` hook. At each stage start: keep only this stage's and the next stage's models on the GPU,
        swap this one in (already prefetched, except for the first stage) and start copying the next one in, so the
        copy has a whole stage to hide behind. In LSL the large model therefore never leaves the GPU."""
        self._first = plan_models[0] if plan_models else None

        def before_step(i: int, model: str) -> None:
            if not self._pinned or model == self.active:
                return
            upcoming = residents(plan_models, i)[1]
            for name, pinned in self._pinned.items():
                if name not in (model, upcoming):
                    pinned.release()
            self._pinned[model].activate(self.device, self._stream)
            self.active = model
            if upcoming is not None:
                self._pinned[upcoming].prefetch(self.device, self._stream)

        return before_step

    def finish(self) -> None:
        """After denoising: with `idle`, keep only the model the next video starts with (saves one full copy per
        video in a batch); the VAE decodes beside it."""
        for name, pinned in self._pinned.items():
            if name != self._first:
                pinned.release()
        self.active = None

    def close(self) -> None:
        """Drop every model from the GPU (their pinned copies stay)."""
        for pinned in self._pinned.values():
            pinned.release()
        self.active = None


def residents(plan_models: Sequence[str], i: int) -> tuple[str, str | None]:
    """What `idle` keeps on the GPU from step i on: the model of step i and the next stage's (being prefetched).
    Every other model is dropped first, so a plan of any number of models never holds more than two."""
    model = plan_models[i]
    return model, next((m for m in plan_models[i + 1 :] if m != model), None)


class _PinnedModel:
    """A module whose weights live in pinned host memory, with an on-GPU copy only while it is active."""

    def __init__(self, module: nn.Module):
        module.to("cpu")
        self.tensors = [*module.parameters(), *module.buffers()]
        self.host = [_pinned(t) for t in self.tensors]
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


def _pinned(tensor: torch.Tensor) -> torch.Tensor:
    """A pinned host copy (async copies need one); a tensor type that cannot be pinned (a quantized tensor
    subclass may not implement it) gets a plain host copy: its moves are then synchronous, but correct."""
    try:
        return tensor.detach().pin_memory()
    except (RuntimeError, NotImplementedError, TypeError):
        return tensor.detach().clone()
