"""What the transformers really ran: per model, the share of each block unit (self-attention, cross-attention,
feed-forward) that computed rather than being reused or forecast by a cache hook.

The plan's FLOPs assume every block runs at every step; a cache hook skips some. Each unit module gets an innermost
diffusers hook that counts the calls which get through every outer hook (the cache's), and the model gets a counter
of its own forwards. Both counts are independent of batch size, so CFG run as one batch or as two forwards reads the
same.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

import torch
from diffusers.hooks import HookRegistry, ModelHook

HOOK_NAME = "fbgen_work"


class WorkTally:
    """Forward and unit-call counts of one transformer since the last `reset`."""

    def __init__(self, model: torch.nn.Module, units: str):
        pattern = re.compile(units)
        self.modules: Counter[str] = Counter()  # unit kind → modules of that kind (one per block)
        self.calls: Counter[str] = Counter()
        self.forwards = 0
        for name, module in model.named_modules():
            match = pattern.fullmatch(name)
            if match:
                kind = match.group(1)
                self.modules[kind] += 1
                # registered before any cache hook, so innermost: it sees only the calls the hooks let through
                HookRegistry.check_if_exists_or_initialize(module).register_hook(_UnitCall(self, kind), HOOK_NAME)
        model.register_forward_pre_hook(lambda *_: self._forward())

    def reset(self) -> None:
        self.calls.clear()
        self.forwards = 0

    def computed_share(self) -> dict[str, float]:
        """Per unit kind, the share of (forward, block) pairs in which that unit computed; 1.0 before any forward."""
        return {k: self.calls[k] / (self.forwards * n) if self.forwards else 1.0 for k, n in self.modules.items()}

    def skipped_flops(self, block: Mapping[str, int]) -> float:
        """Block FLOPs skipped per forward, on average, given one block's FLOPs by unit kind."""
        return sum((1.0 - share) * self.modules[k] * block[k] for k, share in self.computed_share().items())

    def computed_fraction(self, block: Mapping[str, int]) -> float:
        """The share of the blocks' FLOPs that really ran."""
        return 1.0 - self.skipped_flops(block) / sum(n * block[k] for k, n in self.modules.items())

    @torch.compiler.disable  # a Python count inside a compiled block would make dynamo recompile at every call
    def _count(self, kind: str) -> None:
        self.calls[kind] += 1

    def _forward(self) -> None:
        self.forwards += 1


class _UnitCall(ModelHook):
    def __init__(self, tally: WorkTally, kind: str):
        super().__init__()
        self.tally, self.kind = tally, kind

    def pre_forward(self, module: torch.nn.Module, *args, **kwargs):
        self.tally._count(self.kind)
        return args, kwargs


def tally_work(models: Mapping[str, torch.nn.Module], units: str) -> dict[str, WorkTally]:
    """A tally per model over the modules matching `units` (a pattern whose first group names the unit kind); a
    model keeps its first tally, so applying accelerations again (as the speed harness does) counts once."""
    for model in models.values():
        if not isinstance(getattr(model, "_fbgen_work", None), WorkTally):
            model._fbgen_work = WorkTally(model, units)
    return {letter: model._fbgen_work for letter, model in models.items()}
