"""What a batch has rendered: each worker's journal of finished and failed items, resume, and `manifest.jsonl`.

Each worker appends to its own `.fbgen/journal/<worker>.jsonl`, so no two processes ever append to one file (what
makes a shared NFS dir safe); every reader merges all journals, so any rerun, in any layout, sees every result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fbgen.outputs.checksums import path_sha256
from fbgen.outputs.manifest import write_text

STATE_DIR = ".fbgen"


def state_dir(output_dir: str | os.PathLike) -> Path:
    """`<out>/.fbgen`: claims, journals, worker summaries and the items index of a batch."""
    return Path(output_dir) / STATE_DIR


def journal_path(output_dir: str | os.PathLike, token: str) -> Path:
    return state_dir(output_dir) / "journal" / f"{token}.jsonl"


def worker_summary_path(output_dir: str | os.PathLike, token: str) -> Path:
    return state_dir(output_dir) / "workers" / f"{token}.json"


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """One whole line per write, flushed to disk: a crash leaves complete lines (a torn last line is ignored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def previous_records(output_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """One record per item id over every worker's journal: the newest `done` one, else the newest `failed` one."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((state_dir(output_dir) / "journal").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or "id" not in record:
                continue
            old = records.get(record["id"])
            rank = (record.get("status") == "done", str(record.get("created", "")))
            if old is None or rank >= (old.get("status") == "done", str(old.get("created", ""))):
                records[record["id"]] = record
    return records


def is_complete(record: Mapping[str, Any] | None) -> bool:
    """Done, and every output on disk (MP4, PNG frames, latents) is the one the manifest describes."""
    if not record or record.get("status") != "done":
        return False
    outputs = record.get("outputs") or {"mp4": {"path": record.get("output", ""), "sha256": record.get("sha256")}}
    for entry in outputs.values():
        path = Path(entry.get("path") or "")
        if not (path.is_file() or path.is_dir()) or path_sha256(path) != entry.get("sha256"):
            return False
    return True


def write_manifest(output_dir: str | os.PathLike, ids: list[str]) -> None:
    """`manifest.jsonl`: the current record of every item, in file order. Workers ending together may write it at
    once: each rewrites it (atomically) until the journals stay unchanged under it, so the last one leaves it whole."""
    path = Path(output_dir) / "manifest.jsonl"

    def render() -> str:
        records = previous_records(output_dir)
        return "".join(json.dumps(records[i], default=str) + "\n" for i in ids if i in records)

    text = render()
    for _ in range(10):
        write_text(path, text)
        again = render()
        if again == text and path.read_text(encoding="utf-8") == text:
            return
        text = again
