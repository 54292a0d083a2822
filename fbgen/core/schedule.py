"""Schedule string + boundaries → which model runs each denoising step. Pure: no torch, no models.

A schedule reads left to right over the trajectory, one letter per stage: `LSL` with boundaries `[0.4, 0.8]` runs
the large model on steps [0, 0.4N), the small one on [0.4N, 0.8N) and the large one again on [0.8N, N).
Boundaries are step fractions (default), absolute step indices, or sigma thresholds: exactly as `WanPipeline`
switches its Wan 2.2 experts, a step whose timestep is below `threshold · num_train_timesteps` belongs to the next
stage (the integer timestep is compared, not the float sigma; they disagree at e.g. 0.8335).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """A run of consecutive steps [start, end) that use one model."""

    model: str
    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    """The per-step model assignment for one trajectory, with the scheduler's timesteps and sigmas."""

    schedule: str
    starts: tuple[int, ...]  # first step of each stage of `schedule`
    models: tuple[str, ...]
    timesteps: tuple[float, ...]
    sigmas: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.models)

    @property
    def stages(self) -> list[Stage]:
        """Maximal runs of one model (adjacent stages of the same letter merge: LLL is one stage)."""
        stages: list[Stage] = []
        for i, model in enumerate(self.models):
            if stages and stages[-1].model == model:
                stages[-1] = Stage(model, stages[-1].start, i + 1)
            else:
                stages.append(Stage(model, i, i + 1))
        return stages

    def tag(self) -> str:
        """Deterministic schedule name for file names: `LLL-n50`, or `LSL-20-40-n50` with its switch steps."""
        if len(set(self.schedule)) == 1:
            return f"{self.schedule}-n{self.steps}"
        return "-".join([self.schedule, *map(str, self.starts[1:]), f"n{self.steps}"])

    def count(self, model: str) -> int:
        return self.models.count(model)


def stage_starts(boundaries: Sequence[float], unit: str, timesteps: Sequence[float], train_timesteps: int = 1000
                 ) -> list[int]:  # fmt: skip
    """First step index of each stage after the first, for `steps = len(timesteps)` steps."""
    steps = len(timesteps)
    if unit == "fraction":
        return [min(steps, math.floor(b * steps + 0.5)) for b in boundaries]
    if unit == "step":
        return [min(steps, int(b)) for b in boundaries]
    if unit == "sigma":
        return [next((i for i, t in enumerate(timesteps) if not t >= b * train_timesteps), steps) for b in boundaries]
    raise ValueError(f"unknown boundary unit {unit!r}")


def build_plan(
    schedule: str, boundaries: Sequence[float], unit: str, timesteps: Sequence[float], sigmas: Sequence[float],
    train_timesteps: int = 1000,
) -> Plan:
    """Assign a model letter to every step. `sigmas` has one entry per step (the scheduler's final 0 excluded)."""
    if len(boundaries) != len(schedule) - 1:
        raise ValueError(f"schedule {schedule} needs {len(schedule) - 1} boundaries, got {len(boundaries)}")
    if len(timesteps) != len(sigmas):
        raise ValueError("timesteps and sigmas must have one entry per step")
    starts = [0, *stage_starts(boundaries, unit, timesteps, train_timesteps), len(sigmas)]
    models: list[str] = []
    for letter, start, end in zip(schedule, starts, starts[1:]):
        models += [letter] * max(0, end - max(start, len(models)))
    return Plan(schedule, tuple(starts[:-1]), tuple(models), tuple(map(float, timesteps)), tuple(map(float, sigmas)))
