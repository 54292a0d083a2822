"""The paper in miniature on the shipped demo pair: LLL, SSS, LSS, SLL, LSL and an LSL boundary sweep on N
prompt/seed pairs, each video scored by the attribute checker (does it show what the caption says? how clean is
it?), by fidelity to LLL from the same seed, by FLOPs and by wall time.

    python -m fbgen.demo.results --pairs 100 --out docs/DEMO_RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fbgen.apps.batch import Item
from fbgen.apps.compare import describe, render_specs, run_specs
from fbgen.apps.fidelity import pixel_fidelity
from fbgen.config import load_config
from fbgen.demo import checker
from fbgen.demo.data import Clip, dataset
from fbgen.demo.data import render as render_clip
from fbgen.demo.train import hardware
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job

SCHEDULES = ["SSS", "LSS", "SLL", "LSL"]
SWEEPS = {"early": [0.2, 0.3, 0.6], "late": [0.6, 0.9]}
PROMPT_SEED = 2026  # captions of the evaluation pairs (the training clips use other seeds)
ATTRIBUTES = ("colour", "shape", "size", "direction", "speed", "background")
READABLE = 0.9  # round-trip accuracy from which an attribute counts as carried by the autoencoder


def measure(config_path: str, pairs: int, overrides: list[str] | None = None, log=print) -> dict[str, Any]:
    """Run every schedule on `pairs` captions (seed i for caption i) and score each video."""
    config = load_config(config_path, overrides)
    clips = dataset(PROMPT_SEED, pairs)
    items = [Item(f"p{i:03d}", clip.caption, i + 1, seed=i) for i, clip in enumerate(clips)]
    clip_of = {item.id: clip for item, clip in zip(items, clips)}
    specs = run_specs(config, SCHEDULES, SWEEPS)
    engine = Engine.open(config)
    job = Job.of(config)
    sources = {"training data": render_clip, "VAE round trip": lambda c: engine.autoencode(job, render_clip(c))}
    baseline_rows = {name: [score(make(clip), clip) for clip in clips] for name, make in sources.items()}
    # An attribute the autoencoder itself does not carry (its round trip reads it about as often as chance) says
    # nothing about the transformers: the headline accuracy counts the attributes the round trip preserves.
    trip = baseline_rows["VAE round trip"]
    readable = [k for k in ATTRIBUTES if np.mean([r[f"ok_{k}"] for r in trip]) >= READABLE]
    rows, start = [], time.perf_counter()
    for n, (item, seed, videos, measured) in enumerate(render_specs(engine, items, specs)):
        clip = clip_of[item.id]
        reference = videos[specs[0].name]
        for spec in specs:
            rows.append({"id": item.id, "prompt": item.prompt, "seed": seed, **describe(spec, measured, specs[0].name),
                         **pixel_fidelity(videos[spec.name], reference), **score(videos[spec.name], clip)})  # fmt: skip
        if (n + 1) % 10 == 0 or n + 1 == len(items):
            log(f"{n + 1}/{len(items)} prompts, {time.perf_counter() - start:.0f} s")
    runs = [summarise(spec.name, spec, [r for r in rows if r["run"] == spec.name], readable) for spec in specs]
    baselines = [summarise(name, None, group, readable) for name, group in baseline_rows.items()]
    return {
        "config": config_path, "overrides": overrides or [], "pairs": pairs, "steps": config.steps,
        "solver": config.solver, "guidance_scale": config.guidance_scale, "size": [config.height, config.width,
        config.num_frames], "models": {m: r.id for m, r in config.models.items()}, "reference": specs[0].name,
        "readable": readable, "runs": runs, "baselines": baselines, "rows": rows,
        "wall_s": time.perf_counter() - start,
        "hardware": hardware(engine.device),
        "torch": torch.__version__,
    }  # fmt: skip


def score(frames: np.ndarray, clip: Clip) -> dict[str, Any]:
    """The checker's artifact score and, per attribute, whether it reads back what the caption says."""
    reading, truth = checker.read(frames), clip.attributes()
    return {"artifact": reading.artifact, **{f"ok_{k}": reading.attributes[k] == truth[k] for k in ATTRIBUTES}}


@torch.no_grad()
def summarise(name: str, spec: Any, rows: list[dict[str, Any]], readable: list[str]) -> dict[str, Any]:
    ok = np.array([[r[f"ok_{k}"] for k in ATTRIBUTES] for r in rows], bool)
    keep = [ATTRIBUTES.index(k) for k in readable]
    out = {"run": name, "schedule": spec and spec.schedule, "boundaries": spec and list(spec.boundaries),
           "sweep": spec and spec.sweep, "accuracy_readable": float(ok[:, keep].all(axis=1).mean()),
           "accuracy_all": float(ok.all(axis=1).mean())}  # fmt: skip
    out.update({k: float(ok[:, i].mean()) for i, k in enumerate(ATTRIBUTES)})
    for key in ("artifact", "psnr", "ssim", "flops", "wall_s", "time_vs_reference", "flops_vs_reference"):
        if key in rows[0]:
            out[key] = float(np.mean([r[key] for r in rows]))
    return out


def results_markdown(result: dict[str, Any], command: str) -> str:
    h, w, f = result["size"]
    runs, ref, readable = result["runs"], result["reference"], result["readable"]
    lines = [
        "# FlowBlending in miniature: the shipped demo pair",
        "",
        f"{result['pairs']} prompt/seed pairs (caption i of `dataset({PROMPT_SEED}, {result['pairs']})`, seed i), "
        f"{h}×{w}×{f}, {result['steps']} steps {result['solver']}, CFG "
        f"{'/'.join(f'{v:g}' for v in sorted(set(result['guidance_scale'].values())))}, on "
        f"{result['hardware']} (torch {result['torch']}); {result['wall_s'] / 60:.1f} min in all.",
        "",
        "Regenerate (the JSON beside this file holds every video's numbers):",
        "",
        f"    {command}",
        "",
        "- **readable**: the checker (`fbgen/demo/checker.py`, 100% on ground-truth clips) reads every attribute that "
        f"the pair's autoencoder carries ({', '.join(readable)}: ≥ {READABLE:.0%} after a VAE round trip of the "
        "ground truth) back from the generated frames as the caption says; the other columns are per attribute;",
        "- **artifact**: energy off the clean two-colour picture + background flicker (0 for a clean render);",
        f"- **PSNR/SSIM**: against {ref} from the same seed; **FLOPs, time**: per video relative to {ref} "
        "(time = denoise + decode on this CPU).",
        "",
        "| run | boundaries | readable | " + " | ".join(ATTRIBUTES) + " | artifact | PSNR dB | SSIM | FLOPs vs LLL "
        "| time vs LLL |",
        "| --- | --- | ---: |" + " ---: |" * len(ATTRIBUTES) + " ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        psnr = "ref" if r["run"] == ref else f"{r['psnr']:.2f}"
        lines.append(f"| {r['run']} | {r['boundaries']} | **{r['accuracy_readable']:.0%}** | "
                     + " | ".join(f"{r[k]:.0%}" for k in ATTRIBUTES)
                     + f" | {r['artifact']:.4f} | {psnr} | {r['ssim']:.3f} | {r['flops_vs_reference']:.3f} | "
                     f"{r['time_vs_reference']:.3f} |")  # fmt: skip
    for r in result["baselines"]:
        lines.append(f"| _{r['run']}_ | – | {r['accuracy_readable']:.0%} | "
                     + " | ".join(f"{r[k]:.0%}" for k in ATTRIBUTES)
                     + f" | {r['artifact']:.4f} | – | – | – | – |")  # fmt: skip
    lines += ["", "## What the numbers show", "", *findings(runs, ref), ""]
    return "\n".join(lines)


def findings(runs: list[dict[str, Any]], ref: str) -> list[str]:
    """Plain statements read off the table (regenerated with it, so they never go stale)."""
    by = {r["run"]: r for r in runs}
    large, small, lsl = by[ref], by["SSS"], by["LSL"]
    ranked = sorted([large, *(by[s] for s in ("SSS", "LSS", "SLL", "LSL"))], key=lambda r: -r["accuracy_readable"])
    out = [
        "- Ranking by readable accuracy: " + " > ".join(f"{r['run']} {r['accuracy_readable']:.0%}" for r in ranked)
        + ".",
        f"- Small alone vs large alone: SSS {small['accuracy_readable']:.0%} vs LLL {large['accuracy_readable']:.0%}, "
        f"artifact {small['artifact']:.4f} vs {large['artifact']:.4f}, at {small['flops_vs_reference']:.3f} of the "
        "FLOPs.",
        f"- LSL [0.4, 0.8]: {lsl['accuracy_readable']:.0%} with {1 - lsl['flops_vs_reference']:.0%} fewer FLOPs and "
        f"{large['wall_s'] / lsl['wall_s']:.2f}x the speed of LLL; PSNR {lsl['psnr']:.2f} dB to LLL.",
        f"- Large early only (LSS): {by['LSS']['accuracy_readable']:.0%}, artifact {by['LSS']['artifact']:.4f}; "
        f"large late only (SLL): {by['SLL']['accuracy_readable']:.0%}, artifact {by['SLL']['artifact']:.4f}.",
    ]  # fmt: skip
    for kind, label, i in (("early", "L→S switch", 0), ("late", "S→L return", 1)):
        sweep = sorted((r for r in runs if r["sweep"] == kind or r["run"] == "LSL"), key=lambda r: r["boundaries"][i])
        points = ", ".join(f"{r['boundaries'][i]:g}: {r['accuracy_readable']:.0%} / {r['psnr']:.1f} dB" for r in sweep)
        out.append(f"- Sweep of the {label} (readable accuracy / PSNR to LLL): {points}.")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="docs/DEMO_RESULTS.md")
    args = parser.parse_args(argv)
    command = "python -m fbgen.demo.results " + " ".join(sys.argv[1:] if argv is None else argv)
    result = measure(args.config, args.pairs, args.overrides)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.write_text(results_markdown(result, command.strip()))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
