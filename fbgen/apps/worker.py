"""One worker on a render farm: who it is, and the loop that drains the queue it shares with every other worker on
the same prompts and output dir, so that together they render every item exactly once.

Workers need no shard: each claims an item under a lease (`fbgen.apps.claims`), renders it, records it in its journal
(`fbgen.apps.records`) and takes the next, until nothing is left it could take. A dead worker's item is taken over when
its lease lapses; an interrupted one releases its item at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fbgen.apps.batch import Batch, Item
from fbgen.apps.claims import LEASE_S, Claim, Claims, Heartbeat
from fbgen.apps.records import (
    append_record,
    is_complete,
    journal_path,
    previous_records,
    state_dir,
    worker_summary_path,
    write_manifest,
)
from fbgen.config import RunConfig
from fbgen.core import interrupts
from fbgen.core.errors import BadInput, DiskFull
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.engine.progress import NoProgress
from fbgen.outputs.manifest import now, write_json


@dataclass(frozen=True)
class Worker:
    """One process on the farm. `run` is shared by workers launched together (a SLURM job or array, a torchrun, a
    --devices/--ray driver): `--force`/`--retry-failed` redo an item once per run, not once per worker. `group`:
    launched with peers whose launcher waits for all of them (torchrun, `srun -n N`, the drivers), so it stays
    until every item is settled, taking over any a dead peer held. `peers`: the size of a torchrun/srun group, whose
    launcher kills the others when one rank exits non-zero: such a rank first waits for all to reach their end."""

    token: str
    run: str
    group: bool = False
    peers: int = 1

    @classmethod
    def here(cls, env: Mapping[str, str] | None = None) -> Worker:
        env = os.environ if env is None else env
        token = env.get("FBGEN_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        token = re.sub(r"[^A-Za-z0-9._-]", "_", token)
        torchrun = _count(env, "WORLD_SIZE") if "TORCHELASTIC_RUN_ID" in env else 1
        srun = _count(env, "SLURM_STEP_NUM_TASKS")
        run = (env.get("FBGEN_RUN_ID") or env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID")
               or (f"torchrun-{env['TORCHELASTIC_RUN_ID']}-{env.get('MASTER_ADDR')}-{env.get('MASTER_PORT')}"
                   if torchrun > 1 else token))  # fmt: skip
        peers = max(torchrun, srun)
        return cls(token, re.sub(r"[^A-Za-z0-9._-]", "_", run), peers > 1 or env.get("FBGEN_GROUP") == "1", peers)


def _count(env: Mapping[str, str], name: str) -> int:
    """A launcher's process count; a value that is not a positive integer is bad input, not a traceback."""
    value = env.get(name, "1").strip()
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"environment variable {name}={value[:20]!r}: expected a positive integer (set by torchrun or "
                       "srun; unset it or fix the launcher)")  # fmt: skip
    return int(value)


def wait_for_peers(output_dir: str | os.PathLike, worker: Worker, lease_s: float = LEASE_S) -> None:
    """Mark this worker's end and, for a rank of a torchrun/srun group, wait until every rank has reached its end,
    so that a non-zero exit (which makes torchrun kill the others) cuts no one's work short. Every item is settled
    by then; a rank that never arrives (it crashed) is waited for one lease at most."""
    if worker.peers <= 1:
        return
    ended = state_dir(output_dir) / "ended" / worker.run
    ended.mkdir(parents=True, exist_ok=True)
    (ended / worker.token).touch()
    seen, since = 0, time.monotonic()
    while (count := len(os.listdir(ended))) < worker.peers and time.monotonic() - since < lease_s:
        if count != seen:
            seen, since = count, time.monotonic()
        time.sleep(0.2)


@dataclass
class BatchSummary:
    done: int = 0  # rendered by this worker
    skipped: int = 0  # already done (earlier, or by another worker)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {id, line, error}: this run's or an earlier one's
    elsewhere: list[str] = field(default_factory=list)  # ids other live workers were still rendering at the end
    wall_s: float = 0.0
    encode_s: float = 0.0  # every pending prompt, up front, and freeing the text encoder
    video_s: list[float] = field(default_factory=list)
    flops: float = 0.0
    large_only: float = 0.0
    executed: float = 0.0  # less than `flops` when a cache hook reused block work

    @property
    def exit_code(self) -> int:
        """0 only if every item this worker could take is done; 1 if any failed (now or earlier, unless retried)."""
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        mean = sum(self.video_s) / len(self.video_s) if self.video_s else None
        return {
            "done": self.done, "skipped": self.skipped, "failed": len(self.failed), "failed_items": self.failed,
            "in_progress_elsewhere": self.elsewhere, "wall_s": self.wall_s, "encode_s": self.encode_s,
            "videos_per_hour": 3600 * self.done / self.wall_s if self.wall_s and self.done else 0.0,
            "mean_s_per_video": mean,
            "flops": self.flops, "large_only_flops": self.large_only, "executed_flops": self.executed,
            "flops_saved": 1 - self.flops / self.large_only if self.large_only else None,
        }  # fmt: skip


    @classmethod
    def merged(cls, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """One summary over workers that ran side by side (wall time is the slowest worker's), with each worker's."""
        merged = cls(
            done=sum(p.get("done", 0) for p in parts), skipped=sum(p.get("skipped", 0) for p in parts),
            failed=[f for p in parts for f in p.get("failed_items", [])],
            elsewhere=sorted({i for p in parts for i in p.get("in_progress_elsewhere", [])}),
            wall_s=max((p.get("wall_s", 0.0) for p in parts), default=0.0),
            encode_s=max((p.get("encode_s", 0.0) for p in parts), default=0.0),
            video_s=[p["mean_s_per_video"] for p in parts for _ in range(p.get("done", 0))
                     if p.get("mean_s_per_video")],
            flops=sum(p.get("flops", 0.0) for p in parts),
            large_only=sum(p.get("large_only_flops", 0.0) for p in parts),
            executed=sum(p.get("executed_flops", 0.0) for p in parts),
        )  # fmt: skip
        return {**merged.to_dict(), "workers": parts}


@dataclass
class Options:
    force: bool = False
    retry_failed: bool = False
    lease_s: float = LEASE_S


def run_worker(engine: Engine, batch: Batch, worker: Worker, options: Options, log: Any = print) -> BatchSummary:
    """Take items from the shared queue until none is left that this worker could render; record every finished or
    failed item. A dead worker's item is taken over once its lease lapses; items other live workers hold are left
    to them (a torchrun/srun rank waits for them, so no rank exits early)."""
    start = time.perf_counter()
    out = Path(batch.config.output_dir)
    claims = Claims(batch.root, worker.token, worker.run, options.lease_s)
    journal = journal_path(out, worker.token)
    records = previous_records(out)
    complete = {i.id for i in batch.items if is_complete(records.get(i.id))}
    summary = BatchSummary()

    pending = [i for i in batch.items if options.force or i.id not in complete]
    valid = [i for i in pending if isinstance(batch.jobs[i.id], Job)]
    t0 = time.perf_counter()
    encoded = engine.encode([batch.jobs[i.id] for i in valid]) if valid else []
    engine.release_text_encoder()
    summary.encode_s = time.perf_counter() - t0
    conds = {i.id: to_device(c, "cpu") for i, c in zip(valid, encoded)}  # on the device one at a time, see below

    # workers start at different points of the list, so they rarely race for the same item
    offset = int(worker.token.encode().hex(), 16) % len(pending) if pending else 0
    order = pending[offset:] + pending[:offset]
    resolved: dict[str, str] = {} if options.force else dict.fromkeys(complete, "done")
    heartbeat = Heartbeat(options.lease_s)
    queue = _Queue(claims, worker, options, out, log)
    announced = False
    try:
        while True:
            interrupts.check()
            took, waiting = False, []
            queue.refresh()
            for item in order:
                if item.id in resolved:
                    continue
                outcome = queue.take(item.id)
                if isinstance(outcome, Claim):
                    took = True
                    resolved[item.id] = _render(engine, batch, item, outcome, conds, journal, heartbeat, summary,
                                                options, log)  # fmt: skip
                elif outcome == "waiting":
                    waiting.append(item.id)
                elif outcome != "elsewhere":
                    resolved[item.id] = outcome  # done or failed
            if took:
                continue  # claims may have changed while it rendered: look at everything again
            if not waiting:
                summary.elsewhere = sorted(queue.alive - set(resolved))
                break
            if not announced:
                log(f"waiting on {len(waiting)} item(s) other workers hold (taken over if their lease lapses)")
                announced = True
            time.sleep(heartbeat.interval)
    except KeyboardInterrupt:
        claims.release_held()  # also an item taken a moment before the signal, its render not yet begun
        raise
    finally:
        heartbeat.stop()

    records = previous_records(out)
    summary.skipped = sum(1 for i in batch.items if resolved.get(i.id) == "done") - summary.done
    for item in batch.items:
        if resolved.get(item.id) == "failed":
            error = (records.get(item.id) or {}).get("error", "failed (no record)")
            summary.failed.append({"id": item.id, "line": item.line, "error": error})
    summary.wall_s = time.perf_counter() - start
    return summary


class _Queue:
    """What this worker may do with one item now, read from its newest claim: take it (a Claim), leave it to a live
    holder (`elsewhere`), look again later (`waiting`), or count it as settled (`done`, `failed`)."""

    def __init__(self, claims: Claims, worker: Worker, options: Options, out: Path, log: Any):
        self.claims, self.worker, self.options, self.out, self.log = claims, worker, options, out, log
        self.alive: set[str] = set()  # items whose holder was seen beating
        self.generations: dict[str, int] = {}
        self.records: dict[str, dict[str, Any]] | None = None

    def refresh(self) -> None:
        self.generations, self.records = self.claims.generations(), None

    def take(self, item_id: str) -> Claim | str:
        gen = self.generations.get(item_id, -1)
        if gen < 0:
            return self.claims.take(item_id, 0) or "waiting"
        seen = self.claims.read(item_id, gen)
        if seen.state == "running":
            verdict = self.claims.observe(seen)
            if verdict == "stale":
                claim = self.claims.take(item_id, gen + 1)
                if claim:
                    self.log(f"{item_id}: taking over from {seen.worker} (silent for {self.options.lease_s:g} s)")
                return claim or "waiting"
            if verdict == "alive":
                self.alive.add(item_id)
            # a lone worker leaves an item it saw beating to its holder; a group member watches it to the end
            return "elsewhere" if item_id in self.alive and not self.worker.group else "waiting"
        if seen.state != "released":
            if seen.run == self.worker.run:
                return seen.state  # settled by a peer of this run: --force/--retry-failed act once per run
            if seen.state == "failed" and not self.options.retry_failed:
                return "failed"
            if seen.state == "done" and not self.options.force:
                self.records = self.records if self.records is not None else previous_records(self.out)
                if is_complete(self.records.get(item_id)):
                    return "done"  # else its video is gone or damaged: render it again
        return self.claims.take(item_id, gen + 1) or "waiting"


def _render(engine: Engine, batch: Batch, item: Any, claim: Claim, conds: dict[str, Any], journal: Path,
            heartbeat: Heartbeat, summary: BatchSummary, options: Options, log: Any) -> str:  # fmt: skip
    """Render one claimed item and record it; returns its final state. An interrupt is left to `run_worker`, which
    releases the claim (the next worker or the rerun takes it at once)."""
    out = Path(batch.config.output_dir)
    base = {"id": item.id, "line": item.line, "prompt": item.prompt, "seed": batch.seeds[item.id],
            "name": batch.names[item.id]}  # fmt: skip
    if claim.gen > 0 and not options.force and is_complete(previous_records(out).get(item.id)):
        claim.finish("done")  # a worker that died after recording it, before marking its claim
        return "done"
    for leftover in out.glob(f".{batch.names[item.id]}.*.partial.mp4"):  # of a dead holder: the item is ours now
        leftover.unlink(missing_ok=True)
    heartbeat.claim = claim
    try:
        job = batch.jobs[item.id]
        if isinstance(job, Exception):
            raise job
        t0 = time.perf_counter()
        record = engine.render(job, to_device(conds[item.id], engine.device), total=len(batch.items))
        if claim.superseded:
            log(f"{item.id}: another worker took this item over while it was rendering; its record stands")
            return "done"
        summary.video_s.append(time.perf_counter() - t0)
        summary.done += 1
        summary.flops += record["flops"]["total"]
        summary.large_only += record["flops"]["large_only"]
        summary.executed += record["flops"]["executed"]
        append_record(journal, {**record, **base, "worker": claim.worker, "run": claim.run})
        claim.finish("done")
        return "done"
    except Exception as e:  # OOM, NaN latents, write errors, bad overrides: record and go on (a full disk stops)
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        with contextlib.suppress(OSError):  # a full disk: the claim still says failed
            append_record(journal, {**base, "created": now(), "status": "failed", "error": error,
                                    "worker": claim.worker, "run": claim.run})  # fmt: skip
        claim.finish("failed")
        if isinstance(e, DiskFull):
            raise
        log(f"{item.id} (line {item.line}) failed: {error}")
        _free_cuda_cache()
        return "failed"
    finally:
        heartbeat.claim = None


def to_device(cond: Any, device: Any) -> Any:
    """An encoded prompt (a family's dataclass of tensors) moved whole. Every worker encodes every pending prompt of
    the shared queue, so the encodings wait in host memory and go to the GPU one video at a time."""
    if isinstance(cond, torch.Tensor):
        return cond.to(device)
    if dataclasses.is_dataclass(cond):
        return dataclasses.replace(cond, **{f.name: to_device(getattr(cond, f.name), device)
                                            for f in dataclasses.fields(cond)})  # fmt: skip
    return cond


def _free_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_batch(config: RunConfig, batch: Batch, all_items: list[Item], worker: Worker, options: Options,
              progress: Any = None) -> dict[str, Any]:  # fmt: skip
    """One worker, start to end: load the models once, take items until the queue is drained, write this worker's
    summary (`.fbgen/workers/<worker>.json`) and the batch's `manifest.jsonl`. Returns the summary."""
    progress = progress or NoProgress()
    engine = Engine.open(config, progress)
    batch.write_index(all_items)
    summary = run_worker(engine, batch, worker, options, log=progress.phase)
    data = {**summary.to_dict(), "worker": worker.token, "run": worker.run, "exit_code": summary.exit_code}
    summary_path = worker_summary_path(config.output_dir, worker.token)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(summary_path, data)
    write_manifest(config.output_dir, [i.id for i in all_items])
    return data
