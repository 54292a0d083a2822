"""One batch over several workers: one process per local GPU (`--devices`), or one Ray actor per GPU (`--ray`).

Each worker loads the models once and runs a sub-shard: shard K/N over D workers becomes shards (K-1)·D+j / N·D,
j = 1..D. Every item of the whole batch lands in exactly one sub-shard for any K, N and D, and each worker appends
to its own `manifest-<k>-of-<N·D>.jsonl`, so ids, seeds, resume and manifests are exactly those of `fbgen batch`.
The exit code is the most serious of the workers': 130 interrupted > 3 model > 2 bad input > 1 failed items > 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fbgen.batch import Item, run_shard, summary_path
from fbgen.config import RunConfig
from fbgen.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_MODEL, BadInput, FbgenError

SEVERITY = (EXIT_INTERRUPTED, EXIT_MODEL, EXIT_BAD_INPUT, 1)


def sub_shards(shard: tuple[int, int], workers: int) -> list[tuple[int, int]]:
    k, n = shard
    return [((k - 1) * workers + j, n * workers) for j in range(1, workers + 1)]


def worker_shards(config: RunConfig, shard: tuple[int, int], workers: int) -> list[tuple[int, int]]:
    """The workers' sub-shards, with any summary a previous run left for them removed: a stale summary must not
    stand in for a worker that dies before writing its own."""
    shards = sub_shards(shard, workers)
    for s in shards:
        summary_path(config.output_dir, s).unlink(missing_ok=True)
    return shards


def worst(codes: Sequence[int]) -> int:
    """The exit code a farm script should see: a worker killed by a signal counts as failed items (resumable)."""
    for code in SEVERITY:
        if code in codes:
            return code
    return 1 if any(codes) else 0


def parse_devices(text: str) -> list[str]:
    """`0,1,3` or `all` (every visible CUDA device)."""
    if text.strip() == "all":
        import torch

        count = torch.cuda.device_count()
        if not count:
            raise BadInput("--devices all: no CUDA device is visible")
        return [str(i) for i in range(count)]
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices or not all(d.isdigit() for d in devices) or len(set(devices)) != len(devices):
        raise BadInput(f"--devices {text!r}: expected distinct GPU indices like 0,1,2,3 or 'all'")
    return devices


def physical_device(index: str, env: dict[str, str]) -> str:
    """`--devices` indices count the GPUs this process sees: under SLURM (CUDA_VISIBLE_DEVICES=4,5) index 0 is GPU 4."""
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if not visible:
        return index
    if int(index) >= len(visible):
        raise BadInput(f"--devices {index}: only {len(visible)} GPU(s) are visible (CUDA_VISIBLE_DEVICES="
                       f"{env['CUDA_VISIBLE_DEVICES']})")  # fmt: skip
    return visible[int(index)]


def run_local(batch_args: list[str], config: RunConfig, devices: list[str], shard: tuple[int, int]
              ) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """One `fbgen batch` process per GPU, each seeing only its GPU (CUDA_VISIBLE_DEVICES); SIGTERM/SIGINT is passed
    on to all of them. `batch_args` are the parent's arguments minus --devices/--shard/--json."""
    if config.device.startswith("cuda:"):
        raise BadInput(f"{config.source}: key 'device': with --devices each worker sees one GPU; use device: auto "
                       f"or cuda, not {config.device}")  # fmt: skip
    shards = worker_shards(config, shard, len(devices))
    gpus = [physical_device(d, dict(os.environ)) for d in devices]
    procs = []
    for device, (k, n) in zip(gpus, shards):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": device, "FBGEN_WORKER": f"gpu{device}"}
        cmd = [sys.executable, "-m", "fbgen", "batch", *batch_args, "--shard", f"{k}/{n}"]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # each worker abandons its item cleanly and exits 130
        for p in procs:
            p.wait()
        raise
    return [_read_summary(config, s) for s in shards], worst(codes)


def run_ray(address: str, config: RunConfig, items: list[Item], shard: tuple[int, int], workers: int | None,
            force: bool, retry_failed: bool, quiet: bool = False) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """One Ray actor per GPU of the cluster (or `workers` actors), each loading the models once. The output dir
    must be storage every node sees (NFS, a shared volume); `address` is `auto`, `ray://host:port` or `local`."""
    try:
        import ray
    except ImportError:
        raise BadInput("--ray needs Ray: pip install 'fbgen[ray]'") from None
    try:
        ray.init(address=None if address == "local" else address, log_to_driver=not quiet, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BadInput(f"--ray {address}: cannot connect ({str(e).splitlines()[0]}); start a cluster with "
                       f"`ray start --head`, give its address, or use --ray local") from None  # fmt: skip
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = workers or gpus or 1
        actor = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(BatchActor)
        shards = worker_shards(config, shard, count)
        actors = [actor.remote(config, quiet) for _ in shards]
        pending = [a.run.remote(items, s, force, retry_failed) for a, s in zip(actors, shards)]
        results, codes, errors = [], [], []
        for ref, s in zip(pending, shards):
            try:
                results.append(ray.get(ref))
                codes.append(1 if results[-1]["failed"] else 0)
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as e:
                cause = getattr(e, "cause", None)
                error = cause if isinstance(cause, FbgenError) else FbgenError(f"worker {s[0]}/{s[1]}: {e}")
                errors.append(error)
                codes.append(error.exit_code)
                results.append(_read_summary(config, s))
        if errors and len(errors) == len(shards):
            raise errors[0]  # every actor failed (a missing model, say): one clear line and its exit code
        return results, worst(codes)
    finally:  # also on Ctrl-C/SIGTERM: kills the actors; their temp files are cleaned by the next run
        ray.shutdown()


class BatchActor:
    """A Ray actor: models loaded once on its GPU, then its sub-shard of the batch."""

    def __init__(self, config: RunConfig, quiet: bool):
        from fbgen.reporting import LogProgress, QuietProgress, quiet_libraries

        quiet_libraries()
        self.config, self.progress = config, QuietProgress() if quiet else LogProgress()

    def run(self, items: list[Item], shard: tuple[int, int], force: bool, retry_failed: bool) -> dict[str, Any]:
        return run_shard(self.config, items, shard, force, retry_failed, self.progress)


def combine(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary over workers that ran side by side (wall time is the slowest worker's)."""
    done = sum(s.get("done", 0) for s in summaries)
    wall = max((s.get("wall_s", 0.0) for s in summaries), default=0.0)
    video_s = sum((s.get("mean_s_per_video") or 0.0) * s.get("done", 0) for s in summaries)
    flops, large = sum(s.get("flops", 0.0) for s in summaries), sum(s.get("large_only_flops", 0.0) for s in summaries)
    return {
        "done": done, "skipped": sum(s.get("skipped", 0) for s in summaries),
        "failed": sum(s.get("failed", 0) for s in summaries), "wall_s": wall,
        "videos_per_hour": 3600 * done / wall if wall and done else 0.0,
        "mean_s_per_video": video_s / done if done else None, "flops": flops, "large_only_flops": large,
        "flops_saved": 1 - flops / large if large else None,
        "workers": summaries,
    }  # fmt: skip


def _read_summary(config: RunConfig, shard: tuple[int, int]) -> dict[str, Any]:
    path = summary_path(config.output_dir, shard)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"shard": list(shard), "done": 0, "skipped": 0, "failed": 0, "error": "worker wrote no summary"}
