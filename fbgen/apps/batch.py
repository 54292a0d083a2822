"""Batch input for render farms: a prompts file read into items with stable ids, seeds and unique output names.

Item ids come from the prompt text (and per-item overrides), not from line numbers, so inserting a line, another
worker layout or another machine gives every item the same id, seed and output name. Rendering them is
`fbgen.apps.worker` (a worker drains a queue shared with any other worker); what was rendered is `fbgen.apps.records`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbgen.apps.records import state_dir
from fbgen.config import RunConfig
from fbgen.core.errors import BadInput
from fbgen.engine.job import Job, name_jobs
from fbgen.outputs.manifest import now, write_json
from fbgen.outputs.naming import content_id, unique_ids

ITEM_KEYS = {"prompt", "id", "seed", "negative_prompt"}
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str
    line: int
    seed: int | None = None
    negative_prompt: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0  # position among the file's items: `{index}` in names (stable when prompts are appended)


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
            if "id" in entry and not (isinstance(entry["id"], (str, int)) and ID_PATTERN.fullmatch(str(entry["id"]))):
                raise BadInput(f"{path}:{number}: 'id' must be 1-64 characters of A-Z a-z 0-9 . _ - "
                               f"(starting with a letter or digit), got {entry['id']!r}")  # fmt: skip
            raw.append((number, entry))
        elif path.suffix in (".txt", ""):
            raw.append((number, {"prompt": text}))
        else:
            raise BadInput(f"{path}: prompts must be a .txt or .jsonl file")
    if not raw:
        raise BadInput(f"{path}: no prompts (blank lines and # comments are skipped)")
    given: dict[str, int] = {}
    for number, entry in raw:
        if "id" in entry:
            if str(entry["id"]) in given:
                raise BadInput(f"{path}:{number}: id {str(entry['id'])!r} is used twice (also line "
                               f"{given[str(entry['id'])]})")  # fmt: skip
            given[str(entry["id"])] = number
    overrides = [{k: v for k, v in entry.items() if k not in ITEM_KEYS} for _, entry in raw]
    ids = unique_ids([str(e["id"]) if "id" in e else content_id(e["prompt"], o) for (_, e), o in zip(raw, overrides)])
    return [
        Item(item_id, entry["prompt"].strip(), number, entry.get("seed"), entry.get("negative_prompt"), extra, index)
        for index, (item_id, (number, entry), extra) in enumerate(zip(ids, raw, overrides))
    ]


def item_seed(base_seed: int, item_id: str) -> int:
    """A seed derived from the base seed and the item id: the same on every machine and worker layout."""
    return int(hashlib.sha256(f"{base_seed}:{item_id}".encode()).hexdigest()[:8], 16) % 2**31


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard K/N` (1-based) for a static split; None (the default) lets workers share the whole queue."""
    if not text:
        return None
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise BadInput(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/8")
    return int(k), int(n)


def in_shard(item_id: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment by a hash of the id, independent of file order."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha1(item_id.encode()).hexdigest(), 16) % n == k - 1


def item_job(config: RunConfig, item: Item, seed: int) -> Job:
    """The job of one item: its prompt, seed and per-item overrides, checked as the config file's own per-job keys
    are. Load-time keys cannot change per item (the models are loaded once per worker): such an item fails with a
    clear error, it is never silently rendered without its override."""
    changes = dict(item.overrides)
    if item.negative_prompt is not None:
        changes["negative_prompt"] = item.negative_prompt
    if "output_dir" in changes:
        raise BadInput(f"line {item.line}: output_dir cannot change per item (the batch's queue and manifest live "
                       "there)")  # fmt: skip
    job = Job.of(config, item.prompt, seed, index=item.index, id=item.id)
    return job.changed(f"line {item.line}", **changes) if changes else job


@dataclass
class Batch:
    """A prompts file made ready before any model loads: each item's config (or why it cannot run), seed and name."""

    config: RunConfig
    items: list[Item]  # the items this worker may take (its --shard, or all)
    jobs: dict[str, Job | BadInput]  # each item's job, or why it cannot run
    seeds: dict[str, int]
    names: dict[str, str]
    prompts_file: str = ""

    @classmethod
    def prepare(cls, config: RunConfig, items: list[Item], shard: tuple[int, int] | None = None,
                prompts_file: str = "") -> Batch:  # fmt: skip
        """Make every item a job and name its output; a file name template that gives two items one name is refused
        (exit 2), naming both lines."""
        seeds = {i.id: i.seed if i.seed is not None else item_seed(config.seed, i.id) for i in items}
        refused: dict[str, BadInput] = {}
        jobs = []
        for item in items:
            try:
                jobs.append(item_job(config, item, seeds[item.id]))
            except BadInput as e:  # the item fails when its turn comes; it is still named (its name is reserved)
                refused[item.id] = e
                jobs.append(Job.of(config, item.prompt, seeds[item.id], index=item.index, id=item.id))
        lines = {i.id: i.line for i in items}
        named = {j.id: j for j in name_jobs(jobs, config.source, "lines", lambda job: lines[job.id])}
        mine = [i for i in items if in_shard(i.id, shard)]
        return cls(config, mine, {i: refused.get(i, j) for i, j in named.items()}, seeds,
                   {i: j.name for i, j in named.items()}, prompts_file)  # fmt: skip

    @property
    def root(self) -> Path:
        return state_dir(self.config.output_dir)

    def write_index(self, all_items: list[Item]) -> None:
        """`.fbgen/items.json`: what `fbgen status` checks the batch against (the latest prompts file wins)."""
        self.root.mkdir(parents=True, exist_ok=True)
        entries = [{"id": i.id, "line": i.line, "prompt": i.prompt, "name": self.names.get(i.id)} for i in all_items]
        write_json(self.root / "items.json", {"prompts": self.prompts_file, "created": now(), "items": entries})
