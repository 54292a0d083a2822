"""Pictures for people: a contact sheet (rows = runs, columns = frames) and a side-by-side MP4 of several runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fbgen.video import write_mp4

MIN_CELL = 128  # tiny videos are upscaled (nearest) so a frame is at least this tall
LABEL = 110


def _scale(height: int) -> int:
    return max(1, math.ceil(MIN_CELL / height))


def contact_sheet(rows: dict[str, np.ndarray], path: str | Path, columns: int = 8) -> None:
    """One row per run (label at the left), `columns` frames spread evenly over the video."""
    first = next(iter(rows.values()))
    frames, height, width = first.shape[:3]
    picks = np.linspace(0, frames - 1, min(columns, frames)).round().astype(int)
    k = _scale(height)
    cell_h, cell_w = height * k, width * k
    sheet = Image.new("RGB", (LABEL + len(picks) * (cell_w + 2), len(rows) * (cell_h + 2) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for c, f in enumerate(picks):
        draw.text((LABEL + c * (cell_w + 2) + 2, 2), f"frame {f}", fill="black")
    for r, (name, video) in enumerate(rows.items()):
        y = 16 + r * (cell_h + 2)
        draw.text((4, y + cell_h // 2 - 6), name, fill="black")
        for c, f in enumerate(picks):
            cell = Image.fromarray(video[f]).resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(cell, (LABEL + c * (cell_w + 2), y))
    sheet.save(path)


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
        big = video.repeat(k, axis=1).repeat(k, axis=2)
        out[:, y + 14 : y + cell_h, x : x + cell_w] = big
    write_mp4(out, Path(path), fps)
