"""Pictures for people: a contact sheet (rows = runs, columns = frames) and a side-by-side MP4 of several runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fbgen.outputs.video import upscale, write_mp4

MIN_CELL = 128  # tiny videos are upscaled (nearest) so a frame is at least this tall
LABEL = 14  # height of a text line


def _scale(height: int) -> int:
    return max(1, math.ceil(MIN_CELL / height))


def contact_sheet(rows: dict[str, np.ndarray], path: str | Path, columns: int = 8) -> Path:
    """One row per run under its label, `columns` frames spread evenly over the video; written atomically."""
    first = next(iter(rows.values()))
    frames, height, width = first.shape[:3]
    picks = np.linspace(0, frames - 1, min(columns, frames)).round().astype(int)
    k = _scale(height)
    cell_h, cell_w = height * k, width * k
    row_h = LABEL + cell_h + 4
    sheet = Image.new("RGB", (max(len(picks) * (cell_w + 2), 320), len(rows) * row_h + LABEL), "white")
    draw = ImageDraw.Draw(sheet)
    for c, f in enumerate(picks):
        draw.text((c * (cell_w + 2) + 2, 1), f"frame {f}", fill="gray")
    for r, (name, video) in enumerate(rows.items()):
        y = LABEL + r * row_h
        draw.text((2, y + 1), name, fill="black")
        for c, f in enumerate(picks):
            cell = Image.fromarray(video[f]).resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(cell, (c * (cell_w + 2), y + LABEL))
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    sheet.save(tmp)
    tmp.replace(path)
    return path


def side_by_side(rows: dict[str, np.ndarray], path: str | Path, fps: int) -> None:
    """Every run's video tiled in a grid (labelled), as one MP4."""
    videos = list(rows.values())
    frames, height, width = videos[0].shape[:3]
    k = _scale(height)
    cols = math.ceil(math.sqrt(len(videos)))
    grid_rows = math.ceil(len(videos) / cols)
    cell_h, cell_w = height * k + 14, width * k
    canvas_h, canvas_w = grid_rows * cell_h, cols * cell_w
    canvas_h, canvas_w = canvas_h + canvas_h % 2, canvas_w + canvas_w % 2  # yuv420p needs even sizes
    out = np.full((frames, canvas_h, canvas_w, 3), 255, np.uint8)
    for i, (name, video) in enumerate(rows.items()):
        y, x = (i // cols) * cell_h, (i % cols) * cell_w
        label = Image.new("RGB", (cell_w, 14), "white")
        ImageDraw.Draw(label).text((2, 1), name, fill="black")
        out[:, y : y + 14, x : x + cell_w] = np.asarray(label)
        big = upscale(video, k)
        out[:, y + 14 : y + cell_h, x : x + cell_w] = big
    write_mp4(out, Path(path), fps)
