"""Wan 2.2 A14B with the Wan 2.1 1.3B in the middle: three-model FlowBlending against stock WanPipeline's
two-expert run, at the real transformer configs with random bf16 weights built on the GPU (nothing downloaded).

In one process, with equal steps and each expert's stock guidance (H 4.0, L 3.0; the 1.3B 5.0), shift 12:

  stock       diffusers' `WanPipeline` with `transformer` + `transformer_2`, boundary_ratio 0.875
  HL          fbgen's stock equivalent (the experts switched where WanPipeline switches them)
  HSL         the paper's band [0.4, 0.8] for the 1.3B          (configs/wan2.2-a14b-1.3b-hsl.yaml)
  HSL-narrow  the 1.3B from t = 930 to t = 800 (sigma)          (configs/wan2.2-a14b-1.3b-hsl-narrow.yaml)
  HSL idle    HSL with `offload: idle` (at most two of the three transformers on the GPU)

and reports seconds, executed FLOPs (analytic, CFG included) and peak GPU memory; then one pass at the full frame
count with `idle` for its peak. Text encoding and VAE decode are left out (once per video, equal for all).

    python benchmarks/wan22.py --json benchmarks/results/wan22-h200.json   # GPU: 480x832x33 x 10 steps, + 81 frames
    python benchmarks/wan22.py --tiny            # CPU smoke: tiny configs, numbers mean nothing
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan, WanPipeline

sys.path.insert(0, str(Path(__file__).parent))
from speed import (  # noqa: E402
    WAN_1_3B,
    WAN_14B,
    Clock,
    Timing,
    _peak,
    _reset_peak,
    _StepMarks,
    build_transformer,
    environment,
    in_memory_sources,
    random_cond,
)

from fbgen.config import validate  # noqa: E402
from fbgen.core.solvers import make_scheduler  # noqa: E402
from fbgen.engine.engine import Engine  # noqa: E402
from fbgen.engine.job import Job  # noqa: E402
from fbgen.engine.planning import plan_flops_for  # noqa: E402
from fbgen.engine.residency import Residency  # noqa: E402
from fbgen.families import FAMILIES  # noqa: E402

RATIO, SHIFT = 0.875, 12.0
GUIDANCE = {"H": 4.0, "S": 5.0, "L": 3.0}
SCHEDULES = {"HL": ("HL", [RATIO], "sigma"), "HSL": ("HSL", [0.4, 0.8], "fraction"),
             "HSL-narrow": ("HSL", [0.93, 0.8], "sigma")}  # fmt: skip


def build(tiny: bool, device: torch.device, dtype: torch.dtype) -> tuple[dict[str, Any], Any, int]:
    """The two experts (14B configs), the 1.3B, the Wan 2.1 VAE (its config only matters) and the text width."""
    from fbgen.apps import tiny as t

    if tiny:
        torch.manual_seed(0)
        models = {"H": t.tiny_transformer(**t.LARGE), "S": t.tiny_transformer(**t.SMALL),
                  "L": t.tiny_transformer(**t.LARGE)}  # fmt: skip
        return models, t.tiny_vae(), t.TEXT_DIM
    models = {"H": build_transformer(WAN_14B, device, dtype, 0), "S": build_transformer(WAN_1_3B, device, dtype, 1),
              "L": build_transformer(WAN_14B, device, dtype, 2)}  # fmt: skip
    return models, AutoencoderKLWan().to(device), 4096


def job_config(name: str, size: tuple[int, int, int], steps: int, offload: str, device: torch.device) -> Any:
    schedule, boundaries, unit = SCHEDULES[name]
    h, w, f = size
    return validate({
        "family": "wan", "models": {"H": "random:wan22-high", "S": "random:wan21-1.3b", "L": "random:wan22-low"},
        "schedule": schedule, "boundaries": boundaries, "boundary_unit": unit, "steps": steps, "shift": SHIFT,
        "guidance_scale": GUIDANCE, "height": h, "width": w, "num_frames": f, "device": str(device),
        "offload": offload, "prompt": "benchmark", "output_dir": tempfile.gettempdir(),
    }, "benchmark")  # fmt: skip


@torch.no_grad()
def time_stock(family, cond, size, steps, device) -> Timing:
    """WanPipeline's own two-expert loop, as a user calls it with precomputed prompt embeddings."""
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=family.pipe.vae, scheduler=make_scheduler("unipc", SHIFT),
                       transformer=family.transformers["H"], transformer_2=family.transformers["L"],
                       boundary_ratio=RATIO)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    clock = Clock(device)
    h, w, f = size
    _reset_peak(device)
    clock.mark()
    pipe(prompt_embeds=cond.positive, negative_prompt_embeds=cond.negative, height=h, width=w, num_frames=f,
         num_inference_steps=steps, guidance_scale=GUIDANCE["H"], guidance_scale_2=GUIDANCE["L"],
         output_type="latent", generator=torch.Generator("cpu").manual_seed(0),
         callback_on_step_end=lambda p, i, t, kw: (clock.mark(), {})[1])  # fmt: skip
    return Timing("stock WanPipeline (two experts)", [], clock.intervals(), _peak(device))


def time_fbgen(family, sources, residency, cond, size, steps, name, offload, device, dtype) -> tuple[Timing, int]:
    """fbgen's staged loop (`Engine.denoise`) for one schedule; returns its timing and its analytic FLOPs."""
    config = job_config(name, size, steps, offload, device)
    clock = Clock(device)
    engine = Engine(config, sources, family, residency, device, dtype, 0.0, _StepMarks(clock))
    _reset_peak(device)
    clock.mark()
    job = Job.of(config, seed=0)
    plan = engine.denoise(job, cond).plan
    flops = plan_flops_for(job, plan, family.spec, sources.configs, sources.vae_config)["total"]
    return Timing(f"fbgen {name} (offload {offload})", list(plan.models), clock.intervals(), _peak(device)), flops


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default=None, help="HxWxF for the timed runs (default 480x832x33)")
    parser.add_argument("--full-frames", type=int, default=None, help="frames of the peak-memory pass (default 81)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU: a smoke run, numbers mean nothing")
    parser.add_argument("--json", type=Path, help="write the results here (after every run)")
    args = parser.parse_args(argv)

    tiny = args.tiny or not torch.cuda.is_available()
    device = torch.device("cpu" if tiny else "cuda")
    dtype = torch.float32 if tiny else torch.bfloat16
    size = tuple(int(v) for v in (args.shape or ("32x48x9" if tiny else "480x832x33")).split("x"))
    full = (size[0], size[1], args.full_frames or (13 if tiny else 81))
    models, vae, text_dim = build(tiny, device, dtype)
    spec = FAMILIES["wan"]
    family = spec.adapter()(models, None, None, vae, device)
    sources, cond = in_memory_sources(family), random_cond(family, text_dim, device, dtype)
    result: dict[str, Any] = {**environment(device), "tiny": tiny, "size": list(size), "steps": args.steps,
                              "runs": {}}  # fmt: skip

    def record(key: str, timing: Timing, flops: int | None = None) -> None:
        result["runs"][key] = {"name": timing.name, "models": "".join(timing.models), "total_s": timing.total_s,
                               "step_s": timing.step_s, "peak_gib": None if timing.peak_bytes is None
                               else timing.peak_bytes / 2**30, "flops": flops}  # fmt: skip
        peak = "" if timing.peak_bytes is None else f", peak {timing.peak_bytes / 2**30:.1f} GiB"
        print(f"  {key}: {timing.total_s:.2f} s{peak} {''.join(timing.models)}", flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))

    none = Residency(models, "none", device)
    for name in ("HL", "HSL"):  # warm-up: kernels and allocator, not timed
        time_fbgen(family, sources, none, cond, size, 2, name, "none", device, dtype)
    record("stock", time_stock(family, cond, size, args.steps, device))
    for name in SCHEDULES:
        record(name, *time_fbgen(family, sources, none, cond, size, args.steps, name, "none", device, dtype))
    if device.type == "cuda":
        idle = Residency(models, "idle", device)  # weights move to pinned host memory
        torch.cuda.empty_cache()
        record("HSL idle", *time_fbgen(family, sources, idle, cond, size, args.steps, "HSL", "idle", device, dtype))
        record(f"HSL idle {full[2]} frames, 3 steps",
               *time_fbgen(family, sources, idle, cond, full, 3, "HSL", "idle", device, dtype))  # fmt: skip
        idle.close()
    stock, reference = result["runs"]["stock"], result["runs"]["HL"]
    result["summary"] = {
        key: {"vs_stock_time": run["total_s"] / stock["total_s"],
              "vs_stock_flops": None if run["flops"] is None else run["flops"] / reference["flops"]}
        for key, run in result["runs"].items() if "frames" not in key
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))
    return result


if __name__ == "__main__":
    main()
