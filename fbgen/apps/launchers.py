"""One batch over several workers: one process per local GPU (`--devices`), or one Ray actor per GPU (`--ray`).

The workers drain the same queue as any other `fbgen batch` on the output dir (claims and leases, `fbgen.apps.worker`),
so nothing is split up front: a worker that dies leaves its item to the others once its lease lapses. They share
one run id (so `--force` redoes each item once) and, since the driver waits for all of them anyway, each waits for
its peers' items before it ends, taking over any whose worker died. The driver's exit code comes from the batch
itself once every worker has ended: 130 interrupted > 3 model > 2 bad input > 1 items failed or missing > 0.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fbgen.apps.batch import Batch, Item
from fbgen.apps.records import worker_summary_path
from fbgen.apps.worker import Options, Worker, run_batch
from fbgen.config import RunConfig
from fbgen.core import interrupts
from fbgen.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_MODEL, BadInput, FbgenError

SEVERITY = (EXIT_INTERRUPTED, EXIT_MODEL, EXIT_BAD_INPUT)


def worst(codes: Sequence[int]) -> int:
    """The most serious of the workers' exit codes; a worker killed by a signal counts as failed items."""
    for code in SEVERITY:
        if code in codes:
            return code
    return 1 if any(codes) else 0


def parse_devices(text: str, device: str = "auto") -> list[str]:
    """`0,1,3` or `all` (every visible CUDA device). Indices name GPUs, so without CUDA they are refused, unless the
    config asks for `device: cpu` (then they only number CPU workers)."""
    if text.strip() == "all":
        import torch

        count = torch.cuda.device_count()
        if not count:
            raise BadInput("--devices all: no CUDA device is visible")
        return [str(i) for i in range(count)]
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices or not all(d.isdigit() for d in devices) or len(set(devices)) != len(devices):
        raise BadInput(f"--devices {text[:40]!r}: expected distinct GPU indices like 0,1,2,3 or 'all'")
    import torch

    count = torch.cuda.device_count()
    if device == "cpu":
        return devices
    if not count:
        raise BadInput(f"--devices {text}: no CUDA device is visible (with device: cpu in the config, the indices "
                       "number CPU workers)")  # fmt: skip
    if max(map(int, devices)) >= count:
        raise BadInput(f"--devices {text}: this machine shows {count} CUDA device(s) (0..{count - 1})")
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


def driver_run(parent: Worker) -> str:
    """The run id the driver's workers share: the farm's (SLURM job, torchrun) if there is one, else a new one."""
    return parent.run if parent.run != parent.token else f"driver-{parent.token}"


def run_local(batch_args: list[str], config: RunConfig, devices: list[str]) -> tuple[list[dict[str, Any]], int]:
    """One `fbgen batch` process per GPU, each seeing only its GPU (CUDA_VISIBLE_DEVICES); SIGTERM/SIGINT is passed
    on to all of them. `batch_args` are the parent's arguments minus --devices/--json."""
    if config.device.startswith("cuda:"):
        raise BadInput(f"{config.source}: key 'device': with --devices each worker sees one GPU; use device: auto "
                       f"or cuda, not {config.device}")  # fmt: skip
    parent = Worker.here()
    run = driver_run(parent)
    gpus = [physical_device(d, dict(os.environ)) for d in devices]
    workers = [Worker(f"gpu{gpu}-{parent.token}", run, True) for gpu in gpus]
    procs = []
    try:
        for gpu, worker in zip(gpus, workers):
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "FBGEN_WORKER": f"gpu{gpu}",
                   "FBGEN_WORKER_ID": worker.token, "FBGEN_RUN_ID": run, "FBGEN_GROUP": "1"}  # fmt: skip
            procs.append(subprocess.Popen([sys.executable, "-m", "fbgen", "batch", *batch_args], env=env))
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # each worker abandons its item cleanly and exits 130
        for p in procs:
            p.wait()
        raise
    return [_read_summary(config, w) for w in workers], worst(codes)


def run_ray(address: str, config: RunConfig, batch: Batch, all_items: list[Item], workers: int | None,
            options: Options, quiet: bool = False, log: Any = print) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """One Ray actor per free GPU of the cluster (or `workers` actors, as many as fit), each loading the models once.
    The output dir must be storage every node sees (NFS, a shared volume); `address` is `auto`, `host:port`,
    `ray://host:port` (Ray Client) or `local` (a new single-machine cluster, never an existing one)."""
    try:
        import ray
    except ImportError:
        raise BadInput("--ray needs Ray: pip install 'fbgen[ray]'") from None
    try:
        ray.init(address=address, log_to_driver=not quiet, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BadInput(f"--ray {address}: cannot connect ({str(e).splitlines()[0]}); start a cluster with "
                       f"`ray start --head`, give its address, or use --ray local") from None  # fmt: skip
    finally:
        interrupts.install()  # ray.init replaces the SIGTERM handler with one that aborts the driver
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        kind = "GPU" if gpus else "CPU"
        free = int(ray.available_resources().get(kind, 0))
        wanted = workers or gpus or 1
        count = min(wanted, free)
        if count == 0:
            raise BadInput(f"--ray {address}: the cluster has no free {kind} for a worker (all "
                           f"{int(ray.cluster_resources().get(kind, 0))} are in use)")  # fmt: skip
        if count < wanted:
            log(f"starting {count} of {wanted} Ray workers: the cluster has {free} free {kind} slot(s)")
        actor = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(BatchActor)
        run = driver_run(Worker.here())
        names = [Worker(f"ray{k}-{secrets.token_hex(3)}", run, True) for k in range(count)]
        actors = [actor.remote(config, quiet) for _ in names]
        refs = [a.run.remote(batch, all_items, w, options) for a, w in zip(actors, names)]
        results, codes, errors = [], [], []
        for ref, worker in zip(refs, names):
            try:
                results.append(ray.get(ref))
                codes.append(results[-1]["exit_code"])
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as e:
                cause = getattr(e, "cause", None)
                error = cause if isinstance(cause, FbgenError) else FbgenError(f"worker {worker.token}: {e}")
                if isinstance(e, ray.exceptions.RayActorError):
                    log(f"Ray worker {worker.token} died; its item is taken over by the others when its lease lapses")
                errors.append(error)
                codes.append(error.exit_code)
                results.append(_read_summary(config, worker))
        if errors and len(errors) == len(names):
            raise errors[0]  # every actor failed (a missing model, say): one clear line and its exit code
        return results, worst([c for c in codes if c != 1])  # items are judged from the files by the caller
    finally:  # also on Ctrl-C/SIGTERM: kills the actors; their claims are released when their leases lapse
        ray.shutdown()


class BatchActor:
    """A Ray actor: models loaded once on its GPU, then items from the shared queue until none is left."""

    def __init__(self, config: RunConfig, quiet: bool):
        from fbgen.apps.reporting import LogProgress, QuietProgress, quiet_libraries

        quiet_libraries()
        self.config, self.progress = config, QuietProgress() if quiet else LogProgress()

    def run(self, batch: Batch, all_items: list[Item], worker: Worker, options: Options) -> dict[str, Any]:
        return run_batch(self.config, batch, all_items, worker, options, self.progress)


def _read_summary(config: RunConfig, worker: Worker) -> dict[str, Any]:
    path = worker_summary_path(config.output_dir, worker.token)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"worker": worker.token, "done": 0, "error": "worker wrote no summary"}
