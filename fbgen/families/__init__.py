"""Model families: light metadata here (no torch import), adapters loaded lazily by name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

DEMO_PAIR = Path(__file__).resolve().parent.parent / "demo" / "pair"  # the trained pair shipped in the package


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
    caches: tuple[str, ...] = ("first_block", "taylorseer")  # diffusers cache hooks that work on its transformer
    # the per-block modules that do a block's work (the group names the unit, as in `fbgen.core.flops`): what TaylorSeer
    # forecasts and what `fbgen.engine.work` counts. diffusers' default TaylorSeer pattern (`^blocks.*attn`) matches no
    # module of Wan or LTX (theirs are `attn1`, `attn2`), which would leave that hook a silent no-op
    block_units: str = r"blocks\.\d+\.(attn1|attn2|ffn)"
    default_models: tuple[tuple[str, str], ...] = ()  # (letter, path) used when a config declares no models
    view_scale: int = 1  # MP4s are written this many times larger (nearest) when native frames are tiny


WAN_CACHES = ("first_block", "taylorseer", "seacache")  # SeaCache has a built-in adapter for Wan T2V only

FAMILIES: dict[str, FamilyRules] = {
    "wan": FamilyRules(
        "wan", 16, 4, 512, 3.0, (480, 832, 81), 16, "fbgen.families.wan", ("unipc", "euler", "dpmpp"), caches=WAN_CACHES
    ),  # fmt: skip
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
        block_units=r"transformer_blocks\.\d+\.(attn1|attn2|ff)",
    ),  # fmt: skip
    "demo": FamilyRules(
        "demo",
        16,
        4,
        16,
        3.0,
        (48, 48, 9),
        8,
        "fbgen.families.demo",
        ("unipc", "euler", "dpmpp"),
        default_models=(("L", str(DEMO_PAIR / "large")), ("S", str(DEMO_PAIR / "small"))),
        view_scale=4,
        caches=WAN_CACHES,
    ),  # fmt: skip
}


def load_adapter(name: str):
    """Import a family's adapter module (it pulls in diffusers, so only when weights are needed)."""
    return importlib.import_module(FAMILIES[name].adapter)
