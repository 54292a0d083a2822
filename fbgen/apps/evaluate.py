"""Fidelity of existing videos against reference videos (`fbgen eval`): e.g. an LSL batch against its LLL batch.

Pairs: a file with a file; every video of a directory with the same-named file of a reference directory; or every
video of a directory with one reference file.
"""

from __future__ import annotations

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
    matched = [(v, references / v.name) for v in found if (references / v.name).is_file()]
    if not matched:
        raise BadInput(f"--reference {references}: no file named like any video of {videos} (pairs go by file name)")
    return matched


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
