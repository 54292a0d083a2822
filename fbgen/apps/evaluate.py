"""Fidelity of existing videos against reference videos (`fbgen eval`): e.g. an LSL batch against its LLL batch.

Pairs: a file with a file; every video of a directory with the reference video of the same prompt and seed (read from
both manifests, so `fbgen eval out/lsl --reference out/lll` works with default names, which differ by schedule), or
with the same-named file where there are no manifests; or every video of a directory with one reference file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fbgen.apps.fidelity import Embedder, pixel_fidelity
from fbgen.core.errors import BadInput
from fbgen.outputs.video import read_mp4


def pairs(videos: Path, references: Path) -> list[tuple[Path, Path]]:
    for path, what in ((videos, "VIDEOS"), (references, "--reference")):
        if not path.exists():
            raise BadInput(f"{what} {path}: no such file or directory")
    found = sorted(videos.glob("*.mp4")) if videos.is_dir() else [videos]
    if not found:
        raise BadInput(f"VIDEOS {videos}: no .mp4 files")
    if references.is_file():
        return [(v, references) for v in found]
    by_key = {key: v for v in sorted(references.glob("*.mp4")) if (key := _identity(v)) is not None}
    matched = []
    for video in found:
        key = _identity(video)
        reference = by_key.get(key) if key is not None else None
        reference = reference or (references / video.name if (references / video.name).is_file() else None)
        if reference is not None:
            matched.append((video, reference))
    if not matched:
        raise BadInput(f"--reference {references}: no video with the prompt and seed (from the manifests) or the "
                       f"file name of any video of {videos}")  # fmt: skip
    return matched


def _identity(video: Path) -> tuple[str, int] | None:
    """(prompt, seed) from the manifest beside a video, if fbgen wrote one."""
    try:
        record = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
        return record["prompt"], int(record["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate(videos: Path, references: Path, embedders: dict[str, Embedder] | None = None) -> dict[str, Any]:
    """PSNR and SSIM (and CLIP/DINO similarity) of each pair, and their means."""
    items = []
    for video, reference in pairs(videos, references):
        frames, reference_frames = read_mp4(video)[0], read_mp4(reference)[0]
        if frames.shape != reference_frames.shape:
            raise BadInput(f"{video}: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} cannot be "
                           f"compared with {reference} ({reference_frames.shape[0]} frames of "
                           f"{reference_frames.shape[2]}x{reference_frames.shape[1]})")  # fmt: skip
        item = {"video": str(video), "reference": str(reference), **pixel_fidelity(frames, reference_frames)}
        for kind, embed in (embedders or {}).items():
            item[kind] = embed.similarity(frames, reference_frames)
        items.append(item)
    metrics = [k for k in items[0] if k not in ("video", "reference")]
    return {"items": items, "mean": {k: float(np.mean([i[k] for i in items])) for k in metrics}}
