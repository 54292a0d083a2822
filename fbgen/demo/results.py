"""The paper in miniature on the shipped demo pair, on held-out captions the pair never saw in training.

LLL, SSS, LSS, SLL, LSL and boundary sweeps of both switches on N prompt/seed pairs, each video scored by the
checker (per attribute: does it show what the caption says? how clean is it?), by fidelity to LLL from the same
seed, by executed FLOPs and by wall time; then `fbgen calibrate`'s divergence curve on held-out captions, and where its
automatic boundaries land against the sweeps.

    python -m fbgen.demo.results --pairs 100 --out docs/DEMO_RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fbgen.apps.batch import Item
from fbgen.apps.calibrate import calibrate
from fbgen.apps.compare import describe, render_specs, run_specs
from fbgen.apps.fidelity import pixel_fidelity
from fbgen.config import load_config
from fbgen.demo import checker
from fbgen.demo.checker import ATTRIBUTES
from fbgen.demo.data import Clip, dataset
from fbgen.demo.data import render as render_clip
from fbgen.demo.train import hardware
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job

SCHEDULES = ["SSS", "LSS", "SLL", "LSL"]
SWEEPS = {"early": [0.1, 0.2, 0.3, 0.5, 0.6], "late": [0.6, 0.7, 0.9]}  # around the config's [0.4, 0.8]
PROMPT_SEED = 2026  # evaluation captions: dataset(PROMPT_SEED, n, held=True), a split training never draws from
NEAR = 0.02  # a sweep point is as good as the best one when its mean accuracy is within this
CLEAN = 0.1  # ... and, for the return to the large model, when its artifact score is within this share of the lowest


def items_of(clips: list[Clip]) -> list[Item]:
    return [Item(f"p{i:03d}", clip.caption, i + 1, seed=i) for i, clip in enumerate(clips)]


def measure(config_path: str, pairs: int, overrides: list[str] | None = None, calibration_pairs: int = 20,
            calibration_dir: Path | None = None, log=print) -> dict[str, Any]:  # fmt: skip
    """Run every schedule on `pairs` held-out captions (seed i for caption i), score each video, calibrate."""
    config = load_config(config_path, overrides)
    clips = dataset(PROMPT_SEED, pairs, held=True)
    items = items_of(clips)
    clip_of = {item.id: clip for item, clip in zip(items, clips)}
    specs = run_specs(config, SCHEDULES, SWEEPS)
    engine = Engine.open(config)
    job = Job.of(config)
    sources = {"ground truth": render_clip, "VAE round trip": lambda c: engine.autoencode(job, render_clip(c))}
    baseline_rows = {name: [score_video(make(clip), clip) for clip in clips] for name, make in sources.items()}
    rows, start = [], time.perf_counter()
    for n, (item, seed, videos, measured) in enumerate(render_specs(engine, items, specs)):
        clip = clip_of[item.id]
        reference = videos[specs[0].name]
        for spec in specs:
            rows.append({"id": item.id, "prompt": item.prompt, "seed": seed, **describe(spec, measured, specs[0].name),
                         **pixel_fidelity(videos[spec.name], reference),
                         **score_video(videos[spec.name], clip)})  # fmt: skip
        if (n + 1) % 10 == 0 or n + 1 == len(items):
            log(f"{n + 1}/{len(items)} prompts, {time.perf_counter() - start:.0f} s")
    render_s = time.perf_counter() - start
    runs = [summarise(spec.name, spec, [r for r in rows if r["run"] == spec.name]) for spec in specs]
    baselines = [summarise(name, None, group) for name, group in baseline_rows.items()]
    cal_dir = calibration_dir or Path(tempfile.mkdtemp(prefix="fbgen-demo-calibration-"))
    calibration = calibrate(engine, items_of(dataset(PROMPT_SEED + 1, calibration_pairs, held=True)), cal_dir)
    log(f"calibrated on {calibration_pairs} held-out captions: {calibration['boundaries']['fractions']}")
    if calibration_dir is None:
        shutil.rmtree(cal_dir, ignore_errors=True)
    return {
        "config": config_path, "overrides": overrides or [], "pairs": pairs, "steps": config.steps,
        "solver": config.solver, "guidance_scale": config.guidance_scale, "size": [config.height, config.width,
        config.num_frames], "models": {m: r.id for m, r in config.models.items()}, "reference": specs[0].name,
        "runs": runs, "baselines": baselines, "rows": rows, "wall_s": render_s,
        "calibration": {k: calibration[k] for k in ("boundaries", "per_step", "sigmas", "driver")}
        | {"pairs": calibration_pairs},
        "sweep_best": sweep_best(runs), "hardware": hardware(engine.device), "torch": torch.__version__,
    }  # fmt: skip


def score_video(frames: np.ndarray, clip: Clip) -> dict[str, Any]:
    """The checker's artifact score and, per attribute, the fraction it reads back as the caption says."""
    reading = checker.read(frames)
    return {"artifact": reading.artifact, **checker.score(reading, clip.attributes())}


def summarise(name: str, spec: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"run": name, "schedule": spec and spec.schedule, "boundaries": spec and list(spec.boundaries),
           "sweep": spec and spec.sweep}  # fmt: skip
    for key in (*ATTRIBUTES, "all", "artifact", "psnr", "ssim", "flops", "wall_s", "time_vs_reference",
                "flops_vs_reference"):  # fmt: skip
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = float(np.mean(values))
    out["mean"] = float(np.mean([out[k] for k in ATTRIBUTES]))  # every attribute weighs the same
    return out


def sweep_points(runs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """One switch's sweep, in boundary order; the LSL run at the config's boundaries belongs to both sweeps."""
    i = 0 if kind == "early" else 1
    return sorted((r for r in runs if r["sweep"] == kind or r["run"] == "LSL"), key=lambda r: r["boundaries"][i])


def sweep_best(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per switch, the sweep's best boundary, by the paper's two criteria: the cheapest point (fewest large-model
    steps) whose mean accuracy is within NEAR of the sweep's top (how long the small model keeps the content); for
    the return, also with an artifact score within CLEAN of the lowest among those (where bringing the large model
    back earlier stops removing artifacts)."""
    out = {}
    for kind, i in (("early", 0), ("late", 1)):
        points = sweep_points(runs, kind)
        top = max(r["mean"] for r in points)
        good = [r for r in points if r["mean"] >= top - NEAR]
        if kind == "late":
            clean = min(r["artifact"] for r in good)
            good = [r for r in good if r["artifact"] <= clean * (1 + CLEAN)]
        out[kind] = min(good, key=lambda r: r["flops"])["boundaries"][i]
    return out


def results_markdown(result: dict[str, Any], command: str) -> str:
    h, w, f = result["size"]
    runs, ref = result["runs"], result["reference"]
    lines = [
        "# FlowBlending in miniature: the shipped demo pair",
        "",
        f"{result['pairs']} prompt/seed pairs (caption i of the held-out split, `dataset({PROMPT_SEED}, "
        f"{result['pairs']}, held=True)`, seed i; the pair never saw these captions in training), {h}×{w}×{f}, "
        f"{result['steps']} steps {result['solver']}, CFG "
        f"{'/'.join(f'{v:g}' for v in sorted(set(result['guidance_scale'].values())))}, on "
        f"{result['hardware']} (torch {result['torch']}); {result['wall_s'] / 60:.1f} min of rendering.",
        "",
        "Regenerate (the JSON beside this file holds every video's numbers):",
        "",
        f"    {command}",
        "",
        "- **attributes** (`fbgen/demo/checker.py`, 100% on ground-truth clips): the fraction the checker reads back "
        "as the caption says — count of objects, each object's colour (it is there), shape, texture (plain or "
        "striped), direction and speed, the relation of two objects (above/below/left of/right of), background; "
        "**mean** weighs them equally, **all** is the share of videos with everything right;",
        "- **artifact**: how far the picture is off a clean render (off-palette energy + background flicker; 0 for "
        "a clean render): blurred stripes and smeared edges raise it;",
        f"- **PSNR/SSIM**: against {ref} from the same seed; **FLOPs, time**: executed per video relative to {ref} "
        "(time = denoise + decode on this machine).",
        "",
        "| run | boundaries | mean | all | " + " | ".join(ATTRIBUTES) + " | artifact | PSNR dB | SSIM | FLOPs vs LLL "
        "| time vs LLL |",
        "| --- | --- | ---: | ---: |" + " ---: |" * len(ATTRIBUTES) + " ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        psnr = "ref" if r["run"] == ref else f"{r['psnr']:.2f}"
        lines.append(f"| {r['run']} | {r['boundaries']} | **{r['mean']:.0%}** | {r['all']:.0%} | "
                     + " | ".join(f"{r[k]:.0%}" for k in ATTRIBUTES)
                     + f" | {r['artifact']:.4f} | {psnr} | {r['ssim']:.3f} | {r['flops_vs_reference']:.3f} | "
                     f"{r['time_vs_reference']:.3f} |")  # fmt: skip
    for r in result["baselines"]:
        lines.append(f"| _{r['run']}_ | – | {r['mean']:.0%} | {r['all']:.0%} | "
                     + " | ".join(f"{r[k]:.0%}" for k in ATTRIBUTES)
                     + f" | {r['artifact']:.4f} | – | – | – | – |")  # fmt: skip
    lines += ["", "## What the numbers show", "", *findings(result), ""]
    return "\n".join(lines)


def findings(result: dict[str, Any]) -> list[str]:
    """Plain statements read off the table (regenerated with it, so they never go stale)."""
    runs, ref, cal = result["runs"], result["reference"], result["calibration"]
    by = {r["run"]: r for r in runs}
    large, small, lsl, lss, sll = by[ref], by["SSS"], by["LSL"], by["LSS"], by["SLL"]
    ranked = sorted([large, small, lss, sll, lsl], key=lambda r: -r["mean"])
    worst = max(ATTRIBUTES, key=lambda k: large[k] - lsl[k])
    curve = cal["per_step"][cal["driver"]]["mean"]
    bounds, best = cal["boundaries"], result["sweep_best"]
    peak, low = bounds.get("early_peak_step"), bounds.get("low_step")
    landmarks = "" if peak is None else (f"{curve[peak]:.3f} at its early peak (step {peak + 1}), {curve[low]:.3f} "
                                         f"at its low (step {low + 1}), ")  # fmt: skip
    out = [
        "- Ranking by mean attribute accuracy: " + " > ".join(f"{r['run']} {r['mean']:.0%}" for r in ranked) + ".",
        f"- Small alone vs large alone: SSS {small['mean']:.0%} vs LLL {large['mean']:.0%} (everything right: "
        f"{small['all']:.0%} vs {large['all']:.0%}), artifact {small['artifact']:.4f} vs {large['artifact']:.4f}, at "
        f"{small['flops_vs_reference']:.3f} of the FLOPs.",
        f"- LSL {lsl['boundaries']}: {lsl['mean']:.0%} with {1 - lsl['flops_vs_reference']:.0%} fewer FLOPs and "
        f"{large['wall_s'] / lsl['wall_s']:.2f}x the speed of LLL; its largest gap to LLL is {worst} "
        f"({lsl[worst]:.0%} vs {large[worst]:.0%}); artifact {lsl['artifact']:.4f}; PSNR {lsl['psnr']:.2f} dB to LLL.",
        f"- Large model early only (LSS): {lss['mean']:.0%}, artifact {lss['artifact']:.4f}, texture "
        f"{lss['texture']:.0%}; large model late only (SLL): {sll['mean']:.0%}, artifact {sll['artifact']:.4f}, "
        f"count {sll['count']:.0%}, relation {sll['relation']:.0%}.",
    ]  # fmt: skip
    for kind, label, i in (("early", "L→S switch", 0), ("late", "S→L return", 1)):
        sweep = sweep_points(runs, kind)
        points = ", ".join(f"{r['boundaries'][i]:g}: {r['mean']:.0%} / {r['artifact']:.4f} / {r['psnr']:.1f} dB"
                           for r in sweep)  # fmt: skip
        criterion = f"cheapest within {NEAR:.0%} of the top" + ("" if kind == "early" else f" and within {CLEAN:.0%} "
                                                               "of the lowest artifact score among those")  # fmt: skip
        out.append(f"- Sweep of the {label} (mean accuracy / artifact / PSNR to LLL): {points}; best ({criterion}): "
                   f"{best[kind]:g}.")  # fmt: skip
    out.append(
        f"- `fbgen calibrate` on {cal['pairs']} other held-out captions: the divergence curve is "
        f"**{bounds['shape']}** (relative L2 of the guided velocity: {curve[0]:.3f} at the first step, "
        f"{landmarks}{curve[-1]:.3f} at the last); automatic boundaries {bounds['fractions']} vs the sweeps' best "
        f"[{best['early']:g}, {best['late']:g}]."
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--calibration-pairs", type=int, default=20)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="docs/DEMO_RESULTS.md")
    args = parser.parse_args(argv)
    command = "python -m fbgen.demo.results " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cal_dir = out.with_name(out.stem + "-calibration")
    result = measure(args.config, args.pairs, args.overrides, args.calibration_pairs, cal_dir)
    shutil.rmtree(cal_dir / "traces", ignore_errors=True)  # the curve is in calibration.json
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.write_text(results_markdown(result, command.strip()))
    print(f"wrote {out}, {out.with_suffix('.json')} and {cal_dir}/")


if __name__ == "__main__":
    main()
