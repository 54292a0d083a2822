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
from fbgen.config.schema import RunConfig
from fbgen.core.boundaries import auto_boundaries
from fbgen.core.errors import BadInput
from fbgen.core.sampler import Step, guide, sample
from fbgen.core.solvers import plan_run
from fbgen.outputs.manifest import write_json

METRICS = ("rel_l2_guided", "cos_guided", "rel_l2_cond", "cos_cond")
DRIVER = "rel_l2_guided"  # what the sampler actually integrates


def divergence(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """(cosine distance, relative L2) of `other` against `reference`, over the whole tensor, in float32."""
    a, b = reference.float().flatten(), other.float().flatten()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return 1.0 - cos, ((a - b).norm() / a.norm().clamp_min(1e-12)).item()


def pair(config: RunConfig) -> tuple[str, str]:
    """The large model and the small one to compare: the config's largest, and the other letter of the schedule."""
    large = config.large
    others = [m for m in dict.fromkeys(config.schedule + "".join(config.models)) if m != large]
    if not others:
        raise BadInput(f"{config.source}: calibrate needs two models (e.g. models: {{L: ..., S: ...}})")
    return large, others[0]


def trace(session: Any, config: RunConfig, cond: Any, seed: int) -> dict[str, list[float]]:
    """Per-step divergences of one prompt along the large model's trajectory."""
    large, small = pair(config)
    cfg = config.guidance_scale[large] > 1.0
    scheduler, plan = plan_run(config, str(session.device))
    family, out = session.family, {m: [] for m in METRICS}
    family.configure(config)  # per-run settings the family takes (LTX: frame rate for RoPE)

    def velocity(latents: torch.Tensor, t: torch.Tensor, step: Step) -> torch.Tensor:
        big = family.predict(large, cond, latents, t, cfg, step)
        little = family.predict(small, cond, latents, t, config.guidance_scale[small] > 1.0, step)
        guided_big = big[0] if big[1] is None else guide(*big, config.guidance_scale[large])
        guided_little = little[0] if little[1] is None else guide(*little, config.guidance_scale[small])
        for kind, (a, b) in (("cond", (big[0], little[0])), ("guided", (guided_big, guided_little))):
            cos, rel = divergence(a, b)
            out[f"cos_{kind}"].append(cos)
            out[f"rel_l2_{kind}"].append(rel)
        return guided_big

    latents = family.initial_latents(seed, config.height, config.width, config.num_frames)
    sample(scheduler, plan.models, {large: velocity}, latents, after_step=lambda i, m, x: session.progress.step(i, m))
    return out


def calibrate(session: Any, items: list[Item], out_dir: Path) -> dict[str, Any]:
    """Trace every prompt (resuming from saved traces), aggregate, pick boundaries, write `calibration.json`."""
    base = session.config
    if base.offload == "idle" and session.device.type == "cuda":
        raise BadInput(f"{base.source}: key 'offload': calibrate runs both models every step; use none or group")
    large, small = pair(base)
    config = dataclasses.replace(base, schedule=large, boundaries=())
    scheduler, plan = plan_run(config, "cpu")
    traces_dir = out_dir / "traces"
    traces_dir.mkdir(parents=True, exist_ok=True)
    key = {"models": {m: base.models[m].id for m in (large, small)}, "steps": config.steps, "solver": config.solver,
           "shift": config.shift, "size": [config.height, config.width, config.num_frames],
           "guidance_scale": {m: config.guidance_scale[m] for m in (large, small)}, "seed": base.seed,
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
        session.progress.phase(f"calibrating {large} vs {small}: {len(todo)} prompt(s) to trace, "
                               f"{len(traces)} resumed")  # fmt: skip
        encoded = session.family.encode([i.prompt for i in todo], base.negative_prompt, True)
        for index, (item, cond) in enumerate(zip(todo, encoded)):
            seed = item.seed if item.seed is not None else item_seed(base.seed, item.id)
            session.progress.item_start(index, len(todo), item.id, plan)
            record = {"key": key, "id": item.id, "prompt": item.prompt, "seed": seed,
                      "per_step": trace(session, config, cond, seed)}  # fmt: skip
            write_json(traces_dir / f"{item.id}.json", record)  # atomic: a kill leaves no half trace
            traces[item.id] = record
    ordered = [traces[i.id] for i in items]
    per_step = {
        metric: {
            "mean": [statistics.fmean(t["per_step"][metric][i] for t in ordered) for i in range(config.steps)],
            "std": [statistics.pstdev([t["per_step"][metric][i] for t in ordered]) for i in range(config.steps)],
        }
        for metric in METRICS
    }
    boundaries = auto_boundaries(per_step[DRIVER]["mean"], plan.sigmas)
    result = {
        "large": large, "small": small, **key, "prompts": [{"id": t["id"], "prompt": t["prompt"], "seed": t["seed"]}
                                                           for t in ordered],
        "timesteps": plan.timesteps, "sigmas": plan.sigmas, "per_step": per_step, "driver": DRIVER,
        "boundaries": boundaries, "snippet": snippet(large, small, boundaries),
    }  # fmt: skip
    write_json(out_dir / "calibration.json", result)
    (out_dir / "calibration-snippet.yaml").write_text(result["snippet"])
    plot(result, out_dir / "calibration.png")
    return result


def snippet(large: str, small: str, boundaries: dict[str, Any]) -> str:
    f1, f2 = boundaries["fractions"]
    s1, s2 = boundaries["sigmas"]
    return (
        f"# fbgen calibrate: {boundaries['shape']} divergence curve; {boundaries['note']}\n"
        f"schedule: {large}{small}{large}\n"
        f"boundaries: [{f1}, {f2}]          # step fractions\n"
        f"# or, independent of the step count:\n"
        f"# boundaries: [{s1}, {s2}]\n"
        f"# boundary_unit: sigma\n"
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
