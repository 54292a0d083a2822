"""Boundary calibration: where along the trajectory does the small model agree with the large one?

For each prompt, follow the large model's own trajectory (LLL) and, at every step, also evaluate the small model on
the same latent, timestep and conditioning. Record the divergence of the two velocities — cosine distance and
relative L2, on the conditional prediction and on the guided one — aggregate over prompts (mean and spread), and read
boundaries off the guided relative-L2 curve with `fbgen.boundaries.auto_boundaries`.

Each prompt's trace is saved as soon as it is done (`traces/<id>.json`), so an interrupted calibration resumes at
the next prompt.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from fbgen.apps.batch import Item, item_seed
from fbgen.config import RunConfig
from fbgen.config.schema import experts
from fbgen.core.boundaries import auto_boundaries
from fbgen.core.errors import BadInput
from fbgen.core.sampler import Step, guide
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.outputs.manifest import write_json

METRICS = ("rel_l2_guided", "cos_guided", "rel_l2_cond", "cos_cond")
DRIVER = "rel_l2_guided"  # what the sampler actually integrates


def divergence(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """(cosine distance, relative L2) of `other` against `reference`, over the whole tensor, in float32."""
    a, b = reference.float().flatten(), other.float().flatten()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return 1.0 - cos, ((a - b).norm() / a.norm().clamp_min(1e-12)).item()


def roles(config: RunConfig) -> tuple[str, str]:
    """(reference, small): the small model is measured against the reference's trajectory. The reference is the
    large model (`"L"`), or a two-expert checkpoint's experts switched as the checkpoint switches them (`"HL"` for
    Wan 2.2 A14B's `transformer` and `transformer_2`); the small model is the config's other letter."""
    pair = experts(config.models)
    reference = "".join(pair) if pair else config.large
    others = [m for m in dict.fromkeys(config.schedule + "".join(config.models)) if m not in reference]
    if not others:
        raise BadInput(f"{config.source}: calibrate needs a small model beside {' and '.join(reference)} "
                       f"(e.g. models: {{L: ..., S: ...}})")  # fmt: skip
    return reference, others[0]


def check_calibration(config: RunConfig, device: str) -> None:
    """What calibration cannot run with, refused before any weights load."""
    if config.offload in ("idle", "auto") and device == "cuda":  # auto may choose idle
        raise BadInput(f"{config.source}: key 'offload': calibrate runs both models every step; use none or group")


def trace(engine: Engine, job: Job, cond: Any) -> dict[str, list[float]]:
    """Per-step divergences of one prompt along the reference's trajectory (`job` is the reference's job): the
    engine runs the loop, with a denoiser that asks the reference model of each step and the small one and follows
    the reference."""
    small = roles(engine.config)[1]
    reference = engine.plan(job)[1].models
    predictions, out = engine.predictions(job, cond), {m: [] for m in METRICS}
    scales = job.guidance_scale

    def velocity(latents: torch.Tensor, t: torch.Tensor, step: Step) -> torch.Tensor:
        large = reference[step.index]
        big = predictions[large](latents, t, scales[large] > 1.0, step)
        little = predictions[small](latents, t, scales[small] > 1.0, step)
        guided_big = big[0] if big[1] is None else guide(*big, scales[large])
        guided_little = little[0] if little[1] is None else guide(*little, scales[small])
        for kind, (a, b) in (("cond", (big[0], little[0])), ("guided", (guided_big, guided_little))):
            cos, rel = divergence(a, b)
            out[f"cos_{kind}"].append(cos)
            out[f"rel_l2_{kind}"].append(rel)
        return guided_big

    engine.denoise(job, cond, denoiser=velocity)
    return out


def calibrate(engine: Engine, items: list[Item], out_dir: Path) -> dict[str, Any]:
    """Trace every prompt (resuming from saved traces), aggregate, pick boundaries, write `calibration.json`."""
    base = engine.config
    check_calibration(base, engine.device.type)
    large, small = roles(base)  # `large` is the reference: one model or the checkpoint's switched experts
    reference = Job.of(base).changed("calibrate", schedule=large, boundaries=[])
    scheduler, plan = engine.plan(reference)
    traces_dir = out_dir / "traces"
    traces_dir.mkdir(parents=True, exist_ok=True)
    letters = (*large, small)
    key = {"models": {m: vars(base.models[m]) for m in letters}, "reference": large,
           "boundaries": list(reference.boundaries), "steps": base.steps, "solver": base.solver, "shift": base.shift,
           "size": [base.height, base.width, base.num_frames],
           "guidance_scale": {m: base.guidance_scale[m] for m in letters}, "seed": base.seed,
           "negative_prompt": base.negative_prompt}  # fmt: skip
    traces, todo = {}, []
    for item in items:
        path = traces_dir / f"{item.id}.json"
        saved = json.loads(path.read_text()) if path.is_file() else None
        if saved and saved.get("key") == key:
            traces[item.id] = saved
        else:
            todo.append(item)
    if todo:
        engine.progress.phase(f"calibrating {large} vs {small}: {len(todo)} prompt(s) to trace, "
                              f"{len(traces)} resumed")  # fmt: skip
        jobs = [dataclasses.replace(reference, prompt=i.prompt,
                                    seed=i.seed if i.seed is not None else item_seed(base.seed, i.id)) for i in todo]
        for index, (item, job, cond) in enumerate(zip(todo, jobs, engine.encode(jobs))):
            engine.progress.item_start(index, len(todo), item.id, plan)
            record = {"key": key, "id": item.id, "prompt": item.prompt, "seed": job.seed,
                      "per_step": trace(engine, job, cond)}  # fmt: skip
            write_json(traces_dir / f"{item.id}.json", record)  # atomic: a kill leaves no half trace
            traces[item.id] = record
    ordered = [traces[i.id] for i in items]
    per_step = {
        metric: {
            "mean": [statistics.fmean(t["per_step"][metric][i] for t in ordered) for i in range(base.steps)],
            "std": [statistics.pstdev([t["per_step"][metric][i] for t in ordered]) for i in range(base.steps)],
        }
        for metric in METRICS
    }
    boundaries = auto_boundaries(per_step[DRIVER]["mean"], plan.sigmas)
    switch = plan.starts[1] if len(plan.starts) > 1 else None  # where the reference's experts switch
    result = {
        "large": large, "small": small, **key, "prompts": [{"id": t["id"], "prompt": t["prompt"], "seed": t["seed"]}
                                                           for t in ordered],
        "reference_models": list(plan.models), "timesteps": plan.timesteps, "sigmas": plan.sigmas,
        "per_step": per_step, "driver": DRIVER, "boundaries": boundaries,
        "snippet": snippet(large, small, boundaries, reference.boundaries, switch),
    }  # fmt: skip
    write_json(out_dir / "calibration.json", result)
    (out_dir / "calibration-snippet.yaml").write_text(result["snippet"])
    plot(result, out_dir / "calibration.png")
    return result


def snippet(large: str, small: str, boundaries: dict[str, Any], expert_switch: tuple[float, ...] = (),
            switch_step: int | None = None) -> str:  # fmt: skip
    """The config lines for the suggested schedule. With two experts (`large` = "HL") the small model takes the
    suggested band and each expert keeps its side of the checkpoint's switch: HSL when the band spans the switch,
    HSHL or HLSL (switch kept where the checkpoint has it) when the band lies on one side of it."""
    f1, f2 = boundaries["fractions"]
    s1, s2 = boundaries["sigmas"]
    head = f"# fbgen calibrate: {boundaries['shape']} divergence curve; {boundaries['note']}\n"
    if len(large) == 1:
        return (
            head + f"schedule: {large}{small}{large}\n"
            f"boundaries: [{f1}, {f2}]          # step fractions\n"
            f"# or, independent of the step count:\n"
            f"# boundaries: [{s1}, {s2}]\n"
            f"# boundary_unit: sigma\n"
        )
    high, low = large
    b1, b2 = boundaries["steps"]
    (ratio,) = expert_switch
    if switch_step is not None and b2 < switch_step:
        schedule, values = f"{high}{small}{high}{low}", [s1, s2, ratio]
    elif switch_step is not None and b1 > switch_step:
        schedule, values = f"{high}{low}{small}{low}", [ratio, s1, s2]
    else:
        schedule, values = f"{high}{small}{low}", [s1, s2]
    return (
        head + f"# {small} over steps {b1}..{b2 - 1}; the checkpoint switches {high} -> {low} at step "
        f"{switch_step} (boundary_ratio {ratio:g})\n"
        f"schedule: {schedule}\n"
        f"boundaries: [{', '.join(f'{v:g}' for v in values)}]\n"
        f"boundary_unit: sigma\n"
    )


def plot(result: dict[str, Any], path: Path) -> None:
    """The four divergence curves (mean ± spread over prompts) with the chosen boundaries marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = range(len(result["sigmas"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, kind in zip(axes, ("rel_l2", "cos")):
        for branch, style in (("guided", "-"), ("cond", "--")):
            data = result["per_step"][f"{kind}_{branch}"]
            mean, std = data["mean"], data["std"]
            ax.plot(steps, mean, style, label=f"{branch}")
            ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
        for b, name in zip(result["boundaries"]["steps"], ("early", "late")):
            ax.axvline(b, color="k", linestyle=":", label=f"{name} boundary: step {b}")
        ax.set_xlabel("denoising step")
        ax.set_ylabel("relative L2" if kind == "rel_l2" else "cosine distance")
        ax.legend(fontsize=8)
    n = len(result["prompts"])
    fig.suptitle(f"{result['small']} vs {result['large']} velocity divergence on {result['large']}'s trajectory "
                 f"({n} prompt{'s' * (n != 1)}, {result['boundaries']['shape']})")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
