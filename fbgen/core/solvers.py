"""The diffusers scheduler for a run: one instance spans every stage of the trajectory."""

from __future__ import annotations

from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from fbgen.config.schema import RunConfig
from fbgen.core.schedule import Plan, build_plan
from fbgen.families import load_adapter


def make_scheduler(solver: str, shift: float) -> SchedulerMixin:
    """UniPC with flow sigmas (the Wan 2.1 default), flow-matching Euler or DPM++ (2M, flow sigmas), all with the
    given time shift."""
    if solver == "unipc":
        return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
    if solver == "euler":
        return FlowMatchEulerDiscreteScheduler(shift=shift)
    if solver == "dpmpp":
        return DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift,
                                           algorithm_type="dpmsolver++", solver_order=2)  # fmt: skip
    raise ValueError(f"unknown solver {solver!r}")


def plan_run(config: RunConfig, device: str = "cpu") -> tuple[SchedulerMixin, Plan]:
    """A fresh scheduler with timesteps set the family's way, and the per-step model plan over those timesteps."""
    scheduler = load_adapter(config.family).scheduler(config, device)
    sigmas = [float(s) for s in scheduler.sigmas[: config.steps]]
    timesteps = [float(t) for t in scheduler.timesteps]
    plan = build_plan(config.schedule, config.boundaries, config.boundary_unit, timesteps, sigmas)
    return scheduler, plan
