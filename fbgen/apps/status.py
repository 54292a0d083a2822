"""`fbgen status OUT_DIR`: where a batch stands, read from its files alone — the gate a farm script runs before it
publishes. Each item of the latest prompts file is done (its MP4 matches its manifest's sha256), failed (with its
error), in progress (a claim whose worker may still be rendering), or missing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fbgen.apps.claims import Claims
from fbgen.apps.records import STATE_DIR, is_complete, previous_records, state_dir
from fbgen.core.errors import BadInput

STATES = ("done", "failed", "in_progress", "missing")


def batch_status(output_dir: str | os.PathLike) -> dict[str, Any]:
    out = Path(output_dir)
    try:
        index = json.loads((state_dir(out) / "items.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BadInput(f"{out}: not a batch output directory (no readable {STATE_DIR}/items.json); "
                       f"`fbgen batch PROMPTS --config CONFIG --out {out}` makes one") from None  # fmt: skip
    records = previous_records(out)
    claims = Claims(state_dir(out), create=False)
    generations = claims.generations()
    items: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
    for entry in index["items"]:
        item_id, record = entry["id"], records.get(entry["id"])
        gen = generations.get(item_id)
        claim = claims.read(item_id, gen) if gen is not None else None
        brief = {"id": item_id, "line": entry["line"], "name": entry.get("name")}
        if is_complete(record):
            items["done"].append({**brief, "output": record["output"]})
        elif claim is not None and claim.state == "running":
            path = claims.dir / f"{item_id}.{gen}"
            age = time.time() - path.stat().st_mtime if path.exists() else None
            items["in_progress"].append({**brief, "worker": claim.worker, "last_heartbeat_s": age})
        elif (record and record.get("status") == "failed") or (claim is not None and claim.state == "failed"):
            items["failed"].append({**brief, "error": (record or {}).get("error", "failed")})
        else:
            why = "its video is missing or does not match its manifest" if record else "never finished"
            items["missing"].append({**brief, "why": why})
    counts = {state: len(items[state]) for state in STATES}
    return {"output_dir": str(out), "prompts": index.get("prompts"), "total": len(index["items"]), **counts,
            "complete": counts["done"] == len(index["items"]), "items": items}  # fmt: skip
