"""Frames → a folder of PNGs (`<name>/00000.png`, ...), written into a hidden temp folder, read back and counted, then
renamed into place whole."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from fbgen.outputs.atomic import committed, fsync, raise_write_error


def write_png_frames(frames: np.ndarray, path: str | os.PathLike) -> Path:
    path = Path(path)
    with committed(path) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i, frame in enumerate(np.asarray(frames, dtype=np.uint8)):
            Image.fromarray(frame).save(tmp / f"{i:05d}.png")
        written = sorted(tmp.glob("*.png"))
        if len(written) != len(frames) or any(_shape(f) != frames[0].shape for f in written):
            raise_write_error(path, f"the written folder reads back as {len(written)} of {len(frames)} frames")
        for file in written:
            fsync(file)
        if path.exists():
            shutil.rmtree(path)  # an older, unrecorded copy (a done item is never redone without --force)
    return path


def _shape(file: Path) -> tuple[int, ...]:
    with Image.open(file) as image:
        return np.asarray(image.convert("RGB")).shape


def read_png_frames(path: str | os.PathLike) -> np.ndarray:
    """A folder of PNG frames back to uint8 (F, H, W, 3)."""
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(Path(path).glob("*.png"))])
