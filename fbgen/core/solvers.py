"""The diffusers scheduler for a run: one instance spans every stage of the trajectory."""

from __future__ import annotations

from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin


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
