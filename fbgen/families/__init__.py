"""Model families: light metadata here (no torch import), adapters loaded lazily by name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyRules:
    """What a config must respect for one family, checked before any weights load."""

    name: str
    size_multiple: int  # height and width must be divisible by this
    frame_step: int  # num_frames must be frame_step*k + 1
    text_tokens: int  # prompt length the text encoder is padded to
    default_shift: float
    default_size: tuple[int, int, int]  # height, width, num_frames
    default_fps: int
    adapter: str  # module path of the adapter


FAMILIES: dict[str, FamilyRules] = {
    "wan": FamilyRules("wan", 16, 4, 512, 3.0, (480, 832, 81), 16, "fbgen.families.wan"),
}


def load_adapter(name: str):
    """Import a family's adapter module (it pulls in diffusers, so only when weights are needed)."""
    return importlib.import_module(FAMILIES[name].adapter)
