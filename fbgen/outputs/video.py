"""Frames → MP4 (H.264, yuv420p) with imageio-ffmpeg's ffmpeg, verified and then renamed into place.

imageio-ffmpeg's own writer does not check ffmpeg's exit status (a full disk gives a truncated file), so the
encoder runs as a subprocess whose status and output are checked, and the file is decoded back before its rename."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from fbgen.outputs.atomic import committed, raise_write_error

CRF = 10  # H.264 quality (lower is better; 10 is near lossless, what imageio's quality=8 gave)


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int, crf: int = CRF) -> Path:
    """Encode uint8 frames (F, H, W, 3) to a temp file, verify it (ffmpeg's exit status, then a decode that counts
    every frame) and only then rename it into place, synced. A crash, Ctrl-C, a full disk or a failing encoder
    leaves no file under `path`: a full disk raises DiskFull, any other failure WriteError."""
    path = Path(path)
    frames = _even(np.asarray(frames, dtype=np.uint8))
    count, height, width, _ = frames.shape
    with committed(path) as tmp:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-crf", str(crf), "-movflags", "+faststart", str(tmp),
        ]  # fmt: skip
        data = b"".join(np.ascontiguousarray(frame).tobytes() for frame in frames)
        # its own session: a Ctrl-C on the terminal reaches fbgen, which stops ffmpeg itself after cleaning up
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)  # fmt: skip
        try:
            _, err = proc.communicate(data)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        message = err.decode(errors="replace").strip().splitlines()
        if proc.returncode != 0:
            raise_write_error(path, f"ffmpeg exited with {proc.returncode}: {message[-1] if message else ''}")
        decoded = _decoded_frames(tmp)
        if decoded != count:
            raise_write_error(path, f"the written file decodes to {decoded} of {count} frames")
    return path


def _decoded_frames(path: Path) -> int:
    try:
        return imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    except RuntimeError:  # undecodable
        return 0


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
