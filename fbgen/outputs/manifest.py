"""Manifest records: atomic JSON files and whole-line JSONL appends, plus the environment a video came from."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fbgen

if TYPE_CHECKING:
    import torch


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write through a temp file and rename, so a reader never sees half a manifest."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware, for reproducing a video."""
    import diffusers
    import torch
    import transformers

    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "gpu_name": torch.cuda.get_device_name(device) if cuda else None,
        "versions": {
            "fbgen": fbgen.__version__,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
        },
    }
