"""Batch runs for render farms: prompt files, stable ids and seeds, shards, resume, per-item failure isolation.

Item ids come from the prompt text (and per-item overrides), not from line numbers, so inserting a line, another
shard layout or another machine gives every item the same id, seed and output name. Each shard appends to its own
`manifest-K-of-N.jsonl` (no two processes ever append to one file, which is what makes a shared NFS dir safe), and
resume reads every manifest in the output dir, so a rerun with a different layout still skips finished items.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbgen.config import RunConfig, validate
from fbgen.errors import BadInput
from fbgen.manifest import now
from fbgen.sources import file_sha256

SESSION_KEYS = {"family", "models", "text_encoder", "vae", "dtype", "device", "offload", "compile", "output_dir"}
ITEM_KEYS = {"prompt", "id", "seed", "negative_prompt", "line"}


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str
    line: int
    seed: int | None = None
    negative_prompt: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


def read_prompts(path: str | os.PathLike) -> list[Item]:
    """`.txt`: a prompt per line, `#` comments and blank lines skipped. `.jsonl`: objects with `prompt` and
    optionally `id`, `seed`, `negative_prompt` and run-config overrides. Errors name the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read prompts ({e})") from None
    raw: list[tuple[int, dict[str, Any]]] = []
    for number, text in enumerate(lines, 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        if path.suffix == ".jsonl":
            try:
                entry = json.loads(text)
            except ValueError as e:
                raise BadInput(f"{path}:{number}: not valid JSON ({e})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str) or not entry["prompt"].strip():
                raise BadInput(f"{path}:{number}: expected an object with a non-empty 'prompt' string")
            if "seed" in entry and (isinstance(entry["seed"], bool) or not isinstance(entry["seed"], int)):
                raise BadInput(f"{path}:{number}: 'seed' must be an integer, got {entry['seed']!r}")
            if "id" in entry and not (isinstance(entry["id"], (str, int)) and str(entry["id"]).strip()):
                raise BadInput(f"{path}:{number}: 'id' must be a non-empty string")
            raw.append((number, entry))
        elif path.suffix in (".txt", ""):
            raw.append((number, {"prompt": text}))
        else:
            raise BadInput(f"{path}: prompts must be a .txt or .jsonl file")
    if not raw:
        raise BadInput(f"{path}: no prompts (blank lines and # comments are skipped)")
    items, seen = [], set()
    for number, entry in raw:
        overrides = {k: v for k, v in entry.items() if k not in ITEM_KEYS}
        item_id = str(entry["id"]).strip() if "id" in entry else _content_id(entry["prompt"], overrides)
        base, k = item_id, 1
        while item_id in seen:  # the same prompt twice: a second, distinct (and still stable) item
            k += 1
            item_id = f"{base}-{k}"
        if "id" in entry and k > 1:
            raise BadInput(f"{path}:{number}: id {base!r} is used twice")
        seen.add(item_id)
        items.append(Item(item_id, entry["prompt"].strip(), number, entry.get("seed"), entry.get("negative_prompt"),
                          overrides))  # fmt: skip
    return items


def _content_id(prompt: str, overrides: Mapping[str, Any]) -> str:
    text = prompt.strip() + (json.dumps(overrides, sort_keys=True) if overrides else "")
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def item_seed(base_seed: int, item_id: str) -> int:
    """A seed derived from the base seed and the item id: the same on every machine and shard layout."""
    return int(hashlib.sha256(f"{base_seed}:{item_id}".encode()).hexdigest()[:8], 16) % 2**31


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """`K/N` (1-based), else SLURM array variables, else torchrun's RANK/WORLD_SIZE, else 1/1."""
    env = os.environ if env is None else env
    if text:
        k, sep, n = text.partition("/")
        if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
            raise BadInput(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/8")
        return int(k), int(n)
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(env["SLURM_ARRAY_TASK_ID"]) - first + 1, int(env["SLURM_ARRAY_TASK_COUNT"])
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]) + 1, int(env["WORLD_SIZE"])
    return 1, 1


def in_shard(item_id: str, shard: tuple[int, int]) -> bool:
    """Stable assignment by a hash of the id, independent of file order."""
    k, n = shard
    return int(hashlib.sha1(item_id.encode()).hexdigest(), 16) % n == k - 1


def item_config(config: RunConfig, item: Item) -> RunConfig:
    """The run config for one item, per-item overrides validated like the config file's own keys."""
    bad = sorted(set(item.overrides) & SESSION_KEYS)
    if bad:
        raise BadInput(f"line {item.line}: {', '.join(bad)} cannot change per item (models are loaded once)")
    raw = {**config.to_dict(), **item.overrides}
    raw.pop("prompts")
    raw["prompt"] = item.prompt
    if item.negative_prompt is not None:
        raw["negative_prompt"] = item.negative_prompt
    raw = {k: v for k, v in raw.items() if v is not None}
    return validate(raw, f"line {item.line}")


def manifest_path(output_dir: str | os.PathLike, shard: tuple[int, int]) -> Path:
    k, n = shard
    return Path(output_dir) / ("manifest.jsonl" if n == 1 else f"manifest-{k}-of-{n}.jsonl")


def summary_path(output_dir: str | os.PathLike, shard: tuple[int, int]) -> Path:
    k, n = shard
    return Path(output_dir) / f"summary-{k}-of-{n}.json"


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """One whole line per write, flushed to disk: a crash leaves complete lines (a torn last line is ignored)."""
    line = (json.dumps(record, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def previous_records(output_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The last record per item id over every manifest in the dir (any shard layout); torn lines are skipped."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(output_dir).glob("manifest*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "id" in record:
                previous = records.get(record["id"])
                if previous is None or previous.get("status") != "done" or record.get("status") == "done":
                    records[record["id"]] = record
    return records


def is_complete(record: Mapping[str, Any] | None) -> bool:
    """Done, and the MP4 on disk is the one the manifest describes."""
    if not record or record.get("status") != "done":
        return False
    mp4 = Path(record.get("output", ""))
    return mp4.is_file() and file_sha256(mp4) == record.get("sha256")


def remove_leftovers(output_dir: Path, name: str) -> None:
    """Temp files of an interrupted attempt at this item (the item belongs to this shard alone)."""
    for leftover in output_dir.glob(f".{name}.*.partial.mp4"):
        leftover.unlink(missing_ok=True)


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    wall_s: float = 0.0
    encode_s: float = 0.0  # every prompt of the shard, up front, and freeing the text encoder
    video_s: list[float] = field(default_factory=list)
    flops: float = 0.0
    large_only: float = 0.0
    executed: float = 0.0  # less than `flops` when a cache hook reused block work

    def to_dict(self) -> dict[str, Any]:
        mean = sum(self.video_s) / len(self.video_s) if self.video_s else None
        return {
            "done": self.done, "skipped": self.skipped, "failed": self.failed, "wall_s": self.wall_s,
            "encode_s": self.encode_s,
            "videos_per_hour": 3600 * self.done / self.wall_s if self.wall_s and self.done else 0.0,
            "mean_s_per_video": mean,
            "flops": self.flops, "large_only_flops": self.large_only, "executed_flops": self.executed,
            "flops_saved": 1 - self.flops / self.large_only if self.large_only else None,
        }  # fmt: skip


def run_batch(session: Any, items: list[Item], shard: tuple[int, int], force: bool = False,
              retry_failed: bool = False) -> BatchSummary:  # fmt: skip
    """Generate this shard's items with one loaded session; record every finished or failed item."""
    from fbgen.runner import uses_cfg

    start = time.perf_counter()
    config: RunConfig = session.config
    out_dir = Path(config.output_dir)
    manifest = manifest_path(out_dir, shard)
    previous = previous_records(out_dir)
    summary = BatchSummary()
    todo = []
    for item in (i for i in items if in_shard(i.id, shard)):
        record = previous.get(item.id)
        if not force and (is_complete(record) or (record and record.get("status") == "failed" and not retry_failed)):
            summary.skipped += 1
            continue
        todo.append(item)
    configs: dict[str, RunConfig | Exception] = {}
    for item in todo:
        try:
            configs[item.id] = item_config(config, item)
        except BadInput as e:
            configs[item.id] = e
    valid = [i for i in todo if isinstance(configs[i.id], RunConfig)]
    cfg = any(uses_cfg(c) for c in configs.values() if isinstance(c, RunConfig))
    prompts = [configs[i.id].prompts[0] for i in valid]
    negatives = [configs[i.id].negative_prompt for i in valid]
    t_encode = time.perf_counter()
    encoded = session.family.encode(prompts, negatives, cfg) if valid else []
    summary.encode_s = time.perf_counter() - t_encode
    conds = dict(zip([i.id for i in valid], encoded))
    for index, item in enumerate(todo):
        item_cfg = configs[item.id]
        seed = item.seed if item.seed is not None else item_seed(config.seed, item.id)
        base = {"id": item.id, "line": item.line, "prompt": item.prompt, "seed": seed}
        try:
            if isinstance(item_cfg, Exception):
                raise item_cfg
            t0 = time.perf_counter()
            record = session.generate(item_cfg, item.prompt, conds[item.id], seed, index, len(todo),
                                      cleanup=lambda name: remove_leftovers(out_dir, name))  # fmt: skip
            summary.video_s.append(time.perf_counter() - t0)
            summary.done += 1
            summary.flops += record["flops"]["total"]
            summary.large_only += record["flops"]["large_only"]
            summary.executed += record["flops"]["executed"]
            append_record(manifest, {**record, **base})
        except KeyboardInterrupt:
            raise
        except Exception as e:  # OOM, NaN latents, write errors, bad overrides: record and go on
            summary.failed += 1
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            append_record(manifest, {**base, "created": now(), "status": "failed", "error": error})
            _free_cuda_cache()
    summary.wall_s = time.perf_counter() - start
    return summary


def run_shard(config: RunConfig, items: list[Item], shard: tuple[int, int], force: bool = False,
              retry_failed: bool = False, progress: Any = None) -> dict[str, Any]:  # fmt: skip
    """Load the models once and run one shard; writes `summary-K-of-N.json` and returns its data."""
    from fbgen.manifest import write_json
    from fbgen.runner import Session

    session = Session.open(config, progress)
    summary = run_batch(session, items, shard, force=force, retry_failed=retry_failed)
    data = {**summary.to_dict(), "shard": list(shard), "manifest": str(manifest_path(config.output_dir, shard))}
    write_json(summary_path(config.output_dir, shard), data)
    return data


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
