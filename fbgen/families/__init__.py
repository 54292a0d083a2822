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
    default_shift: float | None  # None: the family's own (dynamic) shift
    default_size: tuple[int, int, int]  # height, width, num_frames
    default_fps: int
    adapter: str  # module path of the adapter
    solvers: tuple[str, ...]  # the first is the default
    options: tuple[str, ...] = ()  # family-only config keys


FAMILIES: dict[str, FamilyRules] = {
    "wan": FamilyRules("wan", 16, 4, 512, 3.0, (480, 832, 81), 16, "fbgen.families.wan", ("unipc", "euler", "dpmpp")),
    "ltx": FamilyRules(
        "ltx",
        32,
        8,
        128,
        None,
        (512, 704, 161),
        25,
        "fbgen.families.ltx",
        ("euler",),
        ("decode_timestep", "decode_noise_scale"),
    ),  # fmt: skip
}


def load_adapter(name: str):
    """Import a family's adapter module (it pulls in diffusers, so only when weights are needed)."""
    return importlib.import_module(FAMILIES[name].adapter)
