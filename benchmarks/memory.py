"""FlowBlending on the GPUs people own: peak memory and step time of the Wan 2.1 14B/1.3B LSL pair per residency
and quantization, against stock WanPipeline LLL, with fbgen's planned peak beside each measured one.

Random weights at the real configs, built on the GPU (nothing downloaded). Per mode, LSL (40/40/20) through
`Engine.denoise`: seconds per step at `--shape` (default 480x832x33, `--steps` 4), then one `--full-frames` pass
(default 81, 2 steps) for the peak. Modes:

  none, idle, group                 bf16, fbgen's three residencies
  int8, float8                      torchao weight-only (`quantize_`, what diffusers' TorchAoConfig applies on load)
  float8-dynamic+compile[+attn=X]   the speed side: fp8 activations and weights on Hopper, regional compile, an
                                    attention backend of diffusers' dispatcher (e.g. _native_cudnn, sage)
  24GiB, 16GiB                      `idle`/`group`/int8 under torch.cuda.set_per_process_memory_fraction: fits or OOM

The plan's estimate (weights by mode and quantization + activations; `fbgen plan` without text encoder and VAE,
which this harness does not load) is recorded beside each peak: the 10% check of issue 19. GGUF needs real files:
`--gguf L=PATH` adds a run with that file's dequantizing loader.

    python benchmarks/memory.py --json benchmarks/results/memory-h200.json     # GPU, ~8 min
    python benchmarks/memory.py --tiny                                          # CPU smoke: numbers mean nothing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from speed import (  # noqa: E402
    Timing,
    apply_variant,
    build_models,
    environment,
    random_cond,
    time_fbgen,
    time_stock,
)

from fbgen.config.schema import QUANTIZATIONS  # noqa: E402
from fbgen.engine.memory import memory_plan  # noqa: E402
from fbgen.engine.planning import make_plan  # noqa: E402
from fbgen.engine.residency import Residency  # noqa: E402
from fbgen.engine.sources import Sources  # noqa: E402
from fbgen.families import FAMILIES  # noqa: E402

CONFIG = Path(__file__).parents[1] / "configs" / "wan2.1-14b-1.3b-lsl.yaml"
QUANTIZED = {"int8": "int8_weight_only", "float8": "float8_weight_only", "float8-dynamic": "float8_dynamic"}


def planned(size: tuple[int, int, int], offload: str, quantization: str | None, tiny: bool) -> int | None:
    """fbgen's planned denoise peak for the shipped LSL config at this size (from the shipped architecture configs
    offline); None for the tiny smoke run, whose models are not the shipped ones."""
    if tiny:
        return None
    from fbgen.config import load_config

    h, w, f = size
    config = load_config(CONFIG, [f"height={h}", f"width={w}", f"num_frames={f}", "steps=10", f"offload={offload}",
                                  *([f"quantization={quantization}"] if quantization else [])])  # fmt: skip
    sources = Sources.open(config, weights=False)
    plan = make_plan(config, sources.family, sources.vae_config)[1]
    return memory_plan(config, plan, sources).peaks[offload]["denoise"]


def quantize(models: dict, name: str) -> None:
    import torchao.quantization

    for model in models.values():
        torchao.quantization.quantize_(model, getattr(torchao.quantization, QUANTIZATIONS[name][0])())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default=None, help="HxWxF of the timed runs (default 480x832x33)")
    parser.add_argument("--full-frames", type=int, default=None, help="frames of the peak pass (default 81)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--modes", default="none,idle,group,int8,float8,float8-dynamic+compile,24GiB,16GiB")
    parser.add_argument("--attn", default=None, help="attention backend for the speed mode, e.g. _native_cudnn")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # plans come from the shipped configs: no hub round trips

    tiny = args.tiny or not torch.cuda.is_available()
    device = torch.device("cpu" if tiny else "cuda")
    dtype = torch.float32 if tiny else torch.bfloat16
    size = tuple(int(v) for v in (args.shape or ("32x48x9" if tiny else "480x832x33")).split("x"))
    full = (size[0], size[1], args.full_frames or (13 if tiny else 81))
    spec = FAMILIES["wan"]
    result: dict[str, Any] = {**environment(device), "tiny": tiny, "size": list(size), "full": list(full),
                              "steps": args.steps, "runs": {}}  # fmt: skip

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))

    def fresh():
        models, vae, text_dim = build_models("wan", tiny, device, dtype)
        family = spec.adapter()(models, None, None, vae, device)
        return models, family, random_cond(family, text_dim, device, dtype)

    def measure(key: str, models, family, cond, offload: str, quantization: str | None = None,
                keys: dict | None = None, cap: int | None = None) -> None:  # fmt: skip
        residency = Residency(models, offload, device)  # idle/group move the weights off the GPU here
        if device.type == "cuda":
            torch.cuda.empty_cache()
            if cap is not None:  # a smaller card, from here on
                torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(device).total_memory)
        time_fbgen(family, residency, cond, size, 2, "LSL", offload, device, dtype, keys)  # warm-up (compiles)
        timed: Timing = time_fbgen(family, residency, cond, size, args.steps, "LSL", offload, device, dtype, keys)
        peak: Timing = time_fbgen(family, residency, cond, full, 2, "LSL", offload, device, dtype, keys)
        result["runs"][key] = {"step_s": timed.step_s, "per_model_s": timed.per_model(), "peak_bytes_full":
                               peak.peak_bytes, "planned_denoise_bytes": planned(full, offload, quantization, tiny)}
        residency.close()
        print(f"  {key}: {timed.per_model()} s/step, peak {peak.peak_bytes}", flush=True)
        save()

    models, family, cond = fresh()
    family.pipe.transformer = models["L"]
    stock = time_stock(family.pipe, cond, size, args.steps, device)
    result["runs"]["stock LLL"] = {"step_s": stock.step_s, "peak_bytes": stock.peak_bytes}
    save()
    for mode in [m for m in args.modes.split(",") if m]:
        try:
            if mode in ("none", "idle", "group"):
                if mode != "none" and not tiny:
                    models, family, cond = fresh()  # a clean placement per residency
                measure(mode, models, family, cond, mode)
            elif mode.split("+")[0] in QUANTIZED:
                name = QUANTIZED[mode.split("+")[0]]
                models, family, cond = fresh()
                quantize(models, name)
                keys = {}
                if "compile" in mode:
                    extra = {"compile": True, **({"attention_backend": args.attn} if args.attn else {})}
                    keys = {k: v for k, v in extra.items() if k != "compile"}
                    apply_variant(models, family, extra, device)
                measure(mode, models, family, cond, "none", name, keys)
            elif mode.endswith("GiB") and device.type == "cuda":
                for offload in ("idle", "group"):
                    models, family, cond = fresh()
                    try:
                        measure(f"{mode} {offload}", models, family, cond, offload, cap=int(mode[:-3]) * 2**30)
                    except torch.OutOfMemoryError:
                        result["runs"][f"{mode} {offload}"] = {"fits": False}
                    finally:
                        torch.cuda.set_per_process_memory_fraction(1.0)
        except Exception as e:  # one mode failing (a kernel this GPU lacks) must not lose the others
            result["runs"][mode] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            print(f"  {mode}: {result['runs'][mode]['error']}", flush=True)
            save()
    return result


if __name__ == "__main__":
    main()
