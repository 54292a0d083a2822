"""The staged sampling loop: one scheduler, one velocity model per step as the plan says. Knows no family.

In the style of k-diffusion's samplers: a short function over callables, state in locals. Because a single
scheduler instance runs the whole trajectory, multistep solvers (UniPC) keep their history across a model switch —
exactly as if one model had produced every velocity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin


@dataclass(frozen=True)
class Step:
    """Where the loop is. diffusers' cache hooks read it from `cache_context` (SeaCache needs it), as the
    pipelines pass it; it is the position in the whole trajectory, whichever model runs the step."""

    index: int
    count: int
    sigma: float

    def context(self) -> dict[str, int | float]:
        """The keyword arguments of `ModelMixin.cache_context`, as `WanPipeline` fills them."""
        return {"step_index": self.index, "sigma": self.sigma, "num_inference_steps": self.count}


Denoiser = Callable[[torch.Tensor, torch.Tensor, Step], torch.Tensor]
"""(latents, timestep, step) → guided velocity prediction."""

StepHook = Callable[[int, str], None]
"""(step index, model letter) → None; called before each step (residency uses it to swap and prefetch)."""


def sample(
    scheduler: SchedulerMixin,
    models: Sequence[str],
    denoisers: Mapping[str, Denoiser],
    latents: torch.Tensor,
    before_step: StepHook | None = None,
    after_step: Callable[[int, str, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run every step of `scheduler.timesteps`, asking `denoisers[models[i]]` for the velocity at step i."""
    timesteps = scheduler.timesteps
    if len(models) != len(timesteps):
        raise ValueError(f"plan has {len(models)} steps but the scheduler has {len(timesteps)} timesteps")
    scheduler.set_begin_index(0)
    for i, t in enumerate(timesteps):
        model = models[i]
        if before_step is not None:
            before_step(i, model)
        velocity = denoisers[model](latents, t, Step(i, len(timesteps), float(scheduler.sigmas[i])))
        latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
        if after_step is not None:
            after_step(i, model, latents)
    return latents


Prediction = Callable[[torch.Tensor, torch.Tensor, bool, Step | None], tuple[torch.Tensor, torch.Tensor | None]]
"""(latents, timestep, cfg, step) → (conditional, unconditional or None): one model's predictions (a family's
`predict`)."""


def guided(predict: Prediction, guidance_scale: float) -> Denoiser:
    """A denoiser from a model's predictions with classifier-free guidance, which runs only for scales > 1 (as in
    diffusers' pipelines)."""
    cfg = guidance_scale > 1.0

    def velocity(latents: torch.Tensor, t: torch.Tensor, step: Step | None = None) -> torch.Tensor:
        cond, uncond = predict(latents, t, cfg, step)
        return cond if uncond is None else guide(cond, uncond, guidance_scale)

    return velocity


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance, in diffusers' order of operations (so results are bit-identical)."""
    return uncond + scale * (cond - uncond)
