"""Checkpoint JSON files (config.json, model_index.json, scheduler_config.json) read as objects: a file that is not
one is a model error (exit 3), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fbgen.core.errors import ModelError


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{what}: cannot read {path.name} ({str(e)[:120]})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{what}: {path.name} is not a JSON object")
    return data
