"""A job's trajectory before anything runs: the diffusers scheduler set the family's way, the per-step model plan
over its timesteps, the FLOPs of that plan, and how far the checkpoint's own scheduler config was followed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffusers.schedulers.scheduling_utils import SchedulerMixin

from fbgen.core.flops import plan_flops
from fbgen.core.schedule import Plan, build_plan
from fbgen.families.base import FamilySpec

IGNORED = {"_class_name", "_diffusers_version", "num_train_timesteps"}


def make_plan(
    job: Any, family: FamilySpec, vae_config: Mapping[str, Any] | None = None,
    scheduler_config: Mapping[str, Any] | None = None, device: str = "cpu",
) -> tuple[SchedulerMixin, Plan]:  # fmt: skip
    """A fresh scheduler with timesteps set the family's way, and the per-step model plan over those timesteps.
    `job` is a `Job` or a `RunConfig` (both carry the sampling keys)."""
    scheduler = family.scheduler(job, vae_config or {}, scheduler_config, device)
    sigmas = [float(s) for s in scheduler.sigmas[: job.steps]]
    timesteps = [float(t) for t in scheduler.timesteps]
    train = scheduler.config.get("num_train_timesteps", 1000)
    return scheduler, build_plan(job.schedule, job.boundaries, job.boundary_unit, timesteps, sigmas, train)


def plan_flops_for(job: Any, plan: Plan, family: FamilySpec, configs: Mapping[str, Mapping[str, Any]],
                   vae_config: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Analytic FLOPs of a plan, from the transformer and VAE configs alone."""
    shape = family.latent_shape(vae_config, job.height, job.width, job.num_frames)
    per_forward = {m: family.forward_flops(cfg, shape, job.max_sequence_length) for m, cfg in configs.items()}
    return plan_flops(plan, per_forward, job.guidance_scale)


def scheduler_differences(used: SchedulerMixin, checkpoint: Mapping[str, Any] | None) -> list[str]:
    """Where the scheduler a job runs differs from the one its checkpoint ships: stated in the log, `fbgen plan`
    and the manifest, never silently replaced (the config's solver and shift are the user's choice)."""
    if checkpoint is None:
        return [f"the checkpoint ships no scheduler config; fbgen runs {type(used).__name__} with the family's "
                "defaults"]  # fmt: skip
    lines = []
    if checkpoint.get("_class_name") != type(used).__name__:
        lines.append(f"the checkpoint's scheduler is {checkpoint.get('_class_name')}; fbgen runs {type(used).__name__}"
                     " (the config's solver)")  # fmt: skip
        return lines
    for name, value in sorted(checkpoint.items()):
        if name in IGNORED or name not in used.config:
            continue
        ours = used.config[name]
        if (list(ours) if isinstance(ours, tuple) else ours) != value:
            lines.append(f"scheduler {name}: checkpoint {value!r}, fbgen {ours!r}")
    return lines


def expert_notes(plan: Plan, experts: tuple[str, str] | None, switch: float | None, train_timesteps: int = 1000
                 ) -> list[str]:  # fmt: skip
    """Where a two-expert checkpoint's model runs outside the noise range it was trained for (the high-noise expert
    below its `boundary_ratio`, the low-noise one above it): allowed, since a user may want to try it, but said."""
    if not experts or switch is None:
        return []
    boundary = switch * train_timesteps
    lines = []
    for letter, name, outside in ((experts[0], "high-noise", lambda t: t < boundary),
                                  (experts[1], "low-noise", lambda t: t >= boundary)):  # fmt: skip
        steps = [i for i, (m, t) in enumerate(zip(plan.models, plan.timesteps)) if m == letter and outside(t)]
        if steps:
            side = "below" if name == "high-noise" else "at or above"
            lines.append(f"model {letter} is the checkpoint's {name} expert but runs {len(steps)} step(s) "
                         f"({steps[0]}..{steps[-1]}) with timesteps {side} its boundary_ratio {switch:g}·"
                         f"{train_timesteps}")  # fmt: skip
    return lines
