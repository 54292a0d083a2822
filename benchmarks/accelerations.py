"""What each acceleration costs in quality and saves in compute, measured on trained weights: the shipped demo pair.

The GPU harness (`speed.py`) times the accelerations at the real Wan/LTX configs, but with random weights, and a
cache hook's reuse depends on how alike consecutive steps of a *trained* model are. Here every acceleration runs
alone and with LSL on N prompt/seed pairs of the demo pair, on the CPU; each video is scored by the demo's
attribute checker (mean per-attribute accuracy on held-out captions), by PSNR to plain LLL from the same seed, and
by the transformer FLOPs it really executed (`flops.executed`, as in every manifest: blocks a hook skipped are not
counted; equal to `torch.utils.flop_counter` in the tests, which on the CPU misses the fused attention kernel).

    python benchmarks/accelerations.py --pairs 50 --json benchmarks/results/cpu-demo-accelerations.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fbgen.apps.compare import RunSpec, variant
from fbgen.apps.fidelity import pixel_fidelity
from fbgen.config import load_config
from fbgen.demo.checker import ATTRIBUTES
from fbgen.demo.data import dataset
from fbgen.demo.results import PROMPT_SEED, score_video
from fbgen.demo.train import hardware
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job

# name → config keys; the first is the reference. Each runs under LLL and under LSL [0.4, 0.8].
ACCELERATIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "first_block 0.05": {"cache": {"type": "first_block", "threshold": 0.05}},
    "first_block 0.1": {"cache": {"type": "first_block", "threshold": 0.1}},
    "first_block 0.2": {"cache": {"type": "first_block", "threshold": 0.2}},
    "taylorseer interval 2": {"cache": {"type": "taylorseer", "cache_interval": 2}},
    "taylorseer interval 3": {"cache": {"type": "taylorseer", "cache_interval": 3}},
    "seacache 0.25": {"cache": {"type": "seacache", "threshold": 0.25}},
    "seacache 0.5": {"cache": {"type": "seacache", "threshold": 0.5}},
    "euler": {"solver": "euler"},
    "dpmpp": {"solver": "dpmpp"},
    "unipc 10 steps": {"steps": 10},
    "dpmpp 10 steps": {"solver": "dpmpp", "steps": 10},
}
SCHEDULES = ("LLL", "LSL")


def measure(config_path: str, pairs: int, names: list[str], log=print) -> dict[str, Any]:
    clips = dataset(PROMPT_SEED, pairs, held=True)
    prompts = [c.caption for c in clips]
    rows: list[dict[str, Any]] = []
    reference: dict[int, np.ndarray] = {}
    start = time.perf_counter()
    for name in names:
        keys = ACCELERATIONS[name]
        # no videos are written: the output directory only has to take files
        base = load_config(config_path, [f"{k}={json.dumps(v)}" for k, v in keys.items()],
                           output_dir=tempfile.gettempdir())  # fmt: skip
        engine = Engine.open(base)
        jobs = [Job.of(base, prompt, seed=i) for i, prompt in enumerate(prompts)]
        encoded = engine.encode(jobs)
        for schedule in SCHEDULES:
            for i, (clip, cond) in enumerate(zip(clips, encoded)):
                job = variant(jobs[i], RunSpec(schedule, schedule, base.boundaries))
                denoised = engine.denoise(job, cond)
                flops = engine.executed(job, engine.flops(job, denoised.plan))["executed"]
                frames = engine.decode(job, denoised)
                if name == names[0] and schedule == "LLL":
                    reference[i] = frames
                rows.append({"acceleration": name, "schedule": schedule, "pair": i, "steps": job.steps,
                             "flops": flops, **pixel_fidelity(frames, reference[i]),
                             **score_video(frames, clip)})  # fmt: skip
        log(f"{name}: {time.perf_counter() - start:.0f} s")
    return {
        "config": config_path, "pairs": pairs, "reference": f"{names[0]} LLL", "runs": summarise(rows),
        "rows": rows, "wall_s": time.perf_counter() - start,
        "hardware": hardware(torch.device("cpu")), "torch": torch.__version__,
    }  # fmt: skip


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per acceleration and schedule; FLOPs relative to the first acceleration's LLL (the reference)."""
    reference = (rows[0]["acceleration"], "LLL")
    reference_flops = np.mean([r["flops"] for r in rows if (r["acceleration"], r["schedule"]) == reference])
    out = []
    for key in dict.fromkeys((r["acceleration"], r["schedule"]) for r in rows):
        mine = [r for r in rows if (r["acceleration"], r["schedule"]) == key]
        out.append({
            "acceleration": key[0], "schedule": key[1], "steps": mine[0]["steps"],
            "accuracy": float(np.mean([np.mean([r[k] for r in mine if k in r]) for k in ATTRIBUTES])),
            "flops_vs_reference": float(np.mean([r["flops"] for r in mine]) / reference_flops),
            **{k: float(np.mean([r[k] for r in mine])) for k in ("psnr", "ssim", "artifact")},
        })  # fmt: skip
    return out


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        f"Demo pair (`configs/demo.yaml`: 48×48×9, CFG 4, LSL [0.4, 0.8]), {result['pairs']} prompt/seed pairs, "
        f"on {result['hardware']} (torch {result['torch']}), {result['wall_s'] / 60:.1f} min. Reference: "
        f"{result['reference']}, 20 steps UniPC. Accuracy: the checker's per-attribute accuracy on held-out captions, "
        "averaged over the attributes (as `mean` in docs/DEMO_RESULTS.md). "
        "FLOPs are those the transformers executed (`flops.executed`), relative to the reference.",
        "",
        f"    {command}",
        "",
        "| acceleration | steps | LLL accuracy | LLL PSNR dB | LLL FLOPs | LSL accuracy | LSL PSNR dB | LSL FLOPs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by = {(r["acceleration"], r["schedule"]): r for r in result["runs"]}
    for name in dict.fromkeys(r["acceleration"] for r in result["runs"]):
        cells = []
        for schedule in SCHEDULES:
            r = by[(name, schedule)]
            psnr = "ref" if r["psnr"] >= 100 else f"{r['psnr']:.1f}"
            cells += [f"{r['accuracy']:.0%}", psnr, f"{r['flops_vs_reference']:.3f}"]
        lines.append(f"| {name} | {by[(name, 'LLL')]['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--only", help="comma-separated accelerations (the first is the reference); default all")
    parser.add_argument("--json", type=Path, help="write every video's numbers here, and the table beside it (.md)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(ACCELERATIONS)
    unknown = [n for n in names if n not in ACCELERATIONS]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; choose from {', '.join(ACCELERATIONS)}")
    command = "python benchmarks/accelerations.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = measure(args.config, args.pairs, names)
    table = markdown(result, command.strip())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        args.json.with_suffix(".md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
