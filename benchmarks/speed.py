"""Speed and memory of FlowBlending against stock diffusers, at the real Wan 2.1 (and LTX-Video) transformer configs.

Builds the 14B and 1.3B transformers (`--family ltx`: 13B and 2B) with random weights directly on the GPU
(nothing is downloaded: speed does not depend on the weights' values) and, in one process, times with equal steps
and CFG:

  stock  diffusers' `WanPipeline` (`LTXPipeline`) with the large model (LLL), output_type="latent"
  fbgen  LLL, SSS and LSL (paper's 40/40/20) through `Engine.denoise`, with `offload: none`, then LSL with `idle`

and reports per-step time per model, achieved TFLOP/s (fbgen's analytic FLOPs), switch overhead (LSL time minus
its FLOP-time ideal n_L·t_L + n_S·t_S, from the pure runs), LSL speedup against stock and against the ideal, and
peak memory. Text encoding and VAE decode are excluded: they run once per video, the same for every schedule.

    python benchmarks/speed.py --shape 480x832x81 --steps 10 --json out.json   # GPU
    python benchmarks/speed.py --family ltx --shape 512x768x121 --json ltx.json # GPU, LTX 13B/2B
    python benchmarks/speed.py --tiny                                        # CPU smoke: tiny configs
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from fbgen.config import validate
from fbgen.core.flops import plan_flops
from fbgen.core.solvers import make_scheduler
from fbgen.engine.engine import Engine, sync
from fbgen.engine.job import Job
from fbgen.engine.loading import accelerate, load_loras
from fbgen.engine.progress import NoProgress
from fbgen.engine.residency import Residency
from fbgen.engine.sources import Sources
from fbgen.engine.work import WorkTally
from fbgen.families import FAMILIES
from fbgen.families.ltx import SCHEDULER

WAN_COMMON = dict(
    patch_size=(1, 2, 2), in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024, attention_head_dim=128,
)  # fmt: skip
WAN_14B = dict(WAN_COMMON, num_attention_heads=40, ffn_dim=13824, num_layers=40)
WAN_1_3B = dict(WAN_COMMON, num_attention_heads=12, ffn_dim=8960, num_layers=30)
LTX_COMMON = dict(in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, caption_channels=4096)
LTX_13B = dict(LTX_COMMON, num_layers=48, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096)
LTX_2B = dict(LTX_COMMON, num_layers=28, num_attention_heads=32, attention_head_dim=64, cross_attention_dim=2048)
GUIDANCE = {"wan": 5.0, "ltx": 3.0}  # each family's pipeline default
DEFAULT_SHAPE = {"wan": ("480x832x81", "32x48x9"), "ltx": ("512x768x121", "64x64x9")}  # GPU, tiny


@dataclass
class Timing:
    """Per-step seconds of one denoising run (CUDA events on a GPU, so nothing stalls between steps)."""

    name: str
    models: list[str]
    step_s: list[float]
    peak_bytes: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.step_s)

    def per_model(self) -> dict[str, float]:
        """Median step time of each model, leaving out step 0 and the first step after a switch."""
        out = {}
        for m in dict.fromkeys(self.models):
            steady = [t for i, t in enumerate(self.step_s) if self.models[i] == m and i and self.models[i - 1] == m]
            out[m] = statistics.median(steady or [t for i, t in enumerate(self.step_s) if self.models[i] == m])
        return out


class Clock:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


class _StepMarks(NoProgress):
    def __init__(self, clock: Clock):
        self.clock = clock

    def step(self, index: int, model: str) -> None:
        self.clock.mark()


def build_transformer(config: dict, device: torch.device, dtype: torch.dtype, seed: int,
                      cls: str = "WanTransformer3DModel"):  # fmt: skip
    """Random weights, initialised directly on the device in `dtype` (a 14B never exists in float32)."""
    import diffusers

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return getattr(diffusers, cls)(**config).eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(previous)


def build_models(family: str, tiny: bool, device: torch.device, dtype: torch.dtype) -> tuple[dict, Any, int]:
    """Transformers L and S, a VAE (only its compression ratios matter: latents are not decoded) and the text width."""
    from fbgen.apps import tiny as t

    torch.manual_seed(0)
    if family == "ltx":
        if tiny:
            models = {"L": t.tiny_ltx_transformer(**t.LTX_LARGE), "S": t.tiny_ltx_transformer(**t.LTX_SMALL)}
            return models, t.tiny_ltx_vae(), t.TEXT_DIM
        models = {"L": build_transformer(LTX_13B, device, dtype, 0, "LTXVideoTransformer3DModel"),
                  "S": build_transformer(LTX_2B, device, dtype, 1, "LTXVideoTransformer3DModel")}  # fmt: skip
        return models, t.tiny_ltx_vae(latent_channels=128).to(device, dtype), LTX_COMMON["caption_channels"]
    if tiny:
        return {"L": t.tiny_transformer(**t.LARGE), "S": t.tiny_transformer(**t.SMALL)}, t.tiny_vae(), t.TEXT_DIM
    from diffusers import AutoencoderKLWan

    models = {"L": build_transformer(WAN_14B, device, dtype, 0), "S": build_transformer(WAN_1_3B, device, dtype, 1)}
    return models, AutoencoderKLWan().to(device), WAN_COMMON["text_dim"]


def in_memory_sources(family: Any) -> Sources:
    """What the engine reads of a checkpoint, for random in-memory models: their configs and the VAE's."""
    configs = {m: dict(model.config) for m, model in family.transformers.items()}
    return Sources(family.spec, {}, {}, None, None, configs, dict(family.pipe.vae.config), None)  # type: ignore[arg-type]


def random_cond(family: Any, text_dim: int, device: torch.device, dtype: torch.dtype) -> Any:
    """Seeded random prompt embeddings (positive, negative) in the family's conditioning type: speed does not
    depend on what the text says, and the text encoder is not part of what is timed."""
    spec = family.spec
    g = torch.Generator("cpu").manual_seed(0)
    embeds = [torch.randn(1, spec.max_sequence_length, text_dim, generator=g).to(device, dtype) for _ in range(2)]
    if spec.name == "ltx":  # LTX takes attention masks beside its embeddings
        mask = torch.ones(1, spec.max_sequence_length, device=device)
        return family.prompt_class(embeds[0], mask, embeds[1], mask)
    return family.prompt_class(*embeds)


def latent_shape(family: Any, size: tuple[int, int, int]) -> tuple[int, int, int]:
    return family.spec.latent_shape(dict(family.pipe.vae.config), *size)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


@torch.no_grad()
def time_stock(pipe, cond: Any, size: tuple[int, int, int], steps: int, device: torch.device) -> Timing:
    """diffusers' own pipeline (WanPipeline: UniPC, shift 3, CFG 5; LTXPipeline: its Euler, CFG 3), as a user
    would call it with precomputed prompt embeddings."""
    clock = Clock(device)
    height, width, frames = size
    ltx = type(pipe).__name__ == "LTXPipeline"
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER) if ltx else make_scheduler("unipc", 3.0)
    pipe.set_progress_bar_config(disable=True)
    masks = (
        dict(prompt_attention_mask=cond.positive_mask, negative_prompt_attention_mask=cond.negative_mask) if ltx else {}
    )
    _reset_peak(device)
    clock.mark()
    pipe(
        prompt_embeds=cond.positive, negative_prompt_embeds=cond.negative, height=height, width=width,
        num_frames=frames, num_inference_steps=steps, guidance_scale=GUIDANCE["ltx" if ltx else "wan"],
        output_type="latent", generator=torch.Generator("cpu").manual_seed(0),
        callback_on_step_end=lambda p, i, t, kw: (clock.mark(), {})[1], **masks,
    )  # fmt: skip
    return Timing(f"stock {type(pipe).__name__} LLL", ["L"] * steps, clock.intervals(), _peak(device))


def time_fbgen(family, residency: Residency, cond: Any, size, steps: int, schedule: str, offload: str,
               device: torch.device, dtype: torch.dtype, keys: dict[str, Any] | None = None,
               work: dict[str, WorkTally] | None = None) -> Timing:  # fmt: skip
    """fbgen's own staged loop (`Engine.denoise`): scheduler, plan, residency hooks and stage clock included; with
    `work` (from `accelerate`), the share of each model's block FLOPs its cache hook let run."""
    height, width, frames = size
    name = family.spec.name
    config = validate({
        "family": name, "models": {"L": f"random:{name}-large", "S": f"random:{name}-small"}, "schedule": schedule,
        "boundaries": [0.4, 0.8], "steps": steps, "height": height, "width": width, "num_frames": frames,
        "guidance_scale": GUIDANCE[name], "device": str(device), "offload": offload, "prompt": "benchmark",
        "output_dir": tempfile.gettempdir(), **(keys or {}),
    }, "benchmark")  # fmt: skip
    clock = Clock(device)
    engine = Engine(config, in_memory_sources(family), family, residency, device, dtype, 0.0, _StepMarks(clock),
                    work=work or {})  # fmt: skip
    _reset_peak(device)
    clock.mark()
    plan = engine.denoise(Job.of(config, seed=0), cond).plan
    timing = Timing(f"fbgen {schedule} (offload {offload})", list(plan.models), clock.intervals(), _peak(device))
    spec, shape = family.spec, latent_shape(family, size)
    timing.extra["block_work_computed"] = {m: 1.0 for m in sorted(set(plan.models))} | {
        m: tally.computed_fraction(spec.block_flops(family.transformers[m].config, shape, spec.max_sequence_length))
        for m, tally in engine.work.items() if m in plan.models
    }  # fmt: skip
    return timing


def summarise(runs: dict[str, Timing], per_forward: dict[str, int], steps: int) -> dict[str, Any]:
    """The derived figures the targets are stated in."""
    t = {"L": runs["LLL"].per_model()["L"], "S": runs["SSS"].per_model()["S"]}
    lsl = runs["LSL"]
    plan_models = lsl.models
    n = {m: plan_models.count(m) for m in "LS"}
    ideal = n["L"] * t["L"] + n["S"] * t["S"]
    stock = runs["stock"].total_s
    out: dict[str, Any] = {
        "step_s": t,
        "tflops_per_s": {m: 2 * per_forward[m] / t[m] / 1e12 for m in "LS"},  # CFG: two forwards per step
        "stock_step_s": runs["stock"].per_model()["L"],
        "fbgen_lll_vs_stock": runs["LLL"].total_s / stock,
        "lsl_ideal_s": ideal,
        "flop_ratio_lsl_vs_lll": (n["L"] * per_forward["L"] + n["S"] * per_forward["S"]) / (steps * per_forward["L"]),
    }
    for key, run in runs.items():
        if key.startswith("LSL"):
            out[key] = {
                "total_s": run.total_s,
                "switch_overhead_s": run.total_s - ideal,
                "switch_overhead_frac": (run.total_s - ideal) / run.total_s,
                "of_ideal": ideal / run.total_s,
                "speedup_vs_stock": stock / run.total_s,
                "speedup_vs_fbgen_lll": runs["LLL"].total_s / run.total_s,
                "peak_gib": None if run.peak_bytes is None else run.peak_bytes / 2**30,
            }
    return out


def variant_keys(variant: str, models: dict, family, work: Path) -> dict[str, Any]:
    """The run-config keys of one variant, parts joined by '+': `attn=NAME`, `compile`, `solver=NAME`,
    `cache=first_block[:T]`, `cache=taylorseer[:INTERVAL]`, `cache=seacache[:T]` (`...@L`: on one model only),
    `lora=LETTER[:RANK]` (a random LoRA on that model's attention projections: a trained one costs the same)."""
    keys: dict[str, Any] = {}
    for part in variant.split("+"):
        name, _, value = part.partition("=")
        value, _, letter = value.partition("@")
        kind, _, setting = value.partition(":")
        if name == "compile":
            keys["compile"] = True
        elif name == "attn":
            keys["attention_backend"] = value
        elif name == "solver":
            keys["solver"] = value
        elif name == "cache":
            hook: dict[str, Any] = {"type": kind}
            if setting:  # the one setting each hook is tuned by
                hook |= {"cache_interval": int(setting)} if kind == "taylorseer" else {"threshold": float(setting)}
            keys["cache"] = {letter: hook} if letter else hook
        elif name == "lora":
            rank = int(setting or 64)
            keys["lora"] = {kind: str(random_lora(family, models[kind], rank, work / f"lora-{kind}-{rank}"))}
        else:
            raise SystemExit(f"variant {variant!r}: unknown part {part!r} (attn=, compile, cache=, solver=, lora=)")
    return keys


def random_lora(family, model, rank: int, out: Path) -> Path:
    """A rank-`rank` LoRA on every attention projection, saved with the family pipeline's own LoRA writer."""
    g = torch.Generator("cpu").manual_seed(rank)
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            a = torch.randn(rank, module.in_features, generator=g) / 100
            b = torch.randn(module.out_features, rank, generator=g) / 100
            layers |= {f"{name}.lora_A.weight": a.to(model.dtype), f"{name}.lora_B.weight": b.to(model.dtype)}
    type(family.pipe).save_lora_weights(out, transformer_lora_layers=layers, safe_serialization=True)
    return out


def _compiled(model) -> bool:
    return any(getattr(b, "_compiled_call_impl", None) for b in model.modules())


def apply_variant(models: dict, family, keys: dict[str, Any], device: torch.device
                  ) -> tuple[float, dict[str, WorkTally]]:  # fmt: skip
    """Accelerations through fbgen's own `load_loras` and `accelerate` (the path the config keys take), after
    undoing the previous variant's; returns the seconds it took and the work tallies of the models with a cache.
    Compilation cannot be undone, so variants with `compile` must come last."""
    compiled = any(_compiled(m) for m in models.values())
    if compiled and not keys.get("compile"):
        raise SystemExit("a variant without compile after a compiled one: list variants with compile last")
    name = family.spec.name
    config = validate({"family": name, "models": {"L": "x", "S": "x"}, "prompt": "x", "attention_backend": "native",
                       **keys, "compile": bool(keys.get("compile")) and not compiled}, "variant")  # fmt: skip
    start = time.perf_counter()
    for model in models.values():
        model.reset_attention_backend()
        if model.is_cache_enabled:
            model.disable_cache()
        if getattr(model, "peft_config", None):
            model.unload_lora()
    load_loras(family.transformers, type(family.pipe), config)
    work = accelerate(models, config)
    sync(device)
    return time.perf_counter() - start, work


def run_variant(models, family, cond, size, steps, device, dtype, variant: str, stock: Timing) -> dict[str, Any]:
    """LLL, SSS and LSL with one acceleration (or a combination): what it buys alone and combined with LSL."""
    with tempfile.TemporaryDirectory() as scratch:  # the random LoRA files live only until they are loaded
        keys = variant_keys(variant, models, family, Path(scratch))
        apply_s, work = apply_variant(models, family, keys, device)
    keys.pop("lora", None)  # loaded; the runs need the keys the loop reads (cache resets, solver)
    none = Residency(models, "none", device)
    start = time.perf_counter()
    # warm-up; compiles here when the variant compiles. A cache hook takes other code paths once it reuses, which
    # only happens some steps into a stage: then the warm-up runs the full plans.
    for schedule in ("LLL", "SSS", "LSL") if "cache" in keys else ("LLL", "SSS"):
        time_fbgen(family, none, cond, size, steps if "cache" in keys else 2, schedule, "none", device, dtype, keys,
                   work)  # fmt: skip
    warmup_s = time.perf_counter() - start
    runs = {"stock": stock}
    for schedule in ("LLL", "SSS", "LSL"):
        runs[schedule] = time_fbgen(family, none, cond, size, steps, schedule, "none", device, dtype, keys, work)
        print(f"  [{variant}] {runs[schedule].name}: {runs[schedule].total_s:.2f} s", flush=True)
    shape = latent_shape(family, size)
    per_forward = {m: family.spec.forward_flops(models[m].config, shape, family.spec.max_sequence_length) for m in "LS"}
    return {
        "apply_s": apply_s, "warmup_s": warmup_s,
        "runs": {k: {"name": r.name, "models": "".join(r.models), "step_s": r.step_s, "total_s": r.total_s,
                     "peak_bytes": r.peak_bytes, **r.extra} for k, r in runs.items() if k != "stock"},
        "summary": summarise(runs, per_forward, steps),
    }  # fmt: skip


def run_shape(models, family, cond, size, steps, device, dtype, offloads, variants, save) -> dict[str, Any]:
    shape = latent_shape(family, size)
    per_forward = {m: family.spec.forward_flops(models[m].config, shape, family.spec.max_sequence_length) for m in "LS"}
    runs: dict[str, Timing] = {}
    none = Residency(models, "none", device)
    pipe = family.pipe
    pipe.transformer = models["L"]
    runs["stock"] = time_stock(pipe, cond, size, steps, device)
    for schedule in ("LLL", "SSS", "LSL"):
        runs[schedule] = time_fbgen(family, none, cond, size, steps, schedule, "none", device, dtype)
    if "idle" in offloads and device.type == "cuda":
        idle = Residency(models, "idle", device)  # weights move to pinned host memory
        torch.cuda.empty_cache()
        first = time_fbgen(family, idle, cond, size, steps, "LSL", "idle", device, dtype)
        runs["LSL idle"] = time_fbgen(family, idle, cond, size, steps, "LSL", "idle", device, dtype)
        runs["LSL idle"].extra["first_video_step0_s"] = first.step_s[0]
        idle.close()
        for model in models.values():
            model.to(device)
    for run in runs.values():
        peak = "" if run.peak_bytes is None else f", peak {run.peak_bytes / 2**30:.1f} GiB"
        print(f"  {run.name}: {run.total_s:.2f} s{peak}", flush=True)
    summary = summarise(runs, per_forward, steps)
    summary["flops"] = plan_flops_table(runs, per_forward, GUIDANCE[family.spec.name])
    shape_result = {
        "size": list(size), "latent_shape": list(shape), "steps": steps, "per_forward_flops": per_forward,
        "runs": {k: {"name": r.name, "models": "".join(r.models), "step_s": r.step_s, "total_s": r.total_s,
                     "peak_bytes": r.peak_bytes, **r.extra} for k, r in runs.items()},
        "summary": summary,
        "variants": {},
    }  # fmt: skip
    save(shape_result)
    for variant in variants:
        shape_result["variants"][variant] = run_variant(
            models, family, cond, size, steps, device, dtype, variant, runs["stock"]
        )
        save(shape_result)
    return shape_result


def plan_flops_table(runs: dict[str, Timing], per_forward: dict[str, int], guidance: float) -> dict[str, float]:
    from fbgen.core.schedule import Plan

    out = {}
    for key in ("LLL", "SSS", "LSL"):
        models = runs[key].models
        plan = Plan(key, [], models, [0.0] * len(models), [0.0] * len(models))
        out[key] = plan_flops(plan, per_forward, {"L": guidance, "S": guidance})["total"]
    return out


def environment(device: torch.device) -> dict[str, Any]:
    import diffusers

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("wan", "ltx"), default="wan")
    parser.add_argument("--shape", action="append", help="HxWxF (repeatable); default 480x832x81 (LTX 512x768x121)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--offload", default="none,idle")
    parser.add_argument(
        "--variants", default="", help="comma-separated accelerations, parts joined by '+': attn=NAME, compile, "
        "cache=first_block[:T]|taylorseer[:N]|seacache[:T][@LETTER], solver=NAME, lora=LETTER[:RANK] (e.g. "
        "attn=_native_cudnn,cache=first_block:0.05,lora=S:64,compile,compile+cache=first_block; compile ones last)",
    )  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU: a smoke run, numbers mean nothing")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    tiny = args.tiny or not torch.cuda.is_available()
    device = torch.device("cpu" if tiny else "cuda")
    dtype = torch.float32 if tiny else torch.bfloat16
    default = DEFAULT_SHAPE[args.family][1 if tiny else 0]
    shapes = [tuple(int(v) for v in s.split("x")) for s in (args.shape or [default])]
    models, vae, text_dim = build_models(args.family, tiny, device, dtype)
    spec = FAMILIES[args.family]
    family = spec.adapter()(models, None, None, vae, device)
    cond = random_cond(family, text_dim, device, dtype)

    variants = [v for v in args.variants.split(",") if v]
    result: dict[str, Any] = {**environment(device), "tiny": tiny, "shapes": []}

    def save(shape_result: dict[str, Any]) -> None:  # after every run group: a time limit loses only what is in flight
        if shape_result not in result["shapes"]:
            result["shapes"].append(shape_result)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))

    with contextlib.suppress(KeyboardInterrupt):
        for size in shapes:
            print(f"shape {size} ({args.steps} steps):", flush=True)
            # warm-up: two steps of each model (kernel selection, allocator), not timed
            for schedule in ("LLL", "SSS"):
                time_fbgen(family, Residency(models, "none", device), cond, size, 2, schedule, "none", device, dtype)
            run_shape(models, family, cond, size, args.steps, device, dtype, args.offload.split(","), variants, save)
    print(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [f"**{result['device']}**, torch {result['torch']}, diffusers {result['diffusers']}, {result['date']}",
             f"`{result['command']}`", ""]  # fmt: skip
    for shape in result["shapes"]:
        s = shape["summary"]
        h, w, f = shape["size"]
        lines += [
            f"#### {h}×{w}×{f}, {shape['steps']} steps, CFG 5 (two forwards a step)",
            "",
            "| run | total s | s/step L | s/step S | peak GiB |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for key, run in shape["runs"].items():
            t = Timing(key, list(run["models"]), run["step_s"], run["peak_bytes"]).per_model()
            peak = "—" if run["peak_bytes"] is None else f"{run['peak_bytes'] / 2**30:.1f}"
            cols = [f"{t[m]:.3f}" if m in t else "" for m in "LS"]
            lines.append(f"| {run['name']} | {run['total_s']:.2f} | {cols[0]} | {cols[1]} | {peak} |")
        lines += [
            "",
            f"- achieved: L {s['tflops_per_s']['L']:.0f} TFLOP/s, S {s['tflops_per_s']['S']:.0f} TFLOP/s "
            f"(analytic FLOPs / step time)",
            f"- fbgen LLL / stock LLL time: {s['fbgen_lll_vs_stock']:.3f}",
            f"- LSL FLOPs / LLL FLOPs: {s['flop_ratio_lsl_vs_lll']:.3f}; "
            f"FLOP-time ideal of LSL: {s['lsl_ideal_s']:.2f} s",
        ]
        for key in [k for k in s if k.startswith("LSL")]:
            r = s[key]
            peak = "" if r["peak_gib"] is None else f", peak {r['peak_gib']:.1f} GiB"
            lines.append(
                f"- {key}: {r['total_s']:.2f} s, switch overhead {r['switch_overhead_s']:+.3f} s "
                f"({100 * r['switch_overhead_frac']:+.2f}%), {r['of_ideal']:.3f} of ideal, "
                f"{r['speedup_vs_stock']:.2f}× stock LLL{peak}"
            )
        if shape["variants"]:
            lines += ["", "| acceleration | LLL s | LLL vs plain fbgen LLL | LSL s | LSL vs stock LLL | LSL of ideal "
                      "| block FLOPs run, LSL (L / S) |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for variant, v in shape["variants"].items():
            lll, lsl = v["runs"]["LLL"]["total_s"], v["summary"]["LSL"]
            gain = shape["runs"]["LLL"]["total_s"] / lll
            work = v["runs"]["LSL"].get("block_work_computed", {})
            computed = " / ".join(f"{work[m]:.0%}" for m in "LS" if m in work)
            lines.append(f"| {variant} | {lll:.2f} | {gain:.2f}× | {lsl['total_s']:.2f} | "
                         f"{lsl['speedup_vs_stock']:.2f}× | {lsl['of_ideal']:.3f} | {computed} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
