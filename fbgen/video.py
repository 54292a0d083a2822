"""Frames → MP4 (H.264, yuv420p) through imageio-ffmpeg, written to a temp name and renamed into place."""

from __future__ import annotations

import os
from pathlib import Path

import imageio_ffmpeg
import numpy as np


def partial_path(path: Path) -> Path:
    """The temp file an MP4 is written to: hidden, pid-tagged, never mistaken for a finished video."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int) -> Path:
    """Encode uint8 frames (F, H, W, 3); a crash or Ctrl-C leaves no file under `path`, only no file at all."""
    path = Path(path)
    frames = _even(np.asarray(frames, dtype=np.uint8))
    _, height, width, _ = frames.shape
    tmp = partial_path(path)
    writer = imageio_ffmpeg.write_frames(
        str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        macro_block_size=1, quality=8, ffmpeg_log_level="error", output_params=["-movflags", "+faststart"],
    )  # fmt: skip
    try:
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        os.replace(tmp, path)
    finally:
        writer.close()  # ffmpeg must exit before its file is removed, or it re-creates it
        tmp.unlink(missing_ok=True)
    return path


def read_mp4(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Decode an MP4 back to uint8 frames (F, H, W, 3) and ffmpeg's metadata (codec, pix_fmt, fps, size)."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    return np.stack(frames), meta


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of frames (F, H, W, 3) by an integer factor, for viewing tiny videos."""
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def _even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row/column if one is odd."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frames
