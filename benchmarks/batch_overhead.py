"""Per-video overhead of `fbgen batch`: everything a batch does beyond denoise + decode + MP4 write.

Runs a batch through the library (`Engine.open` once, then `run_worker`, exactly what the CLI runs) on the tiny
random-weight Wan pair, and splits its wall time into the work itself (the manifests' denoise, decode and write
times), prompt encoding (up front, reported apart) and the rest: claiming each item (O_EXCL create, heartbeat
thread), planning, FLOPs, resume checks, the MP4's verification decode and sha256, journal writes with fsync.
Model loading is reported apart (once per batch, not per video).

    python benchmarks/batch_overhead.py                      # CPU, tiny models: two sizes, 8 videos each
    python benchmarks/batch_overhead.py --videos 16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from fbgen.apps.batch import Batch, read_prompts
from fbgen.apps.records import previous_records
from fbgen.apps.tiny import build_tiny_wan
from fbgen.apps.worker import Options, Worker, run_worker
from fbgen.config import validate
from fbgen.engine.engine import Engine

SIZES = {"64x64x9, 20 steps": (64, 64, 9, 20), "128x128x17, 30 steps": (128, 128, 17, 30)}


def measure(models: dict[str, Path], root: Path, size: tuple[int, int, int, int], videos: int) -> dict[str, Any]:
    height, width, frames, steps = size
    out = root / f"out-{height}x{width}x{frames}"
    prompts = root / f"prompts-{height}.txt"
    prompts.write_text("\n".join(f"a red ball rolls left number {i}" for i in range(videos)) + "\n")
    config = validate({
        "models": {"L": str(models["large"]), "S": str(models["small"])}, "schedule": "LSL", "steps": steps,
        "height": height, "width": width, "num_frames": frames, "prompt": "x", "device": "cpu",
        "output_dir": str(out),
    }, "benchmark")  # fmt: skip
    start = time.perf_counter()
    engine = Engine.open(config)
    load_s = time.perf_counter() - start
    summary = run_worker(engine, Batch.prepare(config, read_prompts(prompts)), Worker.here(), Options(), log=print)
    records = [r for r in previous_records(out).values() if r["status"] == "done"]
    work = sum(r["wall_s"]["denoise"] + r["wall_s"]["decode"] + r["wall_s"]["write"] for r in records)
    overhead = summary.wall_s - work - summary.encode_s
    return {
        "videos": summary.done, "load_s": load_s, "batch_s": summary.wall_s, "work_s": work,
        "encode_s_per_video": summary.encode_s / summary.done,
        "overhead_s_per_video": overhead / summary.done, "overhead_frac": overhead / summary.wall_s,
        "mean_denoise_s": sum(r["wall_s"]["denoise"] for r in records) / len(records),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = build_tiny_wan(root / "models")
        for name, size in SIZES.items():
            r = results[name] = measure(models, root, size, args.videos)
            print(f"{name}: {r['videos']} videos, load {r['load_s']:.2f} s once, {r['batch_s']:.2f} s batch, "
                  f"denoise {r['mean_denoise_s']:.3f} s/video, prompt encoding {1000 * r['encode_s_per_video']:.1f} "
                  f"ms/video; overhead {1000 * r['overhead_s_per_video']:.1f} ms/video = "
                  f"{100 * r['overhead_frac']:.2f}% of the batch", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
